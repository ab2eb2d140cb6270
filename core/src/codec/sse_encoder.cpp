#include "rill/codec/sse_encoder.hpp"

#include "internal/json_out.hpp"

namespace rill::codec {
namespace {

constexpr std::string_view kJsonRpcPrefix = R"({"jsonrpc":"2.0","method":"event","params":{)";

// Writes the payload object (event JSON or the notification around it). Returns status::invalid on rejected text.
status write_payload(internal::string_sink& sink, const event& e, sse_payload payload, invalid_utf8 policy) {
  if (payload == sse_payload::jsonrpc) {
    sink.put(kJsonRpcPrefix);
  } else {
    sink.put('{');
  }
  const status s = internal::write_event_members(sink, e, policy);
  sink.put(payload == sse_payload::jsonrpc ? std::string_view("}}") : std::string_view("}"));
  return s;
}

status finish(std::string& out, std::size_t original_size, status s) noexcept {
  if (s != status::ok) out.resize(original_size);
  return s;
}

}  // namespace

status encode_sse(const event& e, std::string& out, const sse_options& options) noexcept {
  if (const status v = e.validate(); v != status::ok) return v;
  const std::size_t original_size = out.size();
  internal::string_sink sink{out};
  const auto fields = static_cast<unsigned>(options.fields);
  if (fields & static_cast<unsigned>(sse_fields::id)) {
    sink.put("id: ", 4);
    internal::write_uint(sink, e.seq());
    sink.put('\n');
  }
  if (fields & static_cast<unsigned>(sse_fields::event_name)) {
    sink.put("event: ", 7);
    sink.put(to_string(e.kind()));
    sink.put('\n');
  }
  sink.put("data: ", 6);
  const status s = write_payload(sink, e, options.payload, options.json.on_invalid_utf8);
  sink.put("\n\n", 2);
  return finish(out, original_size, s);
}

status encode_jsonrpc(const event& e, std::string& out, const json_options& options) noexcept {
  if (const status v = e.validate(); v != status::ok) return v;
  const std::size_t original_size = out.size();
  internal::string_sink sink{out};
  return finish(out, original_size, write_payload(sink, e, sse_payload::jsonrpc, options.on_invalid_utf8));
}

status encode_json_line(const event& e, std::string& out, sse_payload payload, const json_options& options) noexcept {
  if (const status v = e.validate(); v != status::ok) return v;
  const std::size_t original_size = out.size();
  internal::string_sink sink{out};
  const status s = write_payload(sink, e, payload, options.on_invalid_utf8);
  sink.put('\n');
  return finish(out, original_size, s);
}

}  // namespace rill::codec
