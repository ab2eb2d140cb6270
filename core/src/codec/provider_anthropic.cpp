// Anthropic Messages adapter: named events with content blocks, cumulative usage, in-stream errors.
#include "codec/provider_impl.hpp"

namespace rill::codec {

namespace {

stop_reason normalize_anthropic_stop(std::string_view reason) noexcept {
  bool ok = false;
  const stop_reason r = stop_reason_from_string(reason, ok);  // the engine vocabulary is Anthropic's
  if (ok && r != stop_reason::none) return r;
  if (reason == "model_context_window_exceeded") return stop_reason::max_tokens;
  return stop_reason::none;
}

}  // namespace

void provider_decoder::impl::anthropic(const sse_event& ev, dom_json::element root) {
  dom_json::object o;
  if (!as_object(root, o)) return;
  const std::string_view type = event_type(o, ev);
  const std::uint16_t bi = dom_json::index_or(o, "index", 0);

  // Usage is cumulative: each object replaces the fields it names; the merged object is the native usage
  // and its normalized form is re-emitted whole.
  const auto merge_usage = [this](dom_json::object usage) {
    for (auto [key, value] : usage) {
      std::size_t i = 0;
      while (i < usage_fields_used && usage_fields[i].first != key) ++i;
      if (i == usage_fields_used) {
        if (usage_fields_used == kMaxUsageFields) {
          ++summary.counters.malformed_payloads;
          continue;
        }
        if (usage_fields_used == usage_fields.size()) usage_fields.emplace_back();
        usage_fields[usage_fields_used++].first.assign(key);
      }
      usage_fields[i].second = simdjson::to_string(value);
    }
    std::string& native = summary.usage_native;
    native.clear();
    native.push_back('{');
    for (std::size_t i = 0; i < usage_fields_used; ++i) {
      if (i != 0) native.push_back(',');
      native.push_back('"');
      for (const char c : usage_fields[i].first) {  // re-escape the (unescaped) key
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') native.push_back('\\');
        if (u < 0x20) {
          constexpr char kHex[] = "0123456789abcdef";
          native.append("\\u00", 4);
          native.push_back(kHex[u >> 4]);
          native.push_back(kHex[u & 15]);
        } else {
          native.push_back(c);
        }
      }
      native.append("\":", 2);
      native.append(usage_fields[i].second);
    }
    native.push_back('}');
    const auto field = [this](std::string_view key) -> std::uint64_t {
      for (std::size_t i = 0; i < usage_fields_used; ++i) {
        if (usage_fields[i].first == key) {
          const std::string& v = usage_fields[i].second;
          std::uint64_t n = 0;
          for (char c : v) {
            if (c < '0' || c > '9') return 0;  // null or not a count
            n = n * 10 + static_cast<std::uint64_t>(c - '0');
            if (n > 0xffffffffu) return 0xffffffffu;
          }
          return n;
        }
      }
      return 0;
    };
    usage_counts c;
    c.cache_write_tokens = dom_json::clamp32(field("cache_creation_input_tokens"));
    c.cache_read_tokens = dom_json::clamp32(field("cache_read_input_tokens"));
    c.input_tokens = dom_json::clamp32(field("input_tokens") + c.cache_write_tokens + c.cache_read_tokens);
    c.output_tokens = dom_json::clamp32(field("output_tokens"));
    c.total_tokens = dom_json::clamp32(std::uint64_t{c.input_tokens} + c.output_tokens);
    emit_usage(c);
  };

  if (type == "content_block_delta") {
    dom_json::object delta;
    if (!dom_json::get_object(o, "delta", delta)) {
      ++summary.counters.malformed_payloads;
      return;
    }
    const std::string_view delta_type = dom_json::string_or_empty(delta, "type");
    std::string_view s;
    if (delta_type == "text_delta") {
      if (dom_json::get_string(delta, "text", s) && !s.empty()) emit(event::text_delta(bi, s));
    } else if (delta_type == "input_json_delta") {
      tool_call* call = find_call(0, bi);
      if (call == nullptr) {
        ++summary.counters.malformed_payloads;
        call = add_call(0, bi);
        if (call == nullptr) return;  // too many calls: the decoder failed
      }
      if (dom_json::get_string(delta, "partial_json", s)) add_fragment(*call, s);
    } else if (delta_type == "thinking_delta") {
      if (dom_json::get_string(delta, "thinking", s) && !s.empty()) emit(event::thinking_delta(bi, s));
    } else if (delta_type == "signature_delta") {
      if (dom_json::get_string(delta, "signature", s) && !s.empty()) emit(event::signature_delta(bi, s));
    } else {
      ++summary.counters.unknown_events;  // citations_delta included: rill has no citation event
    }
    return;
  }
  if (type == "content_block_start") {
    dom_json::object block;
    if (!dom_json::get_object(o, "content_block", block)) {
      ++summary.counters.malformed_payloads;
      return;
    }
    const std::string_view block_kind = dom_json::string_or_empty(block, "type");
    std::string_view s;
    if (block_kind == "text") {
      emit(event::content_block_start(bi, block_type::text));
      if (dom_json::get_string(block, "text", s) && !s.empty()) emit(event::text_delta(bi, s));
    } else if (block_kind == "thinking") {
      emit(event::content_block_start(bi, block_type::thinking));
      if (dom_json::get_string(block, "thinking", s) && !s.empty()) emit(event::thinking_delta(bi, s));
      if (dom_json::get_string(block, "signature", s) && !s.empty()) emit(event::signature_delta(bi, s));
    } else if (block_kind == "redacted_thinking") {
      emit(event::content_block_start(bi, block_type::redacted_thinking,
                                      dom_json::string_or_empty(block, "data")));
    } else if (block_kind == "tool_use" || block_kind == "server_tool_use" || block_kind == "mcp_tool_use") {
      const std::string_view call_id = dom_json::string_or_empty(block, "id");
      if (!call_id_fits(call_id)) return;  // checked before anything is emitted
      tool_call* call = find_call(0, bi);
      if (call == nullptr) call = add_call(0, bi);
      if (call == nullptr) return;  // too many calls: the decoder failed
      emit(event::content_block_start(bi, block_type::tool_use));
      start_call(*call, call_id, dom_json::string_or_empty(block, "name"));
    } else {
      emit(event::content_block_start(bi, block_type::other));
    }
    return;
  }
  if (type == "content_block_stop") {
    if (tool_call* call = find_call(0, bi); call != nullptr) end_call(*call);
    emit(event::content_block_stop(bi));
    return;
  }
  if (type == "ping") {
    ++summary.counters.keep_alives;
    emit(event::keep_alive());
    return;
  }
  if (type == "message_start") {
    dom_json::object message;
    if (!dom_json::get_object(o, "message", message)) {
      ++summary.counters.malformed_payloads;
      return;
    }
    start_message(dom_json::string_or_empty(message, "id"), dom_json::string_or_empty(message, "model"));
    dom_json::object usage;
    if (dom_json::get_object(message, "usage", usage)) merge_usage(usage);
    return;
  }
  if (type == "message_delta") {
    dom_json::object usage, delta;
    if (dom_json::get_object(o, "usage", usage)) merge_usage(usage);
    std::string_view reason;
    if (dom_json::get_object(o, "delta", delta) && dom_json::get_string(delta, "stop_reason", reason)) {
      set_native_stop(reason, normalize_anthropic_stop(reason));
      end_open_calls();
      emit_stop();
    }
    return;
  }
  if (type == "message_stop") {
    end_open_calls();
    emit_stop();  // the response is over: message_stop(none) when no message_delta gave a reason
    emit_complete();
    return;
  }
  if (type == "error") {
    dom_json::object err;
    std::string_view code = "error", message;
    if (dom_json::get_object(o, "error", err)) {
      if (!dom_json::string_or_empty(err, "type").empty()) code = dom_json::string_or_empty(err, "type");
      message = dom_json::string_or_empty(err, "message");
    }
    emit_error(code, message, is_retryable_error(code));
    return;
  }
  ++summary.counters.unknown_events;
}

}  // namespace rill::codec
