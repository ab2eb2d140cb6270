// Gemini streamGenerateContent (alt=sse) adapter: each data event is a whole GenerateContentResponse.
#include "codec/provider_impl.hpp"

namespace rill::codec {

namespace {

stop_reason normalize_gemini_finish(std::string_view reason, bool had_tool_calls) noexcept {
  if (reason == "STOP") return had_tool_calls ? stop_reason::tool_use : stop_reason::end_turn;
  if (reason == "MAX_TOKENS") return stop_reason::max_tokens;
  if (reason == "SAFETY" || reason == "RECITATION" || reason == "BLOCKLIST" || reason == "PROHIBITED_CONTENT" ||
      reason == "SPII" || reason == "IMAGE_SAFETY") {
    return stop_reason::content_filter;
  }
  if (reason == "MALFORMED_FUNCTION_CALL" || reason == "UNEXPECTED_TOOL_CALL") return stop_reason::error;
  return stop_reason::end_turn;  // OTHER, LANGUAGE, FINISH_REASON_UNSPECIFIED: ended, for no listed cause
}

}  // namespace

void provider_decoder::impl::gemini(const sse_event& ev, dom_json::element root) {
  (void)ev;
  dom_json::object chunk;
  // The REST form without alt=sse is one JSON array; with alt=sse every event is an object.
  if (!as_object(root, chunk) || took_error(chunk)) return;
  if (!message_started) {
    const std::string_view id = dom_json::string_or_empty(chunk, "responseId");
    const std::string_view model = dom_json::string_or_empty(chunk, "modelVersion");
    if (!id.empty() || !model.empty()) start_message(id, model);
  }
  bool finished_here = false;
  dom_json::array candidates;
  if (dom_json::get_array(chunk, "candidates", candidates)) {
    std::uint64_t position = 0;
    for (dom_json::element candidate_element : candidates) {
      dom_json::object candidate;
      if (!as_object(candidate_element, candidate)) continue;
      const std::uint16_t ci = dom_json::index_or(candidate, "index", position++);
      const std::uint64_t bit = ci < 64 ? std::uint64_t{1} << ci : 0;  // candidateCount is at most 8
      gemini_candidates_seen |= bit;
      dom_json::object content;
      dom_json::array parts;
      if (dom_json::get_object(candidate, "content", content) && dom_json::get_array(content, "parts", parts)) {
        for (dom_json::element part_element : parts) {
          dom_json::object part;
          if (!as_object(part_element, part)) continue;
          std::string_view s;
          bool thought = false;
          dom_json::get_bool(part, "thought", thought);
          if (dom_json::get_string(part, "text", s) && !s.empty()) {
            emit(thought ? event::thinking_delta(ci, s, ci) : event::text_delta(ci, s, ci));
          }
          dom_json::object call;
          if (dom_json::get_object(part, "functionCall", call)) {
            // Calls arrive whole: start, the arguments as one fragment (re-serialized compactly), end.
            const auto ti = static_cast<std::uint16_t>(tool_calls_seen);
            tool_call* added = add_call(ci, ti);
            if (added == nullptr) return;  // too many calls: the decoder failed
            tool_call& tc = *added;
            if (!start_call(tc, dom_json::string_or_empty(call, "id"),
                            dom_json::string_or_empty(call, "name"))) {
              return;
            }
            dom_json::element args;
            if (dom_json::get(call, "args", args)) add_fragment(tc, simdjson::to_string(args));
            end_call(tc);
          }
          // Gemini signs the part that follows its thinking (often the call); rill keeps it with the
          // candidate's thinking.
          if (dom_json::get_string(part, "thoughtSignature", s) && !s.empty())
            emit(event::signature_delta(ci, s, ci));
        }
      }
      std::string_view reason;
      if (dom_json::get_string(candidate, "finishReason", reason) && !reason.empty()) {
        // Candidate 0's reason is the message's (rill has one stop per message); another's only until then.
        if (ci == 0 || !stop_known)
          set_native_stop(reason, normalize_gemini_finish(reason, tool_calls_seen != 0));
        gemini_candidates_finished |= bit;
        end_open_calls(ci);
        finished_here = true;
      }
    }
  }
  dom_json::object feedback;
  std::string_view blocked;
  if (!finished_here && dom_json::get_object(chunk, "promptFeedback", feedback) &&
      dom_json::get_string(feedback, "blockReason", blocked)) {
    set_native_stop(blocked, stop_reason::content_filter);
  }
  dom_json::element usage_element;
  dom_json::object usage;
  if (dom_json::get(chunk, "usageMetadata", usage_element) &&
      usage_element.get_object().get(usage) == simdjson::SUCCESS) {
    usage_counts c;
    c.input_tokens = dom_json::clamp32(dom_json::count_or_zero(usage, "promptTokenCount"));
    c.reasoning_tokens = dom_json::clamp32(dom_json::count_or_zero(usage, "thoughtsTokenCount"));
    c.output_tokens =
        dom_json::clamp32(dom_json::count_or_zero(usage, "candidatesTokenCount") + dom_json::count_or_zero(usage, "thoughtsTokenCount"));
    c.cache_read_tokens = dom_json::clamp32(dom_json::count_or_zero(usage, "cachedContentTokenCount"));
    std::uint64_t total = 0;
    c.total_tokens = dom_json::get_count(usage, "totalTokenCount", total)
                         ? dom_json::clamp32(total)
                         : dom_json::clamp32(std::uint64_t{c.input_tokens} + c.output_tokens);
    // Running totals, repeated on every chunk: only a change is news (and re-serializing the native object
    // for each chunk would cost a third of the adapter's time).
    if (!gemini_usage_seen || !(c == gemini_last_usage)) {
      gemini_usage_seen = true;
      gemini_last_usage = c;
      set_usage_native(usage_element);
      emit_usage(c);
    }
  }
  // The response ends when every candidate seen has finished (one finishing early must not cut the others).
  if (finished_here && (gemini_candidates_seen & ~gemini_candidates_finished) == 0) {
    end_open_calls();
    emit_stop();
    emit_complete();
  }
}

}  // namespace rill::codec
