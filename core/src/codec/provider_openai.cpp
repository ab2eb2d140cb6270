// OpenAI adapters: Chat Completions chunks and Responses API events to rill events.
#include <limits>

#include "codec/provider_impl.hpp"

namespace rill::codec {

namespace {

stop_reason normalize_chat_finish(std::string_view reason, bool refusal) noexcept {
  if (reason == "stop") return refusal ? stop_reason::refusal : stop_reason::end_turn;
  if (reason == "length") return stop_reason::max_tokens;
  if (reason == "tool_calls" || reason == "function_call") return stop_reason::tool_use;
  if (reason == "content_filter") return stop_reason::content_filter;
  return stop_reason::none;
}

usage_counts openai_usage(dom_json::object u, bool responses) noexcept {
  usage_counts c;
  dom_json::object details;
  if (responses) {
    c.input_tokens = dom_json::clamp32(dom_json::count_or_zero(u, "input_tokens"));
    c.output_tokens = dom_json::clamp32(dom_json::count_or_zero(u, "output_tokens"));
    if (dom_json::get_object(u, "input_tokens_details", details)) {
      c.cache_read_tokens = dom_json::clamp32(dom_json::count_or_zero(details, "cached_tokens"));
    }
    if (dom_json::get_object(u, "output_tokens_details", details)) {
      c.reasoning_tokens = dom_json::clamp32(dom_json::count_or_zero(details, "reasoning_tokens"));
    }
  } else {
    c.input_tokens = dom_json::clamp32(dom_json::count_or_zero(u, "prompt_tokens"));
    c.output_tokens = dom_json::clamp32(dom_json::count_or_zero(u, "completion_tokens"));
    if (dom_json::get_object(u, "prompt_tokens_details", details)) {
      c.cache_read_tokens = dom_json::clamp32(dom_json::count_or_zero(details, "cached_tokens"));
    }
    if (dom_json::get_object(u, "completion_tokens_details", details)) {
      c.reasoning_tokens = dom_json::clamp32(dom_json::count_or_zero(details, "reasoning_tokens"));
    }
  }
  std::uint64_t total = 0;
  c.total_tokens = dom_json::get_count(u, "total_tokens", total)
                       ? dom_json::clamp32(total)
                       : dom_json::clamp32(std::uint64_t{c.input_tokens} + c.output_tokens);
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Chat Completions: data-only chunks, then `[DONE]`.

void provider_decoder::impl::openai_chat(const sse_event& ev, dom_json::element root) {
  (void)ev;
  dom_json::object chunk;
  if (!as_object(root, chunk) || took_error(chunk)) return;
  if (!message_started) {
    std::string_view id;
    if (dom_json::get_string(chunk, "id", id)) start_message(id, dom_json::string_or_empty(chunk, "model"));
  }
  dom_json::array choices;
  if (dom_json::get_array(chunk, "choices", choices)) {
    std::uint64_t position = 0;
    for (dom_json::element choice_element : choices) {
      dom_json::object choice;
      if (!as_object(choice_element, choice)) continue;
      const std::uint16_t ci = dom_json::index_or(choice, "index", position++);
      dom_json::object delta;
      if (dom_json::get_object(choice, "delta", delta)) {
        std::string_view s;
        // OpenAI-compatible servers (DeepSeek, vLLM, OpenRouter) stream reasoning in one of these keys.
        if ((dom_json::get_string(delta, "reasoning_content", s) || dom_json::get_string(delta, "reasoning", s)) &&
            !s.empty()) {
          emit(event::thinking_delta(ci, s, ci));
        }
        if (dom_json::get_string(delta, "content", s) && !s.empty()) emit(event::text_delta(ci, s, ci));
        if (dom_json::get_string(delta, "refusal", s) && !s.empty()) {
          refusal_seen = true;
          emit(event::text_delta(ci, s, ci));
        }
        dom_json::array tool_calls;
        if (dom_json::get_array(delta, "tool_calls", tool_calls)) {
          std::uint64_t tool_position = 0;
          for (dom_json::element tool_element : tool_calls) {
            dom_json::object tool;
            if (!as_object(tool_element, tool)) continue;
            const std::uint16_t ti = dom_json::index_or(tool, "index", tool_position++);
            dom_json::object function;
            const bool has_function = dom_json::get_object(tool, "function", function);
            const std::string_view id = dom_json::string_or_empty(tool, "id");
            const std::string_view name = has_function ? dom_json::string_or_empty(function, "name") : "";
            tool_call* call = find_call(ci, ti);
            if (call == nullptr) {
              call = add_call(ci, ti);
              if (call == nullptr) return;  // too many calls: the decoder failed
              if (id.empty() && name.empty()) ++summary.counters.malformed_payloads;  // its first part never came
            }
            if ((!id.empty() || !name.empty()) && !start_call(*call, id, name)) return;
            std::string_view fragment;
            if (has_function && dom_json::get_string(function, "arguments", fragment))
              add_fragment(*call, fragment);
          }
        }
      }
      std::string_view finish;
      if (dom_json::get_string(choice, "finish_reason", finish)) {
        end_open_calls(ci);
        // With n > 1 choices the first choice's reason is the message's (rill has one stop per message).
        if (!stop_known || ci == 0) set_native_stop(finish, normalize_chat_finish(finish, refusal_seen));
      }
    }
  }
  dom_json::element usage_element;
  dom_json::object usage;
  if (dom_json::get(chunk, "usage", usage_element) && usage_element.get_object().get(usage) == simdjson::SUCCESS) {
    set_usage_native(usage_element);
    emit_usage(openai_usage(usage, false));
  }
}

void provider_decoder::impl::openai_chat_done() {
  end_open_calls();
  emit_stop();  // [DONE] ends the response: message_stop(none) when no finish_reason came
  emit_complete();
}

// ---------------------------------------------------------------------------------------------------------
// Responses API: typed events with a sequence number; response.completed is terminal.

void provider_decoder::impl::openai_responses(const sse_event& ev, dom_json::element root) {
  dom_json::object o;
  if (!as_object(root, o)) return;
  const std::string_view type = event_type(o, ev);
  std::uint64_t seq = 0;
  if (dom_json::get_count(o, "sequence_number", seq)) {
    if (seq > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      ++summary.counters.malformed_payloads;  // no real stream gets there; kept out of the signed summary
    } else {
      // Unsigned, so no signed overflow: "none" (-1) + 1 wraps to 0, the first number expected.
      const auto last = static_cast<std::uint64_t>(summary.last_sequence_number);
      if (seq != last + 1) ++summary.counters.sequence_gaps;
      summary.last_sequence_number = static_cast<std::int64_t>(seq);
    }
  }
  const std::uint16_t oi = dom_json::index_or(o, "output_index", 0);

  if (type == "response.output_text.delta") {
    const std::string_view delta = dom_json::string_or_empty(o, "delta");
    if (!delta.empty()) emit(event::text_delta(oi, delta));
    return;
  }
  if (type == "response.function_call_arguments.delta") {
    const std::string_view delta = dom_json::string_or_empty(o, "delta");
    tool_call* call = find_call(0, oi);
    if (call == nullptr) {
      ++summary.counters.malformed_payloads;
      call = add_call(0, oi);
      if (call == nullptr) return;  // too many calls: the decoder failed
    }
    add_fragment(*call, delta);
    return;
  }
  if (type == "response.reasoning_summary_text.delta" || type == "response.reasoning_text.delta") {
    const std::string_view delta = dom_json::string_or_empty(o, "delta");
    if (!delta.empty()) emit(event::thinking_delta(oi, delta));
    return;
  }
  if (type == "response.refusal.delta") {
    const std::string_view delta = dom_json::string_or_empty(o, "delta");
    refusal_seen = true;
    if (!delta.empty()) emit(event::text_delta(oi, delta));
    return;
  }
  if (type == "response.output_item.added" || type == "response.output_item.done") {
    const bool added = type == "response.output_item.added";
    dom_json::object item;
    if (!dom_json::get_object(o, "item", item)) {
      ++summary.counters.malformed_payloads;
      return;
    }
    const std::string_view item_type = dom_json::string_or_empty(item, "type");
    if (item_type == "function_call") {
      tool_call* call = find_call(0, oi);
      if (added) {
        const std::string_view call_id = dom_json::string_or_empty(item, "call_id");
        if (!call_id_fits(call_id)) return;  // checked before anything is emitted
        if (call == nullptr) call = add_call(0, oi);
        if (call == nullptr) return;  // too many calls: the decoder failed
        emit(event::content_block_start(oi, block_type::tool_use));
        if (!start_call(*call, call_id, dom_json::string_or_empty(item, "name"))) return;
      }
      if (call == nullptr) {
        ++summary.counters.malformed_payloads;
        return;
      }
      // Some servers send the arguments only whole, in the item: emit them once if no delta came.
      const std::string_view whole = dom_json::string_or_empty(item, "arguments");
      if (call->args.empty()) add_fragment(*call, whole);
      if (!added) {
        end_call(*call);
        emit(event::content_block_stop(oi));
      }
      return;
    }
    const block_type block = item_type == "message"     ? block_type::text
                             : item_type == "reasoning" ? block_type::thinking
                                                        : block_type::other;
    emit(added ? event::content_block_start(oi, block) : event::content_block_stop(oi));
    return;
  }
  if (type == "response.function_call_arguments.done") {
    tool_call* call = find_call(0, oi);
    const std::string_view whole = dom_json::string_or_empty(o, "arguments");
    if (call != nullptr && call->args.empty()) add_fragment(*call, whole);
    return;
  }
  if (type == "response.created" || type == "response.in_progress" || type == "response.queued") {
    dom_json::object response;
    if (dom_json::get_object(o, "response", response)) {
      start_message(dom_json::string_or_empty(response, "id"), dom_json::string_or_empty(response, "model"));
    }
    return;
  }
  if (type == "response.completed" || type == "response.incomplete" || type == "response.failed" ||
      type == "response.cancelled") {
    dom_json::object response;
    if (!dom_json::get_object(o, "response", response)) {
      ++summary.counters.malformed_payloads;
      return;
    }
    start_message(dom_json::string_or_empty(response, "id"), dom_json::string_or_empty(response, "model"));
    end_open_calls();
    dom_json::element usage_element;
    dom_json::object usage;
    if (dom_json::get(response, "usage", usage_element) &&
        usage_element.get_object().get(usage) == simdjson::SUCCESS) {
      set_usage_native(usage_element);
      emit_usage(openai_usage(usage, true));
    }
    std::string_view status_text = dom_json::string_or_empty(response, "status");
    if (status_text.empty()) status_text = type.substr(9);  // "completed", "failed", ...
    if (type == "response.failed" || type == "response.cancelled") {
      summary.stop_reason.assign(status_text);
      summary.has_stop_reason = true;
      dom_json::object err;
      std::string_view code = "response_failed", message;
      if (dom_json::get_object(response, "error", err)) {
        if (!dom_json::string_or_empty(err, "code").empty()) code = dom_json::string_or_empty(err, "code");
        message = dom_json::string_or_empty(err, "message");
      }
      emit_error(code, message, is_retryable_error(code));
      return;
    }
    stop_reason normalized = tool_calls_seen != 0 ? stop_reason::tool_use
                             : refusal_seen       ? stop_reason::refusal
                                                  : stop_reason::end_turn;
    if (type == "response.incomplete") {
      dom_json::object details;
      const std::string_view reason =
          dom_json::get_object(response, "incomplete_details", details) ? dom_json::string_or_empty(details, "reason") : "";
      normalized = reason == "content_filter" ? stop_reason::content_filter : stop_reason::max_tokens;
    }
    set_native_stop(status_text, normalized);
    emit_stop();
    emit_complete();
    return;
  }
  if (type == "error") {
    dom_json::object err = o;
    dom_json::get_object(o, "error", err);  // older servers nest it
    std::string_view code = dom_json::string_or_empty(err, "code");
    if (code.empty()) code = dom_json::string_or_empty(err, "type");
    emit_error(code.empty() ? std::string_view("error") : code, dom_json::string_or_empty(err, "message"),
               is_retryable_error(code));
    return;
  }
  if (type.substr(0, 9) == "response.") {
    // Lifecycle events whose content is already carried by the deltas: known, nothing to emit.
    if (type == "response.content_part.added" || type == "response.content_part.done" ||
        type == "response.output_text.done" || type == "response.output_text.annotation.added" ||
        type == "response.reasoning_summary_part.added" || type == "response.reasoning_summary_part.done" ||
        type == "response.reasoning_summary_text.done" || type == "response.reasoning_text.done" ||
        type == "response.refusal.done") {
      return;
    }
  }
  ++summary.counters.unknown_events;
}

}  // namespace rill::codec
