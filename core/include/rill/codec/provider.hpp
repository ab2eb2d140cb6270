// rill/codec/provider.hpp: provider SSE streams (OpenAI Chat Completions, OpenAI Responses, Anthropic
// Messages, Gemini streamGenerateContent with alt=sse) decoded into rill events.
//
// A provider_decoder owns an sse_decoder and one dialect adapter. Bytes go in through feed(); every rill
// event they complete is handed to the caller's sink, in stream order, before feed() returns. The mapping of
// each dialect to events is documented in docs/wire_format.md ("Provider adapters"); in short:
//   message_start(id, model) once the response id is known; text_delta / thinking_delta / signature_delta;
//   content_block_start/stop where the dialect has blocks (Anthropic, Responses output items);
//   tool_call_start(index, call_id, name, choice), tool_args_delta(fragment), tool_call_end(args_invalid);
//   usage (each one replaces the previous: cumulative or running totals, normalized as in the fixtures);
//   error(code, message, retryable) for an error after the 200, followed by message_stop(error);
//   message_stop(normalized reason) when the native stop reason is final; stream_complete(sse events, 0)
//   when the dialect's terminal success marker arrives ([DONE], response.completed, message_stop, a Gemini
//   finishReason).
//
// Guarantees: events are emitted in input order and only from complete SSE events, so the same bytes split
// at any offsets give the same events. Unknown event types are ignored and counted; data that is not JSON
// (or JSON of the wrong shape) is skipped and counted, or with `strict_json` fails with status::invalid and
// its byte offset. Usage is never assumed: no usage event is emitted unless the provider sent usage. Tool
// arguments are checked when a call ends: tool_call_end carries `args_invalid` when the concatenated
// fragments are not one complete JSON value. Steady state is allocation-free (buffers and the JSON parser
// grow to the largest event seen and are reused).
//
// Not guaranteed: provider-native values with no event field (the native stop reason and usage object, the
// Responses sequence number) are not in the events; they are in summary(). Not thread-safe: one decoder
// per stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "rill/codec/sse_decoder.hpp"
#include "rill/event.hpp"
#include "rill/status.hpp"

namespace rill::codec {

// A provider streaming dialect. `unknown` asks the decoder to detect it.
enum class provider : std::uint8_t {
  unknown = 0,
  openai_chat,
  openai_responses,
  anthropic,
  gemini,
};

// Stable name as in the fixtures ("openai_chat", "openai_responses", "anthropic", "gemini"; "unknown").
std::string_view to_string(provider dialect) noexcept;
// Parses a dialect name; '-' and '_' are interchangeable ("openai-chat"), and "auto" gives `unknown`.
// `ok` is false for any other name.
provider provider_from_string(std::string_view name, bool& ok) noexcept;

// What the adapter saw and skipped. All counts are per stream.
struct provider_counters {
  std::uint64_t sse_events = 0;          // SSE events dispatched by the framing layer
  std::uint64_t events_emitted = 0;      // rill events handed to the sink
  std::uint64_t unknown_events = 0;  // types the dialect does not define, or rill has no event for: ignored
  std::uint64_t non_json_data = 0;       // data that is not JSON in a JSON dialect: skipped
  std::uint64_t malformed_payloads = 0;  // JSON with a field of the wrong type, or a fragment without a call
  std::uint64_t keep_alives = 0;         // provider pings (also emitted as keep_alive events)
  std::uint64_t sequence_gaps = 0;       // Responses: a sequence_number that is not the previous one + 1
  std::uint64_t after_error = 0;         // SSE events after an in-stream error: ignored (the error ended it)
};

// Provider-native facts that rill events do not carry. Owned by the decoder; valid until reset().
struct provider_summary {
  provider dialect = provider::unknown;
  std::string id;                 // response / message id
  std::string model;
  std::string stop_reason;        // native: finish_reason, response.status, stop_reason, finishReason
  bool has_stop_reason = false;
  std::string usage_native;       // the native usage object as JSON text (Anthropic: merged); empty if none
  bool completed = false;         // the terminal success marker was seen and no error came
  bool errored = false;           // an in-stream error arrived
  std::int64_t last_sequence_number = -1;  // Responses only; -1 when none
  bool truncated = false;         // the input ended inside an SSE event (see sse_decoder::truncated)
  provider_counters counters;
};

struct provider_decoder_options {
  provider dialect = provider::unknown;  // unknown: detect from the first events that identify one
  sse_decoder_options sse;
  // Non-JSON data in a JSON dialect fails the decoder with status::invalid instead of being skipped.
  bool strict_json = false;
  // Tool-call argument bytes one response may carry, all calls together: the decoder keeps every call's
  // fragments until its end to check them as JSON. Past it the decoder fails with status::too_large.
  std::size_t max_argument_bytes = std::size_t{16} << 20;
};

class provider_decoder {
 public:
  // Allocates the adapter state and JSON parser. Throws std::bad_alloc only.
  explicit provider_decoder(const provider_decoder_options& options = {});
  ~provider_decoder();
  provider_decoder(provider_decoder&&) noexcept;
  provider_decoder& operator=(provider_decoder&&) noexcept;

  // Decodes `bytes` and calls `sink(const rill::event&)` for each event they complete. An event's borrowed
  // (external) text is valid only during the call: copy it or send it into a stream before returning. The
  // sink returns void or rill::status; a non-ok status stops decoding and is returned. Returns ok,
  // too_large (SSE event over the cap, arguments over max_argument_bytes, or memory ran out: the message
  // says which), invalid (strict_json and bad data), the sink's status, or closed after finish(). After a
  // failure every call returns the same status until reset(). Never blocks. The sink runs inside noexcept
  // code: an exception it throws terminates the process, except std::bad_alloc, which fails the decoder as
  // above (return a status instead). Bounds on hostile input: at most 1024 tool calls per response, and no
  // upstream field longer than an event field may be (65535 bytes for ids and names); past either, too_large.
  template <class Sink>
  status feed(std::string_view bytes, Sink&& sink) {
    return feed_erased(bytes, &sink, &invoke_sink<std::remove_reference_t<Sink>>);
  }

  // Ends the stream: SSE end-of-input rules apply (a trailing event without its blank line is discarded,
  // or flushed when the SSE options say so); tool calls still open are ended (tool_call_end, with
  // args_invalid when their arguments are incomplete); a native stop reason seen without its terminal marker
  // still yields message_stop. Same sink and results as feed().
  template <class Sink>
  status finish(Sink&& sink) {
    return finish_erased(&sink, &invoke_sink<std::remove_reference_t<Sink>>);
  }

  // Decodes one already framed SSE event (for callers with their own framing). Same sink contract.
  template <class Sink>
  status decode_sse_event(const sse_event& ev, Sink&& sink) {
    return decode_erased(ev, &sink, &invoke_sink<std::remove_reference_t<Sink>>);
  }

  // The dialect in use: the configured one, or the detected one (unknown until detected).
  provider dialect() const noexcept;
  const provider_summary& summary() const noexcept;
  const sse_decoder& sse() const noexcept;
  // The failure status (ok when none), its message and stream byte offset.
  status error() const noexcept;
  std::string_view error_message() const noexcept;
  std::uint64_t error_offset() const noexcept;

  // Forgets the stream and keeps buffer capacity; the configured dialect (or detection) starts over.
  void reset() noexcept;

 private:
  using sink_fn = status (*)(void* sink, const event& ev);
  template <class Sink>
  static status invoke_sink(void* sink, const event& ev) {
    Sink& s = *static_cast<Sink*>(sink);
    if constexpr (std::is_same_v<std::invoke_result_t<Sink&, const event&>, void>) {
      s(ev);
      return status::ok;
    } else {
      return static_cast<status>(s(ev));
    }
  }
  status feed_erased(std::string_view bytes, void* sink, sink_fn fn) noexcept;
  status finish_erased(void* sink, sink_fn fn) noexcept;
  status decode_erased(const sse_event& ev, void* sink, sink_fn fn) noexcept;

  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace rill::codec
