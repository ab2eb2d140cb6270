// rill/codec/sse_encoder.hpp: rill events as Server-Sent Events, and as JSON-RPC 2.0 notifications.
//
// One event becomes one SSE block, LF line endings:
//   id: <event seq>\n
//   event: <kind name>\n
//   data: <event JSON (rill/codec/json.hpp), or its JSON-RPC notification>\n
//   \n
// The JSON never contains a raw line break (the writer escapes them), so each payload is exactly one data line.
// A keep-alive is the comment block ": keep-alive\n\n" (a spec-compliant SSE parser dispatches nothing for it).
// The JSON-RPC 2.0 notification form is {"jsonrpc":"2.0","method":"event","params":{...event JSON...}}: no "id",
// since a notification expects no reply.
//
// Guarantees: every function appends to a caller-owned std::string and allocates only when it must grow; on
// failure nothing is appended. Never blocks. Functions are thread-safe (no shared state); an sse_encoder object
// is a const options holder and may be shared between threads.
// Not guaranteed: `id:` is the stream-local seq, so it resumes a stream only where the sequence is kept across
// reconnects (the stream layer's business). The caller flushes and frames the bytes for the socket.
#pragma once

#include <cstdint>
#include <string>

#include "rill/codec/json.hpp"
#include "rill/event.hpp"
#include "rill/status.hpp"

namespace rill::codec {

// What an SSE data line carries.
enum class sse_payload : std::uint8_t {
  event_json,  // the event JSON object
  jsonrpc,     // the JSON-RPC 2.0 notification wrapping it
};

// Which optional SSE fields to write. Both on by default; a client that needs neither id nor event name gets
// data-only blocks.
enum class sse_fields : std::uint8_t {
  data_only = 0,
  id = 1,
  event_name = 2,
  id_and_event_name = 3,
};

struct sse_options {
  sse_payload payload = sse_payload::event_json;
  sse_fields fields = sse_fields::id_and_event_name;
  json_options json{};
};

// The SSE keep-alive comment block.
inline constexpr std::string_view kSseKeepAlive = ": keep-alive\n\n";

// Appends one SSE block for `e`. Errors as encode_json (status::invalid for an event that fails validate(), or
// invalid UTF-8 under `reject`); nothing is appended then.
status encode_sse(const event& e, std::string& out, const sse_options& options = {}) noexcept;

// Appends the keep-alive comment block. Never fails.
inline void append_sse_keep_alive(std::string& out) noexcept { out.append(kSseKeepAlive); }

// Appends the bare JSON-RPC 2.0 notification object for `e` (no line ending). Errors as encode_json.
status encode_jsonrpc(const event& e, std::string& out, const json_options& options = {}) noexcept;

// Appends one line of newline-delimited output: the event JSON (`sse_payload::event_json`, JSON Lines) or the
// JSON-RPC notification, then "\n". Errors as encode_json.
status encode_json_line(const event& e, std::string& out, sse_payload payload = sse_payload::event_json,
                        const json_options& options = {}) noexcept;

// The SSE encoder as an object with the same shape as the dialect encoders (rill/codec/dialect_encoder.hpp):
// encode() per event, keep_alive() when the connection is idle, finish() at the end. Stateless apart from its
// options; finish() writes nothing.
class sse_encoder {
 public:
  explicit sse_encoder(sse_options options = {}) noexcept : options_(options) {}
  // Appends the block for `e`; errors as encode_sse.
  status encode(const event& e, std::string& out) const noexcept { return encode_sse(e, out, options_); }
  void keep_alive(std::string& out) const noexcept { append_sse_keep_alive(out); }
  status finish(std::string&) const noexcept { return status::ok; }
  const sse_options& options() const noexcept { return options_; }

 private:
  sse_options options_;
};

}  // namespace rill::codec
