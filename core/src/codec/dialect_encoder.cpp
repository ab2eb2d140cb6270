#include "rill/codec/dialect_encoder.hpp"

#include <algorithm>
#include <chrono>
#include <new>

#include "internal/json_out.hpp"

namespace rill::codec {
namespace {

using detail::output_block;
using family = output_block::family;

// Appends small JSON pieces to a std::string. Text is always escaped with U+FFFD replacement: a dialect
// encoder must keep the response flowing.
struct json_out {
  std::string& out;
  void raw(std::string_view bytes) { out.append(bytes.data(), bytes.size()); }
  void str(std::string_view text) {
    internal::string_sink sink{out};
    static_cast<void>(internal::write_string(sink, text, invalid_utf8::replace));
  }
  void num(std::uint64_t value) {
    internal::string_sink sink{out};
    internal::write_uint(sink, value);
  }
  void signed_num(std::int64_t value) {
    if (value < 0) {
      out.push_back('-');
      num(static_cast<std::uint64_t>(-(value + 1)) + 1);
    } else {
      num(static_cast<std::uint64_t>(value));
    }
  }
};

std::uint64_t total_of(const usage_counts& u) noexcept {
  return u.total_tokens != 0 ? u.total_tokens : std::uint64_t{u.input_tokens} + u.output_tokens;
}

std::string_view chat_finish_reason(stop_reason reason) noexcept {
  switch (reason) {
    case stop_reason::max_tokens: return "length";
    case stop_reason::tool_use: return "tool_calls";
    case stop_reason::content_filter:
    case stop_reason::refusal: return "content_filter";
    default: return "stop";
  }
}

std::string_view anthropic_stop_reason(stop_reason reason) noexcept {
  switch (reason) {
    case stop_reason::tool_use: return "tool_use";
    case stop_reason::max_tokens: return "max_tokens";
    case stop_reason::stop_sequence: return "stop_sequence";
    case stop_reason::pause_turn: return "pause_turn";
    case stop_reason::content_filter:
    case stop_reason::refusal: return "refusal";
    default: return "end_turn";
  }
}

bool matches(const output_block& b, family f, const event& e) noexcept {
  return b.open && b.source_family == f && b.source_index == e.index() && b.source_choice == e.choice();
}

// The open block among the first `count` of `blocks` (the live ones) that `e` continues, or null.
output_block* find_live(std::vector<output_block>& blocks, std::size_t count, family f, const event& e) noexcept {
  for (std::size_t i = 0; i < count; ++i) {
    if (matches(blocks[i], f, e)) return &blocks[i];
  }
  return nullptr;
}

// Takes the next reusable slot of `blocks` (kept across responses so their strings keep their capacity).
output_block& next_slot(std::vector<output_block>& blocks, std::size_t& count) {
  if (count == blocks.size()) blocks.emplace_back();
  output_block& b = blocks[count++];
  b.item_id.clear();
  b.call_id.clear();
  b.name.clear();
  b.text.clear();
  return b;
}

// Appends the id made up for a tool call the source gave none: `<prefix><response id>_<n>`, `n` unique within
// the response, so parallel calls stay apart and clients can match their results. Only [A-Za-z0-9_-] of the
// response id is kept (Anthropic's tool_use_id pattern), so the id needs no JSON escaping.
void append_made_up_call_id(std::string& out, std::string_view prefix, std::string_view response_id,
                            std::uint64_t n) {
  out.append(prefix);
  for (const char c : response_id) {
    const bool kept =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    out.push_back(kept ? c : '_');
  }
  out.push_back('_');
  json_out{out}.num(n);
}

// Writes a tool call's id as a JSON string: the source's, else a made-up one (for a call written once).
void write_call_id(std::string& out, std::string_view call_id, std::string_view prefix,
                   std::string_view response_id, std::uint64_t n) {
  if (!call_id.empty()) {
    json_out{out}.str(call_id);
    return;
  }
  out.push_back('"');
  append_made_up_call_id(out, prefix, response_id, n);
  out.push_back('"');
}

// Runs one encoder step; when an allocation fails, takes back what the step appended to `out`, ends the
// response (a half-written one cannot be continued) and returns too_large. Shrinking `out` allocates nothing.
template <class Step>
status guarded(std::string& out, detail::response_state& state, Step&& step) noexcept {
  const std::size_t size_before = out.size();
  try {
    return step();
  } catch (const std::bad_alloc&) {
    out.resize(size_before);
    state.done = true;
    return status::too_large;
  }
}

}  // namespace

// ---- tool arguments that came before their call's start ----

output_block* detail::held_arguments::find(const event& e) noexcept {
  return find_live(calls_, count_, family::tool, e);
}

void detail::held_arguments::hold(const event& e) {
  output_block* call = find(e);
  if (call == nullptr) {
    call = &next_slot(calls_, count_);
    call->source_family = family::tool;
    call->source_index = e.index();
    call->source_choice = e.choice();
    call->open = true;
  }
  call->text.append(e.text());
}

void detail::held_arguments::release(output_block& held) noexcept {
  std::swap(held, calls_[count_ - 1]);  // swaps the strings: both slots keep a buffer
  --count_;
}

void detail::held_arguments::release(const event& e) noexcept {
  if (output_block* held = find(e)) release(*held);
}

// ---- shared response state ----

void detail::response_state::reset() noexcept {
  id.clear();
  model.clear();
  created = 0;
  settled = started = have_stop = done = have_usage = false;
  stop = stop_reason::none;
  usage = {};
}

bool detail::response_state::absorb(const event& e) {
  switch (e.kind()) {
    // Once settled, the id and model are in the client's hands (a Chat keep-alive chunk can be the first
    // output): a later message start must not change them mid-response.
    case event_kind::stream_start:
      if (!settled && model.empty()) model.assign(e.model());
      return true;
    case event_kind::message_start:
      if (!settled) {
        if (!e.message_id().empty()) id.assign(e.message_id());
        if (!e.model().empty()) model.assign(e.model());
      }
      return true;
    case event_kind::usage:
      usage = e.usage_values();  // usage events are running totals: the latest replaces the earlier
      have_usage = true;
      return true;
    default:
      return false;
  }
}

void detail::response_state::settle(const event& e, const dialect_options& options) {
  if (id.empty()) id = options.fallback_id;
  if (model.empty()) model = options.fallback_model;
  // Once written, `created` stays: a Chat keep-alive chunk can be the first output, and its value (0 when it
  // had no clocked event) must not change at the first content chunk.
  if (settled) return;
  settled = true;
  created = options.created;
  if (created == 0 && e.timestamp_clock() != clock_kind::none) {
    created = std::chrono::duration_cast<std::chrono::seconds>(e.system_time().time_since_epoch()).count();
  }
}

// ---- OpenAI Chat Completions ----

openai_chat_encoder::openai_chat_encoder(dialect_options options) : options_(std::move(options)) {}

void openai_chat_encoder::reset() noexcept {
  state_.reset();
  finish_chunk_written_ = false;
  tools_.clear();
  held_.clear();
  choice_seen_.clear();
}

void openai_chat_encoder::begin_chunk(std::string& out) const {
  json_out j{out};
  j.raw("data: {\"id\":");
  j.str(state_.id);
  j.raw(",\"object\":\"chat.completion.chunk\",\"created\":");
  j.signed_num(state_.created);
  j.raw(",\"model\":");
  j.str(state_.model);
  j.raw(",\"choices\":[");
}

void openai_chat_encoder::ensure_started(const event& e, std::string& out) {
  if (!state_.started) {
    state_.settle(e, options_);
    state_.started = true;
    ensure_choice(0, out);
  }
  ensure_choice(e.choice(), out);
}

void openai_chat_encoder::ensure_choice(std::uint16_t choice, std::string& out) {
  if (choice < choice_seen_.size() && choice_seen_[choice]) return;
  if (choice >= choice_seen_.size()) choice_seen_.resize(std::size_t{choice} + 1);
  choice_seen_[choice] = true;
  json_out j{out};
  begin_chunk(out);
  j.raw("{\"index\":");
  j.num(choice);
  j.raw(R"(,"delta":{"role":"assistant","content":""},"finish_reason":null}]})"
        "\n\n");
}

const output_block* openai_chat_encoder::find_tool(const event& e) const noexcept {
  for (const output_block& t : tools_) {
    if (t.source_choice == e.choice() && t.source_index == e.index()) return &t;
  }
  return nullptr;
}

status openai_chat_encoder::encode(const event& e, std::string& out) noexcept {
  return guarded(out, state_, [&] { return encode_event(e, out); });
}

void openai_chat_encoder::keep_alive(std::string& out) noexcept {
  (void)guarded(out, state_, [&] {
    write_keep_alive(out);
    return status::ok;
  });
}

status openai_chat_encoder::finish(std::string& out) noexcept {
  return guarded(out, state_, [&] { return finish_response(out); });
}

status openai_chat_encoder::encode_event(const event& e, std::string& out) {
  if (e.validate() != status::ok) return status::invalid;
  if (state_.done || state_.absorb(e)) return status::ok;
  json_out j{out};
  switch (e.kind()) {
    case event_kind::keep_alive:
      if (!state_.started) state_.settle(e, options_);  // a stamped keep-alive gives `created` its time
      write_keep_alive(out);
      return status::ok;
    case event_kind::stream_complete:
      return finish_response(out);
    case event_kind::error:
      j.raw("data: {\"error\":{\"message\":");
      j.str(e.error_message());
      j.raw(",\"type\":");
      j.str(e.error_code().empty() ? std::string_view("server_error") : e.error_code());
      j.raw(",\"param\":null,\"code\":null}}\n\n");
      state_.done = true;
      return status::ok;
    case event_kind::text_delta:
    case event_kind::thinking_delta: {
      const bool thinking = e.kind() == event_kind::thinking_delta;
      if (thinking && !options_.chat_include_reasoning) return status::ok;
      ensure_started(e, out);
      if (e.text().empty()) return status::ok;
      begin_chunk(out);
      j.raw("{\"index\":");
      j.num(e.choice());
      j.raw(thinking ? ",\"delta\":{\"reasoning_content\":" : ",\"delta\":{\"content\":");
      j.str(e.text());
      j.raw("},\"finish_reason\":null}]}\n\n");
      return status::ok;
    }
    case event_kind::tool_call_start: {
      ensure_started(e, out);
      if (find_tool(e) != nullptr) return status::ok;  // a repeated start adds nothing
      std::uint16_t same_choice = 0;
      for (const output_block& t : tools_) same_choice += t.source_choice == e.choice();
      output_block& tool = tools_.emplace_back();
      tool.source_family = family::tool;
      tool.source_index = e.index();
      tool.source_choice = e.choice();
      tool.output_index = same_choice;
      begin_chunk(out);
      j.raw("{\"index\":");
      j.num(e.choice());
      j.raw(",\"delta\":{\"tool_calls\":[{\"index\":");
      j.num(tool.output_index);
      j.raw(",\"id\":");
      write_call_id(out, e.call_id(), "call_", state_.id, tools_.size() - 1);  // n: unique across choices
      j.raw(",\"type\":\"function\",\"function\":{\"name\":");
      j.str(e.tool_name());
      j.raw(",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n");
      if (output_block* held = held_.find(e)) {
        write_arguments(tool, held->text, out);
        held_.release(*held);
      }
      return status::ok;
    }
    case event_kind::tool_args_delta:
      if (const output_block* tool = find_tool(e)) {
        write_arguments(*tool, e.text(), out);
      } else {
        held_.hold(e);  // written after the call's id and name, which clients need first
      }
      return status::ok;
    case event_kind::tool_call_end:
      held_.release(e);  // the call ended without a start: a call without a name cannot be dispatched
      return status::ok;
    case event_kind::message_stop:
      held_.clear();
      ensure_started(e, out);
      state_.have_stop = true;
      state_.stop = e.stop();
      if (!finish_chunk_written_) {
        finish_chunk_written_ = true;
        for (std::size_t choice = 0; choice < choice_seen_.size(); ++choice) {
          if (!choice_seen_[choice]) continue;
          begin_chunk(out);
          j.raw("{\"index\":");
          j.num(choice);
          j.raw(",\"delta\":{},\"finish_reason\":\"");
          j.raw(chat_finish_reason(e.stop()));
          j.raw("\"}]}\n\n");
        }
      }
      return status::ok;
    default:
      return status::ok;  // no Chat Completions counterpart
  }
}

void openai_chat_encoder::write_arguments(const output_block& tool, std::string_view fragment,
                                          std::string& out) const {
  if (fragment.empty()) return;
  json_out j{out};
  begin_chunk(out);
  j.raw("{\"index\":");
  j.num(tool.source_choice);
  j.raw(",\"delta\":{\"tool_calls\":[{\"index\":");
  j.num(tool.output_index);
  j.raw(",\"function\":{\"arguments\":");
  j.str(fragment);
  j.raw("}}]},\"finish_reason\":null}]}\n\n");
}

void openai_chat_encoder::write_keep_alive(std::string& out) {
  if (state_.done) return;
  if (!state_.started) state_.settle(event{}, options_);
  begin_chunk(out);
  // After the finish chunk an empty delta would read as a second, unfinished choice: send no choice at all.
  out.append(finish_chunk_written_ ? std::string_view("]}\n\n")
                                   : std::string_view("{\"index\":0,\"delta\":{},\"finish_reason\":null}]}\n\n"));
}

status openai_chat_encoder::finish_response(std::string& out) {
  if (state_.done) return status::ok;
  state_.done = true;
  if (!state_.have_stop) return status::ok;  // truncated upstream: leave the response visibly unfinished
  if (options_.chat_include_usage && state_.have_usage) {
    const usage_counts& u = state_.usage;
    json_out j{out};
    begin_chunk(out);
    j.raw("],\"usage\":{\"prompt_tokens\":");
    j.num(u.input_tokens);
    j.raw(",\"completion_tokens\":");
    j.num(u.output_tokens);
    j.raw(",\"total_tokens\":");
    j.num(total_of(u));
    if (u.cache_read_tokens != 0) {
      j.raw(",\"prompt_tokens_details\":{\"cached_tokens\":");
      j.num(u.cache_read_tokens);
      j.raw("}");
    }
    if (u.reasoning_tokens != 0) {
      j.raw(",\"completion_tokens_details\":{\"reasoning_tokens\":");
      j.num(u.reasoning_tokens);
      j.raw("}");
    }
    j.raw("}}\n\n");
  }
  out.append("data: [DONE]\n\n");
  return status::ok;
}

// ---- OpenAI Responses ----

openai_responses_encoder::openai_responses_encoder(dialect_options options) : options_(std::move(options)) {}

void openai_responses_encoder::reset() noexcept {
  state_.reset();
  sequence_number_ = 0;
  item_count_ = 0;
  held_.clear();
}

void openai_responses_encoder::begin_event(std::string& out, std::string_view type) {
  json_out j{out};
  j.raw("event: ");
  j.raw(type);
  j.raw("\ndata: {\"type\":\"");
  j.raw(type);
  j.raw("\",\"sequence_number\":");
  j.num(sequence_number_++);
}

void openai_responses_encoder::end_event(std::string& out) const { out.append("}\n\n"); }

namespace {

void write_responses_item(json_out& j, const output_block& item, bool completed) {
  j.raw("{\"id\":");
  j.str(item.item_id);
  if (item.source_family == family::content) {
    j.raw(completed ? ",\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":["
                    : ",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[");
    if (completed) {
      j.raw("{\"type\":\"output_text\",\"text\":");
      j.str(item.text);
      j.raw(",\"annotations\":[]}");
    }
    j.raw("]}");
  } else {
    j.raw(completed ? ",\"type\":\"function_call\",\"status\":\"completed\",\"arguments\":"
                    : ",\"type\":\"function_call\",\"status\":\"in_progress\",\"arguments\":");
    j.str(completed ? std::string_view(item.text) : std::string_view());
    j.raw(",\"call_id\":");
    j.str(item.call_id);
    j.raw(",\"name\":");
    j.str(item.name);
    j.raw("}");
  }
}

// `"item_id":..,"output_index":n` (after a comma).
void write_item_ref(json_out& j, const output_block& item) {
  j.raw(",\"item_id\":");
  j.str(item.item_id);
  j.raw(",\"output_index\":");
  j.num(item.output_index);
}

}  // namespace

void openai_responses_encoder::write_response(std::string& out, std::string_view status_name) const {
  json_out j{out};
  const bool final = status_name != "in_progress";
  j.raw(",\"response\":{\"id\":");
  j.str(state_.id);
  j.raw(",\"object\":\"response\",\"created_at\":");
  j.signed_num(state_.created);
  j.raw(",\"status\":\"");
  j.raw(status_name);
  j.raw("\",\"error\":null,\"incomplete_details\":");
  if (status_name == "incomplete") {
    j.raw(state_.stop == stop_reason::max_tokens ? "{\"reason\":\"max_output_tokens\"}"
                                                 : "{\"reason\":\"content_filter\"}");
  } else {
    j.raw("null");
  }
  j.raw(",\"model\":");
  j.str(state_.model);
  j.raw(",\"output\":[");
  if (final) {
    for (std::size_t i = 0; i < item_count_; ++i) {
      if (i != 0) j.raw(",");
      write_responses_item(j, items_[i], true);
    }
  }
  j.raw("],\"usage\":");
  if (final && state_.have_usage) {
    const usage_counts& u = state_.usage;
    j.raw("{\"input_tokens\":");
    j.num(u.input_tokens);
    j.raw(",\"input_tokens_details\":{\"cached_tokens\":");
    j.num(u.cache_read_tokens);
    j.raw("},\"output_tokens\":");
    j.num(u.output_tokens);
    j.raw(",\"output_tokens_details\":{\"reasoning_tokens\":");
    j.num(u.reasoning_tokens);
    j.raw("},\"total_tokens\":");
    j.num(total_of(u));
    j.raw("}");
  } else {
    j.raw("null");
  }
  j.raw("}");
}

void openai_responses_encoder::ensure_started(const event& e, std::string& out) {
  if (state_.started) return;
  state_.settle(e, options_);
  state_.started = true;
  begin_event(out, "response.created");
  write_response(out, "in_progress");
  end_event(out);
  begin_event(out, "response.in_progress");
  write_response(out, "in_progress");
  end_event(out);
}

output_block* openai_responses_encoder::find_open(family f, const event& e) {
  return find_live(items_, item_count_, f, e);
}

output_block& openai_responses_encoder::open_item(family f, const event& e, std::string& out) {
  // A message item ends every open item; a function call ends open message items (parallel calls stay open).
  for (std::size_t i = 0; i < item_count_; ++i) {
    output_block& other = items_[i];
    if (other.open && (f == family::content || other.source_family == family::content)) close_item(other, out);
  }
  output_block& item = next_slot(items_, item_count_);
  item.source_family = f;
  item.source_index = e.index();
  item.source_choice = e.choice();
  item.output_index = static_cast<std::uint16_t>(item_count_ - 1);
  item.type = f == family::content ? block_type::text : block_type::tool_use;
  item.open = true;
  // Item ids: "msg_<response id without resp_>_<n>" / "fc_..._<n>".
  std::string_view base = state_.id;
  if (base.substr(0, 5) == "resp_") base.remove_prefix(5);
  item.item_id.assign(f == family::content ? "msg_" : "fc_");
  item.item_id.append(base);
  item.item_id.push_back('_');
  internal::string_sink sink{item.item_id};
  internal::write_uint(sink, item.output_index);
  if (f == family::tool) {  // tool items open only at tool_call_start; the item keeps the id for every event
    if (e.call_id().empty()) {
      append_made_up_call_id(item.call_id, "call_", state_.id, item.output_index);
    } else {
      item.call_id.assign(e.call_id());
    }
    item.name.assign(e.tool_name());
  }

  json_out j{out};
  begin_event(out, "response.output_item.added");
  j.raw(",\"output_index\":");
  j.num(item.output_index);
  j.raw(",\"item\":");
  write_responses_item(j, item, false);
  end_event(out);
  if (f == family::content) {
    begin_event(out, "response.content_part.added");
    write_item_ref(j, item);
    j.raw(",\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}");
    end_event(out);
  }
  return item;
}

void openai_responses_encoder::close_item(output_block& item, std::string& out) {
  if (!item.open) return;
  item.open = false;
  json_out j{out};
  if (item.source_family == family::content) {
    begin_event(out, "response.output_text.done");
    write_item_ref(j, item);
    j.raw(",\"content_index\":0,\"text\":");
    j.str(item.text);
    end_event(out);
    begin_event(out, "response.content_part.done");
    write_item_ref(j, item);
    j.raw(",\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":");
    j.str(item.text);
    j.raw(",\"annotations\":[]}");
    end_event(out);
  } else {
    begin_event(out, "response.function_call_arguments.done");
    write_item_ref(j, item);
    j.raw(",\"arguments\":");
    j.str(item.text);
    end_event(out);
  }
  begin_event(out, "response.output_item.done");
  j.raw(",\"output_index\":");
  j.num(item.output_index);
  j.raw(",\"item\":");
  write_responses_item(j, item, true);
  end_event(out);
}

void openai_responses_encoder::close_all(std::string& out) {
  for (std::size_t i = 0; i < item_count_; ++i) close_item(items_[i], out);
}

status openai_responses_encoder::encode(const event& e, std::string& out) noexcept {
  return guarded(out, state_, [&] { return encode_event(e, out); });
}

void openai_responses_encoder::keep_alive(std::string& out) noexcept {
  (void)guarded(out, state_, [&] {
    write_keep_alive(out);
    return status::ok;
  });
}

status openai_responses_encoder::finish(std::string& out) noexcept {
  return guarded(out, state_, [&] { return finish_response(out); });
}

status openai_responses_encoder::encode_event(const event& e, std::string& out) {
  if (e.validate() != status::ok) return status::invalid;
  if (state_.done || state_.absorb(e)) return status::ok;
  json_out j{out};
  // Text and argument deltas: the item keeps the whole text for its `done` event; `fields` is the JSON
  // written between the item reference and the delta string.
  const auto delta = [&](output_block& item, std::string_view event_type, std::string_view fields,
                         std::string_view text) {
    if (text.empty()) return;
    item.text.append(text);
    begin_event(out, event_type);
    write_item_ref(j, item);
    j.raw(fields);
    j.str(text);
    end_event(out);
  };
  constexpr std::string_view kArgumentsDelta = "response.function_call_arguments.delta";
  switch (e.kind()) {
    case event_kind::keep_alive:
      write_keep_alive(out);
      return status::ok;
    case event_kind::stream_complete:
      return finish_response(out);
    case event_kind::error:
      begin_event(out, "error");
      j.raw(",\"code\":");
      j.str(e.error_code().empty() ? std::string_view("server_error") : e.error_code());
      j.raw(",\"message\":");
      j.str(e.error_message());
      j.raw(",\"param\":null");
      end_event(out);
      state_.done = true;
      return status::ok;
    case event_kind::text_delta: {
      ensure_started(e, out);  // the message item opens at its first delta
      output_block* item = find_open(family::content, e);
      if (item == nullptr) item = &open_item(family::content, e, out);
      delta(*item, "response.output_text.delta", ",\"content_index\":0,\"delta\":", e.text());
      return status::ok;
    }
    case event_kind::tool_call_start: {
      ensure_started(e, out);
      if (find_open(family::tool, e) != nullptr) return status::ok;
      output_block& item = open_item(family::tool, e, out);
      if (output_block* held = held_.find(e)) {
        delta(item, kArgumentsDelta, ",\"delta\":", held->text);
        held_.release(*held);
      }
      return status::ok;
    }
    case event_kind::tool_args_delta:
      if (output_block* item = find_open(family::tool, e)) {
        delta(*item, kArgumentsDelta, ",\"delta\":", e.text());
      } else {
        held_.hold(e);  // written after the item's call_id and name, which clients need first
      }
      return status::ok;
    case event_kind::tool_call_end:
      if (output_block* item = find_open(family::tool, e)) {
        close_item(*item, out);
      } else {
        held_.release(e);  // the call ended without a start: a call without a name cannot be dispatched
      }
      return status::ok;
    case event_kind::content_block_stop:
      if (output_block* item = find_open(family::content, e)) {
        close_item(*item, out);
      } else if (output_block* tool = find_open(family::tool, e)) {
        close_item(*tool, out);
      }
      return status::ok;
    case event_kind::message_stop:
      held_.clear();
      ensure_started(e, out);
      close_all(out);
      state_.have_stop = true;
      state_.stop = e.stop();
      return status::ok;
    default:
      return status::ok;  // thinking, block starts (items open at their first delta), lifecycle, ...
  }
}

void openai_responses_encoder::write_keep_alive(std::string& out) {
  if (!state_.done) append_sse_keep_alive(out);
}

status openai_responses_encoder::finish_response(std::string& out) {
  if (state_.done) return status::ok;
  state_.done = true;
  if (!state_.have_stop) return status::ok;  // truncated upstream: no response.completed
  const bool incomplete = state_.stop == stop_reason::max_tokens || state_.stop == stop_reason::content_filter;
  begin_event(out, incomplete ? "response.incomplete" : "response.completed");
  write_response(out, incomplete ? "incomplete" : "completed");
  end_event(out);
  return status::ok;
}

// ---- Anthropic Messages ----

anthropic_encoder::anthropic_encoder(dialect_options options) : options_(std::move(options)) {}

void anthropic_encoder::reset() noexcept {
  state_.reset();
  block_count_ = 0;
  held_.clear();
}

namespace {

void begin_anthropic_event(json_out& j, std::string_view type) {
  j.raw("event: ");
  j.raw(type);
  j.raw("\ndata: {\"type\":\"");
  j.raw(type);
  j.raw("\"");
}

}  // namespace

void anthropic_encoder::write_usage(std::string& out) const {
  // rill's input_tokens counts every prompt token; Anthropic's excludes the cached ones it lists apart.
  const usage_counts& u = state_.usage;
  const std::uint64_t cached = std::uint64_t{u.cache_read_tokens} + u.cache_write_tokens;
  json_out j{out};
  j.raw("{\"input_tokens\":");
  j.num(u.input_tokens > cached ? u.input_tokens - cached : 0);
  if (u.cache_write_tokens != 0) {
    j.raw(",\"cache_creation_input_tokens\":");
    j.num(u.cache_write_tokens);
  }
  if (u.cache_read_tokens != 0) {
    j.raw(",\"cache_read_input_tokens\":");
    j.num(u.cache_read_tokens);
  }
  j.raw(",\"output_tokens\":");
  j.num(u.output_tokens);
  j.raw("}");
}

void anthropic_encoder::ensure_started(const event& e, std::string& out) {
  if (state_.started) return;
  state_.settle(e, options_);
  state_.started = true;
  json_out j{out};
  begin_anthropic_event(j, "message_start");
  j.raw(",\"message\":{\"id\":");
  j.str(state_.id);
  j.raw(",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
  j.str(state_.model);
  j.raw(",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
  write_usage(out);  // zeros when no usage arrived yet: the field is required
  j.raw("}}\n\n");
}

output_block* anthropic_encoder::find_open(family f, const event& e) {
  return find_live(blocks_, block_count_, f, e);
}

output_block& anthropic_encoder::open_block(family f, block_type type, const event& e, std::string& out) {
  // Blocks are written one after another; only parallel tool calls stay open together.
  for (std::size_t i = 0; i < block_count_; ++i) {
    output_block& other = blocks_[i];
    if (other.open && !(type == block_type::tool_use && other.type == block_type::tool_use)) close_block(other, out);
  }
  output_block& block = next_slot(blocks_, block_count_);
  block.source_family = f;
  block.source_index = e.index();
  block.source_choice = e.choice();
  block.output_index = static_cast<std::uint16_t>(block_count_ - 1);
  block.type = type;
  block.open = true;

  json_out j{out};
  begin_anthropic_event(j, "content_block_start");
  j.raw(",\"index\":");
  j.num(block.output_index);
  switch (type) {
    case block_type::thinking:
      j.raw(",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n");
      break;
    case block_type::redacted_thinking:
      j.raw(",\"content_block\":{\"type\":\"redacted_thinking\",\"data\":");
      j.str(e.kind() == event_kind::content_block_start ? e.block_data() : std::string_view());
      j.raw("}}\n\n");
      break;
    case block_type::tool_use:  // opens only at tool_call_start
      j.raw(",\"content_block\":{\"type\":\"tool_use\",\"id\":");
      write_call_id(out, e.call_id(), "toolu_", state_.id, block.output_index);
      j.raw(",\"name\":");
      j.str(e.tool_name());
      j.raw(",\"input\":{}}}\n\n");
      break;
    default:
      j.raw(",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
  }
  return block;
}

void anthropic_encoder::close_block(output_block& block, std::string& out) {
  if (!block.open) return;
  block.open = false;
  json_out j{out};
  begin_anthropic_event(j, "content_block_stop");
  j.raw(",\"index\":");
  j.num(block.output_index);
  j.raw("}\n\n");
}

void anthropic_encoder::close_all(std::string& out) {
  for (std::size_t i = 0; i < block_count_; ++i) close_block(blocks_[i], out);
}

status anthropic_encoder::encode(const event& e, std::string& out) noexcept {
  return guarded(out, state_, [&] { return encode_event(e, out); });
}

void anthropic_encoder::keep_alive(std::string& out) noexcept {
  (void)guarded(out, state_, [&] {
    write_keep_alive(out);
    return status::ok;
  });
}

status anthropic_encoder::finish(std::string& out) noexcept {
  return guarded(out, state_, [&] { return finish_response(out); });
}

status anthropic_encoder::encode_event(const event& e, std::string& out) {
  if (e.validate() != status::ok) return status::invalid;
  if (state_.done || state_.absorb(e)) return status::ok;
  json_out j{out};
  const auto delta = [&](const output_block& block, std::string_view delta_type, std::string_view key,
                         std::string_view text) {
    begin_anthropic_event(j, "content_block_delta");
    j.raw(",\"index\":");
    j.num(block.output_index);
    j.raw(",\"delta\":{\"type\":\"");
    j.raw(delta_type);
    j.raw("\",\"");
    j.raw(key);
    j.raw("\":");
    j.str(text);
    j.raw("}}\n\n");
  };
  // The open content block at the event's index when it has `type`; else a new one of that type.
  const auto content_block = [&](block_type type) -> output_block& {
    output_block* block = find_open(family::content, e);
    if (block != nullptr && block->type == type) return *block;
    return open_block(family::content, type, e, out);
  };

  switch (e.kind()) {
    case event_kind::keep_alive:
      write_keep_alive(out);
      return status::ok;
    case event_kind::stream_complete:
      return finish_response(out);
    case event_kind::error:
      begin_anthropic_event(j, "error");
      j.raw(",\"error\":{\"type\":");
      j.str(e.error_code().empty() ? std::string_view("api_error") : e.error_code());
      j.raw(",\"message\":");
      j.str(e.error_message());
      j.raw("}}\n\n");
      state_.done = true;
      return status::ok;
    case event_kind::content_block_start:
      // tool_use blocks open at tool_call_start, which carries the id and name.
      if (e.block() == block_type::text || e.block() == block_type::thinking ||
          e.block() == block_type::redacted_thinking) {
        ensure_started(e, out);
        static_cast<void>(content_block(e.block()));
      }
      return status::ok;
    case event_kind::content_block_stop:
      if (output_block* block = find_open(family::content, e)) {
        close_block(*block, out);
      } else if (output_block* tool = find_open(family::tool, e)) {
        close_block(*tool, out);
      }
      return status::ok;
    case event_kind::text_delta:
      ensure_started(e, out);
      delta(content_block(block_type::text), "text_delta", "text", e.text());
      return status::ok;
    case event_kind::thinking_delta:
      ensure_started(e, out);
      delta(content_block(block_type::thinking), "thinking_delta", "thinking", e.text());
      return status::ok;
    case event_kind::signature_delta:
      ensure_started(e, out);
      delta(content_block(block_type::thinking), "signature_delta", "signature", e.text());
      return status::ok;
    case event_kind::tool_call_start: {
      ensure_started(e, out);
      if (find_open(family::tool, e) != nullptr) return status::ok;
      const output_block& block = open_block(family::tool, block_type::tool_use, e, out);
      if (output_block* held = held_.find(e)) {
        if (!held->text.empty()) delta(block, "input_json_delta", "partial_json", held->text);
        held_.release(*held);
      }
      return status::ok;
    }
    case event_kind::tool_args_delta:
      if (output_block* block = find_open(family::tool, e)) {
        delta(*block, "input_json_delta", "partial_json", e.text());
      } else {
        held_.hold(e);  // written after the block's id and name, which clients need first
      }
      return status::ok;
    case event_kind::tool_call_end:
      if (output_block* block = find_open(family::tool, e)) {
        close_block(*block, out);
      } else {
        held_.release(e);  // the call ended without a start: a call without a name cannot be dispatched
      }
      return status::ok;
    case event_kind::message_stop:
      held_.clear();
      ensure_started(e, out);
      close_all(out);
      state_.have_stop = true;
      state_.stop = e.stop();
      return status::ok;
    default:
      return status::ok;  // no Messages counterpart
  }
}

void anthropic_encoder::write_keep_alive(std::string& out) {
  if (!state_.done) out.append("event: ping\ndata: {\"type\":\"ping\"}\n\n");
}

status anthropic_encoder::finish_response(std::string& out) {
  if (state_.done) return status::ok;
  state_.done = true;
  if (!state_.have_stop) return status::ok;  // truncated upstream: no message_stop
  json_out j{out};
  begin_anthropic_event(j, "message_delta");
  j.raw(",\"delta\":{\"stop_reason\":\"");
  j.raw(anthropic_stop_reason(state_.stop));
  j.raw("\",\"stop_sequence\":null},\"usage\":");
  write_usage(out);  // required by the schema: zeros when no usage arrived
  j.raw("}\n\n");
  begin_anthropic_event(j, "message_stop");
  j.raw("}\n\n");
  return status::ok;
}

// ---- run-time choice ----

output_format output_format_from_string(std::string_view name, bool& ok) noexcept {
  constexpr std::pair<std::string_view, output_format> kNames[] = {
      {"jsonl", output_format::jsonl},
      {"sse", output_format::sse},
      {"jsonrpc", output_format::jsonrpc},
      {"openai-chat", output_format::openai_chat},
      {"openai_chat", output_format::openai_chat},
      {"openai-responses", output_format::openai_responses},
      {"openai_responses", output_format::openai_responses},
      {"anthropic", output_format::anthropic},
  };
  for (const auto& [text, format] : kNames) {
    if (text == name) {
      ok = true;
      return format;
    }
  }
  ok = false;
  return output_format::jsonl;
}

std::string_view to_string(output_format format) noexcept {
  switch (format) {
    case output_format::jsonl: return "jsonl";
    case output_format::sse: return "sse";
    case output_format::jsonrpc: return "jsonrpc";
    case output_format::openai_chat: return "openai-chat";
    case output_format::openai_responses: return "openai-responses";
    case output_format::anthropic: return "anthropic";
  }
  return "jsonl";
}

output_encoder::output_encoder(output_format format, dialect_options options) : format_(format) {
  switch (format) {
    case output_format::openai_chat: dialect_.emplace<openai_chat_encoder>(std::move(options)); break;
    case output_format::openai_responses: dialect_.emplace<openai_responses_encoder>(std::move(options)); break;
    case output_format::anthropic: dialect_.emplace<anthropic_encoder>(std::move(options)); break;
    default: break;
  }
}

status output_encoder::encode(const event& e, std::string& out) noexcept {
  switch (format_) {
    case output_format::jsonl: return encode_json_line(e, out, sse_payload::event_json);
    case output_format::jsonrpc: return encode_json_line(e, out, sse_payload::jsonrpc);
    case output_format::sse: return encode_sse(e, out);
    default: break;
  }
  return std::visit(
      [&](auto& encoder) -> status {
        if constexpr (std::is_same_v<std::decay_t<decltype(encoder)>, std::monostate>) {
          return status::invalid;
        } else {
          return encoder.encode(e, out);
        }
      },
      dialect_);
}

void output_encoder::keep_alive(std::string& out) noexcept {
  switch (format_) {
    case output_format::jsonl:
    case output_format::jsonrpc:
      static_cast<void>(encode_json_line(event::keep_alive(), out,
                                         format_ == output_format::jsonl ? sse_payload::event_json
                                                                         : sse_payload::jsonrpc));
      return;
    case output_format::sse: append_sse_keep_alive(out); return;
    default: break;
  }
  std::visit(
      [&](auto& encoder) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(encoder)>, std::monostate>) encoder.keep_alive(out);
      },
      dialect_);
}

status output_encoder::finish(std::string& out) noexcept {
  return std::visit(
      [&](auto& encoder) -> status {
        if constexpr (std::is_same_v<std::decay_t<decltype(encoder)>, std::monostate>) {
          return status::ok;
        } else {
          return encoder.finish(out);
        }
      },
      dialect_);
}

void output_encoder::reset() noexcept {
  std::visit(
      [](auto& encoder) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(encoder)>, std::monostate>) encoder.reset();
      },
      dialect_);
}

}  // namespace rill::codec
