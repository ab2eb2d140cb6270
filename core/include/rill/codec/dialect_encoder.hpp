// rill/codec/dialect_encoder.hpp: rill events re-serialized in a provider's streaming dialect, so a gateway
// can serve any upstream to any client: OpenAI Chat Completions chunks, OpenAI Responses events, Anthropic
// Messages events. docs/wire_format.md ("Dialect encoders") has every mapping.
//
// Each encoder is a small state machine for ONE response: it remembers the message id and model, which blocks
// or output items are open, the tool-call index it gave each tool call, the latest usage and the stop reason.
// Drive it with the event sequence, in order:
//   for (const event& e : events) enc.encode(e, out);   // appends zero or more SSE blocks to `out`
//   enc.keep_alive(out);                                 // whenever the client connection is idle
//   enc.finish(out);                                     // when the upstream ends (or at stream_complete)
// The encoders are lenient about structure the source dialect lacks: a text or thinking delta with no open
// block opens one, a tool call's start opens its block, a new message or text block closes the blocks before
// it, tool indices are renumbered 0, 1, 2 ... per choice in order of appearance (OpenAI clients index arrays
// with them). Argument fragments that come before their call's start are held and written right after it
// (dropped if the call ends or the message stops first: a call without a name cannot be dispatched). The id
// and model are fixed by the first output: a message_start or stream_start after it changes nothing.
//
// Guarantees: output is valid SSE with LF endings, one JSON object per data line, text escaped as in
// rill/codec/json.hpp (invalid UTF-8 replaced by U+FFFD). Usage is never invented: it is written only when a
// usage event arrived (the latest one wins: usage events are cumulative totals). A response that never saw
// message_stop is left visibly incomplete (no finish_reason / [DONE], no response.completed, no
// message_stop), and an error event is written in the dialect's error form and ends the response.
// Not guaranteed: rill events without a counterpart in the dialect are dropped (workflow lifecycle, tool
// results, user events; thinking for OpenAI unless asked for); ids the dialect needs and the source lacks are
// made up from `dialect_options` and the response id (a tool call without one gets `call_<response id>_<n>`,
// Anthropic `toolu_...`, unique in the response and the same wherever the call's id is written again).
// Thread-safety: one encoder per response, used by one thread at a time. Never blocks; after the first
// responses have sized their buffers, encoding allocates only when `out` must grow or a longer id / text
// arrives (Responses keeps each item's full text, which its `.done` events repeat).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "rill/codec/sse_encoder.hpp"
#include "rill/event.hpp"
#include "rill/status.hpp"

namespace rill::codec {

// Settings for one response's encoder.
struct dialect_options {
  // Used when neither message_start nor stream_start gave an id / model.
  std::string fallback_id = "rill";
  std::string fallback_model = "unknown";
  // Unix seconds for OpenAI `created` / `created_at`. 0: taken from the first event's timestamp when it has a
  // clock (event::system_time), else written as 0. Streams do not stamp events by default
  // (stream_options::stamping), so a gateway sets this (the request's time) or stamps its events.
  std::int64_t created = 0;
  // OpenAI Chat: write the final `choices: []` usage chunk (what `stream_options.include_usage` asks for).
  bool chat_include_usage = true;
  // OpenAI Chat: write thinking deltas as `delta.reasoning_content` (DeepSeek / vLLM style); dropped otherwise.
  bool chat_include_reasoning = false;
};

namespace detail {

// What every dialect remembers about the response being encoded.
struct response_state {
  std::string id;
  std::string model;
  std::int64_t created = 0;
  bool settled = false;    // settle() ran: id, model and `created` are fixed, every later output repeats them
  bool started = false;    // the dialect's opening bytes are written
  bool have_stop = false;  // message_stop seen
  bool done = false;       // the response is over (finished or failed): later events write nothing
  bool have_usage = false;
  stop_reason stop = stop_reason::none;
  usage_counts usage;

  void reset() noexcept;
  // Records ids and model (until settled), usage and stop from `e`; returns true when the event was fully
  // handled that way.
  bool absorb(const event& e);
  // Fills id, model and created from options and `e` when still empty, at the first output; later calls keep
  // them as they were first written.
  void settle(const event& e, const dialect_options& options);
};

// One open (or finished) block / output item, keyed by where the source put it.
struct output_block {
  enum class family : std::uint8_t { content, tool };
  family source_family = family::content;
  std::uint16_t source_index = 0;
  std::uint16_t source_choice = 0;
  std::uint16_t output_index = 0;
  block_type type = block_type::text;
  bool open = false;
  std::string item_id;    // Responses only
  std::string call_id;    // tool calls (Responses keeps it for the final output)
  std::string name;       // tool calls
  std::string text;       // Responses: accumulated text / arguments for the .done events; held fragments
};

// Argument fragments of tool calls whose tool_call_start has not arrived yet (producers may send a fragment
// first), held until the start, which writes them right after itself.
class held_arguments {
 public:
  // The fragments held for `e`'s call (its index and choice), or null.
  output_block* find(const event& e) noexcept;
  // Appends `e`'s fragment to its call's.
  void hold(const event& e);
  // Forgets `e`'s call's fragments, if any.
  void release(const event& e) noexcept;
  // Forgets the fragments find() returned (the reference is then invalid).
  void release(output_block& held) noexcept;
  void clear() noexcept { count_ = 0; }

 private:
  std::vector<output_block> calls_;  // reused across responses: only the first count_ are live
  std::size_t count_ = 0;
};

}  // namespace detail

// Events to OpenAI Chat Completions chunks: `data: {chat.completion.chunk}` blocks, then `data: [DONE]`.
// Choices (n > 1): each delta goes to its event's choice(), each choice opens with its own role chunk and
// ends with its own finish chunk; rill has one stop per message, so every choice finishes with its reason.
// Keep-alive: a JSON chunk with an empty delta (`choices: []` once the finish chunk is out), never an SSE
// comment, since many OpenAI clients parse every line as JSON. One written before the upstream's first event
// carries the fallback id and model, and so does every later chunk (clients take them from the first one): a
// gateway that may send one sets `fallback_id` / `fallback_model`.
class openai_chat_encoder {
 public:
  explicit openai_chat_encoder(dialect_options options = {});
  // Appends the chunks for `e` (often none). status::ok; status::invalid (nothing written) for an event that
  // fails validate(); status::too_large when memory ran out (what this call wrote is taken back, and the
  // response is over: later calls write nothing). Events after the response is over are ignored. The same
  // holds for keep_alive() and finish() and for the other encoders.
  status encode(const event& e, std::string& out) noexcept;
  // Appends one keep-alive chunk unless the response is over.
  void keep_alive(std::string& out) noexcept;
  // Ends the response: the usage chunk (when asked for and known) and `data: [DONE]`, if message_stop was seen
  // and no error ended it; otherwise nothing. Idempotent.
  status finish(std::string& out) noexcept;
  // Forgets the response (keeps buffers) so the encoder can serve the next one.
  void reset() noexcept;
  bool done() const noexcept { return state_.done; }

 private:
  // encode(), keep_alive() and finish() without their std::bad_alloc handler.
  status encode_event(const event& e, std::string& out);
  void write_keep_alive(std::string& out);
  status finish_response(std::string& out);
  void begin_chunk(std::string& out) const;
  void ensure_started(const event& e, std::string& out);
  // Writes the role chunk of a choice seen for the first time (choice 0's is part of starting).
  void ensure_choice(std::uint16_t choice, std::string& out);
  // The started tool call `e` continues, or null.
  const detail::output_block* find_tool(const event& e) const noexcept;
  // Writes an argument fragment of a started tool call (an empty one: nothing).
  void write_arguments(const detail::output_block& tool, std::string_view fragment, std::string& out) const;

  dialect_options options_;
  detail::response_state state_;
  bool finish_chunk_written_ = false;
  std::vector<detail::output_block> tools_;  // started tool calls, in order of their start
  detail::held_arguments held_;
  std::vector<bool> choice_seen_;  // by choice index; every seen choice gets its own finish chunk
};

// Events to OpenAI Responses API events: `event: <type>` + `data: {"type":<type>,"sequence_number":n,...}`,
// sequence numbers from 0; response.created / in_progress, output_item.added / done, content_part.added / done,
// output_text.delta / done, function_call_arguments.delta / done, then response.completed (or
// response.incomplete for max_tokens / content_filter) carrying usage; `event: error` on an error. No [DONE].
// Keep-alive: the SSE comment ": keep-alive" (Responses clients parse named SSE events with spec-compliant
// decoders; a repeated response.in_progress would consume a sequence number and, in accumulators that take its
// `response` as the new snapshot, wipe the output so far). Thinking is dropped (no reasoning items).
class openai_responses_encoder {
 public:
  explicit openai_responses_encoder(dialect_options options = {});
  status encode(const event& e, std::string& out) noexcept;  // as openai_chat_encoder::encode
  void keep_alive(std::string& out) noexcept;
  // Ends the response: closes open items and writes response.completed / response.incomplete if message_stop was
  // seen and no error ended it; otherwise nothing. Idempotent.
  status finish(std::string& out) noexcept;
  void reset() noexcept;
  bool done() const noexcept { return state_.done; }

 private:
  status encode_event(const event& e, std::string& out);  // as in openai_chat_encoder
  void write_keep_alive(std::string& out);
  status finish_response(std::string& out);
  void begin_event(std::string& out, std::string_view type);
  void end_event(std::string& out) const;
  void ensure_started(const event& e, std::string& out);
  void write_response(std::string& out, std::string_view status_name) const;
  detail::output_block* find_open(detail::output_block::family family, const event& e);
  detail::output_block& open_item(detail::output_block::family family, const event& e, std::string& out);
  void close_item(detail::output_block& item, std::string& out);
  void close_all(std::string& out);

  dialect_options options_;
  detail::response_state state_;
  std::uint64_t sequence_number_ = 0;
  std::vector<detail::output_block> items_;  // reused across responses: only the first item_count_ are live
  std::size_t item_count_ = 0;
  detail::held_arguments held_;
};

// Events to Anthropic Messages events: message_start, content_block_start / delta (text_delta, thinking_delta,
// signature_delta, input_json_delta) / stop, message_delta (stop_reason and cumulative usage), message_stop;
// `event: error` on an error. Keep-alive: `event: ping` with `{"type":"ping"}`. message_start is written at the
// first content (so usage that arrives right after the upstream's message start is in it); message_delta and
// message_stop at finish (so usage that arrives after the stop reason is in them).
class anthropic_encoder {
 public:
  explicit anthropic_encoder(dialect_options options = {});
  status encode(const event& e, std::string& out) noexcept;  // as openai_chat_encoder::encode
  void keep_alive(std::string& out) noexcept;
  // Ends the response: message_delta and message_stop if message_stop was seen and no error ended it; otherwise
  // nothing. Idempotent.
  status finish(std::string& out) noexcept;
  void reset() noexcept;
  bool done() const noexcept { return state_.done; }

 private:
  status encode_event(const event& e, std::string& out);  // as in openai_chat_encoder
  void write_keep_alive(std::string& out);
  status finish_response(std::string& out);
  void ensure_started(const event& e, std::string& out);
  void write_usage(std::string& out) const;
  detail::output_block* find_open(detail::output_block::family family, const event& e);
  detail::output_block& open_block(detail::output_block::family family, block_type type, const event& e,
                                   std::string& out);
  void close_block(detail::output_block& block, std::string& out);
  void close_all(std::string& out);

  dialect_options options_;
  detail::response_state state_;
  std::vector<detail::output_block> blocks_;
  std::size_t block_count_ = 0;
  detail::held_arguments held_;
};

// Every output rill can write, for tools that pick one at run time (`rill replay --to ...`).
enum class output_format : std::uint8_t {
  jsonl,             // one event JSON object per line
  sse,               // rill SSE (id / event / data)
  jsonrpc,           // one JSON-RPC 2.0 notification per line
  openai_chat,
  openai_responses,
  anthropic,
};

// Parses "jsonl", "sse", "jsonrpc", "openai-chat", "openai-responses", "anthropic" (underscores accepted too);
// `ok` is false for anything else.
output_format output_format_from_string(std::string_view name, bool& ok) noexcept;
std::string_view to_string(output_format format) noexcept;

// One encoder of a format chosen at run time, with the dialect encoders' interface.
class output_encoder {
 public:
  explicit output_encoder(output_format format, dialect_options options = {});
  status encode(const event& e, std::string& out) noexcept;
  // Keep-alive in the format's own form (rill SSE: the comment block; JSON lines: a keep_alive event line).
  void keep_alive(std::string& out) noexcept;
  status finish(std::string& out) noexcept;
  void reset() noexcept;
  output_format format() const noexcept { return format_; }

 private:
  output_format format_;
  std::variant<std::monostate, openai_chat_encoder, openai_responses_encoder, anthropic_encoder> dialect_;
};

}  // namespace rill::codec
