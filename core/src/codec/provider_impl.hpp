// Private: the state shared by the provider adapters (provider_decoder.cpp and the provider_*.cpp dialects).
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rill/codec/provider.hpp"

namespace rill::codec {

namespace dom_json {
using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::object;

inline bool get(object o, std::string_view key, element& out) noexcept {
  return o.at_key(key).get(out) == simdjson::SUCCESS;
}
inline bool get_string(object o, std::string_view key, std::string_view& out) noexcept {
  element e;
  return get(o, key, e) && e.get_string().get(out) == simdjson::SUCCESS;
}
inline std::string_view string_or_empty(object o, std::string_view key) noexcept {
  std::string_view s;
  return get_string(o, key, s) ? s : std::string_view{};
}
inline bool get_object(object o, std::string_view key, object& out) noexcept {
  element e;
  return get(o, key, e) && e.get_object().get(out) == simdjson::SUCCESS;
}
inline bool get_array(object o, std::string_view key, array& out) noexcept {
  element e;
  return get(o, key, e) && e.get_array().get(out) == simdjson::SUCCESS;
}
// A non-negative integer field (token counts, indexes).
inline bool get_count(object o, std::string_view key, std::uint64_t& out) noexcept {
  element e;
  if (!get(o, key, e)) return false;
  if (e.get_uint64().get(out) == simdjson::SUCCESS) return true;
  return false;
}
inline std::uint64_t count_or_zero(object o, std::string_view key) noexcept {
  std::uint64_t v = 0;
  return get_count(o, key, v) ? v : 0;
}
inline bool get_bool(object o, std::string_view key, bool& out) noexcept {
  element e;
  return get(o, key, e) && e.get_bool().get(out) == simdjson::SUCCESS;
}
inline std::uint32_t clamp32(std::uint64_t v) noexcept {
  return v > 0xffffffffu ? 0xffffffffu : static_cast<std::uint32_t>(v);
}
inline std::uint16_t clamp16(std::uint64_t v) noexcept {
  return v > 0xffffu ? 0xffffu : static_cast<std::uint16_t>(v);
}
// An index field (choice, candidate, tool call, block), clamped; `fallback` when it is absent or not a count.
inline std::uint16_t index_or(object o, std::string_view key, std::uint64_t fallback) noexcept {
  get_count(o, key, fallback);
  return clamp16(fallback);
}
}  // namespace dom_json

// Whether an upstream error code (any dialect's) names a fault worth retrying: overload, rate limit, server.
bool is_retryable_error(std::string_view code) noexcept;

// A typed event's `type` field; the SSE event name when the data does not repeat it.
inline std::string_view event_type(dom_json::object o, const sse_event& ev) noexcept {
  std::string_view type;
  return dom_json::get_string(o, "type", type) ? type : ev.event_type;
}

struct provider_decoder::impl {
  explicit impl(const provider_decoder_options& opts);

  // ---- plumbing (provider_decoder.cpp) ----
  status feed(std::string_view bytes) noexcept;
  status finish() noexcept;
  // Decodes one SSE event (decode_event); std::bad_alloc fails the decoder (out_of_memory) instead.
  status on_sse_event(const sse_event& ev, bool padded) noexcept;
  status decode_event(const sse_event& ev, bool padded);
  // Fails the decoder with status::too_large and an out-of-memory message; allocates nothing.
  void out_of_memory(std::uint64_t at) noexcept;
  // Acts on a step of `sse` other than need_input: records its failure, or decodes its event. Not ok: stop.
  status take_step(sse_decoder::step step, const sse_event& ev) noexcept;
  void reset() noexcept;
  void fail(status s, std::string_view what, std::uint64_t at);
  // Hands `e` to the sink; false (and nothing more is emitted) once the sink has refused an event.
  bool emit(const event& e);
  // Parses the event's data; counts and skips (or, strict, fails on) non-JSON. False when skipped.
  bool parse(const sse_event& ev, bool padded, dom_json::element& root);
  // `e` as an object; false, counted as a malformed payload, when it is anything else.
  bool as_object(dom_json::element e, dom_json::object& out) noexcept;
  // A chunk that carries an `error` object is the error alone: reported, and true so the caller stops.
  bool took_error(dom_json::object chunk);
  provider detect(const sse_event& ev, const dom_json::element* root) const noexcept;
  void generic_error(dom_json::object error_object);
  // An error event's data when the first event is one and no dialect is known yet: Anthropic's
  // {"type":"error","error":{...}} or Responses' {"type":"error","code","message"}.
  void typed_error(dom_json::object data);

  // ---- shared adapter helpers (provider_decoder.cpp) ----
  struct tool_call {
    std::uint16_t choice = 0;
    std::uint16_t index = 0;
    bool open = false;
    bool started = false;  // tool_call_start emitted (it needs a name; OpenAI Chat may send it late)
    std::string id;        // the call id, kept until the start can be emitted
    std::string args;  // the fragments so far: held until the start, then for the validity check at the end
  };
  // Tool calls one response may open. find_call scans them, so a bound keeps hostile input (tens of
  // thousands of indexes in one chunk) from costing quadratic time; no provider sends anywhere near it.
  static constexpr std::size_t kMaxToolCalls = 1024;
  // Distinct keys kept of Anthropic's native usage object (each merge looks keys up one by one); real ones
  // have under a dozen. Further keys are left out of usage_native and counted as malformed.
  static constexpr std::size_t kMaxUsageFields = 32;
  tool_call* find_call(std::uint16_t choice, std::uint16_t index) noexcept;
  // nullptr, with the decoder failed (too_large), when the response already opened kMaxToolCalls calls.
  tool_call* add_call(std::uint16_t choice, std::uint16_t index);
  // An argument fragment: emitted as tool_args_delta once the call has started, held until then (a
  // consumer never sees arguments before the call's start, whose id and name encoders write first).
  void add_fragment(tool_call& call, std::string_view fragment);
  // Emits tool_call_start once the call has a name, then the fragments held so far as one tool_args_delta;
  // a start without a name is counted as malformed and retried when a later fragment brings the name. `id`
  // may be empty (then an earlier one is kept). False, with the decoder failed (too_large), when the id is
  // longer than an event field may be.
  bool start_call(tool_call& call, std::string_view id, std::string_view name);
  // Emits tool_call_end(args_invalid) for a started call; a call that never started (no name ever came) ends
  // without any event: its held fragments are dropped (counted as malformed when they came).
  bool end_call(tool_call& call);
  // False, with the decoder failed (too_large), when `id` cannot be a tool call id (over 65535 bytes).
  // Checked before a dialect emits anything for the upstream event, so a failure leaves nothing half-emitted.
  bool call_id_fits(std::string_view id);
  bool end_open_calls(int choice_filter = -1);  // -1: every choice
  bool args_valid(tool_call& call);
  void start_message(std::string_view id, std::string_view model);
  void set_native_stop(std::string_view native, stop_reason normalized);
  bool emit_stop();      // message_stop(pending) once
  bool emit_complete();  // stream_complete once, unless an error came
  bool emit_error(std::string_view code, std::string_view message, bool retryable);
  bool emit_usage(const usage_counts& counts);
  void set_usage_native(dom_json::element usage);

  // ---- dialects ----
  void openai_chat(const sse_event& ev, dom_json::element root);  // provider_openai.cpp
  void openai_chat_done();
  void openai_responses(const sse_event& ev, dom_json::element root);
  void anthropic(const sse_event& ev, dom_json::element root);  // provider_anthropic.cpp
  void gemini(const sse_event& ev, dom_json::element root);     // provider_gemini.cpp

  provider_decoder_options options;
  sse_decoder sse;
  simdjson::dom::parser parser;       // the current SSE event's JSON; its strings back emitted text
  simdjson::dom::parser args_parser;  // tool argument validation, so `parser`'s strings stay valid
  std::string unpadded_copy;          // decode_sse_event() input, copied to gain simdjson's padding
  provider active = provider::unknown;
  provider_summary summary;

  void* sink = nullptr;
  sink_fn sink_call = nullptr;
  status sink_status = status::ok;

  status error = status::ok;
  std::uint64_t error_offset = 0;
  std::uint64_t event_offset = 0;  // the SSE event being decoded: where a dialect's failure is reported
  std::string error_text;

  std::vector<tool_call> calls;
  std::size_t calls_used = 0;
  std::size_t argument_bytes = 0;  // every call's fragments so far, against options.max_argument_bytes
  std::uint32_t tool_calls_seen = 0;
  bool message_started = false;
  bool stop_known = false;
  bool stop_emitted = false;
  bool complete_emitted = false;
  bool refusal_seen = false;
  stop_reason pending_stop = stop_reason::none;
  bool gemini_usage_seen = false;
  std::uint64_t gemini_candidates_seen = 0;      // bit c: candidate c (< 64) has appeared
  std::uint64_t gemini_candidates_finished = 0;  // bit c: candidate c sent its finishReason
  usage_counts gemini_last_usage;
  // Anthropic's native usage: message_start's object with message_delta's fields merged in, in order.
  std::vector<std::pair<std::string, std::string>> usage_fields;
  std::size_t usage_fields_used = 0;
};

}  // namespace rill::codec
