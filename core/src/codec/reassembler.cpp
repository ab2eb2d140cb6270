// reassembler: events back to a final response, and the fixtures' summary JSON.
#include "rill/codec/reassembler.hpp"

#include <simdjson.h>

#include <algorithm>

#include "internal/json_out.hpp"

namespace rill::codec {

namespace {

bool blank(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

// A minimal JSON text writer: RFC 8259 string escaping, optional two-space indentation.
class json_writer {
 public:
  explicit json_writer(bool pretty) : pretty_(pretty) {}

  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }
  void key(std::string_view k) {
    separate();
    string_literal(k);
    out_ += pretty_ ? ": " : ":";
    after_key_ = true;
  }
  void string(std::string_view s) {
    separate();
    string_literal(s);
  }
  void null() { raw("null"); }
  void boolean(bool b) { raw(b ? "true" : "false"); }
  void number(std::uint64_t n) { raw(std::to_string(n)); }
  void number(std::int64_t n) { raw(std::to_string(n)); }
  // A value that is already JSON text.
  void raw(std::string_view json) {
    separate();
    out_ += json;
  }
  std::string take() { return std::move(out_); }

 private:
  void open(char c) {
    separate();
    out_ += c;
    first_ = true;
    ++depth_;
  }
  void close(char c) {
    --depth_;
    if (!first_) newline();
    out_ += c;
    first_ = false;
  }
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (depth_ == 0) return;
    if (!first_) out_ += ',';
    first_ = false;
    newline();
  }
  void newline() {
    if (!pretty_) return;
    out_ += '\n';
    out_.append(static_cast<std::size_t>(depth_) * 2, ' ');
  }
  void string_literal(std::string_view s) {
    // The shared escaper: events may come from any producer, so ill-formed UTF-8 becomes U+FFFD.
    internal::string_sink sink{out_};
    (void)internal::write_string(sink, s, invalid_utf8::replace);  // replace never fails
  }

  std::string out_;
  bool pretty_;
  bool first_ = true;
  bool after_key_ = false;
  int depth_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------

reassembled_tool_call& reassembler::call_for(std::uint16_t choice, std::uint16_t index) {
  for (auto& c : result_.tool_calls) {
    if (c.choice == choice && c.index == index) return c;
  }
  reassembled_tool_call& c = result_.tool_calls.emplace_back();
  c.choice = choice;
  c.index = index;
  return c;
}

reassembled_thinking& reassembler::thinking_for(std::uint16_t index) {
  for (auto& t : result_.thinking) {
    if (t.index == index) return t;
  }
  reassembled_thinking& t = result_.thinking.emplace_back();
  t.index = index;
  return t;
}

std::string& reassembler::text_for(std::uint16_t choice) {
  if (choice == 0) return result_.text;
  std::vector<reassembled_choice>& others = result_.other_choices;
  const auto at = std::lower_bound(others.begin(), others.end(), choice,
                                   [](const reassembled_choice& c, std::uint16_t v) { return c.choice < v; });
  if (at != others.end() && at->choice == choice) return at->text;
  reassembled_choice added;
  added.choice = choice;
  return others.insert(at, std::move(added))->text;
}

void reassembler::add(const event& e) {
  ++result_.events;
  switch (e.kind()) {
    case event_kind::message_start:
      result_.id.assign(e.message_id());
      result_.model.assign(e.model());
      break;
    case event_kind::text_delta:
      text_for(e.choice()).append(e.text());
      break;
    case event_kind::thinking_delta:
      thinking_for(e.index()).text.append(e.text());
      break;
    case event_kind::signature_delta:
      thinking_for(e.index()).signature.append(e.text());
      break;
    case event_kind::content_block_start:
      if (e.block() == block_type::redacted_thinking) {
        reassembled_thinking& t = thinking_for(e.index());
        t.redacted = true;
        t.data.append(e.block_data());
      }
      break;
    case event_kind::tool_call_start: {
      reassembled_tool_call& c = call_for(e.choice(), e.index());
      c.id.assign(e.call_id());
      c.name.assign(e.tool_name());
      dirty_ = true;
      break;
    }
    case event_kind::tool_args_delta:
      call_for(e.choice(), e.index()).arguments_raw.append(e.text());
      dirty_ = true;
      break;
    case event_kind::tool_call_end:
      call_for(e.choice(), e.index()).ended = true;
      dirty_ = true;
      break;
    case event_kind::usage:
      result_.usage = e.usage_values();
      break;
    case event_kind::error:
      result_.has_error = true;
      result_.error_code.assign(e.error_code());
      result_.error_message.assign(e.error_message());
      result_.stop = stop_reason::error;
      result_.completed = false;
      break;
    case event_kind::message_stop:
      if (!result_.has_error) {
        result_.stop = e.stop();
        if (e.stop() == stop_reason::none) result_.stop.reset();
      }
      break;
    case event_kind::stream_complete:
      if (!result_.has_error) result_.completed = true;
      break;
    default:
      break;
  }
}

const reassembled& reassembler::result() {
  if (dirty_) {
    dirty_ = false;
    std::stable_sort(result_.tool_calls.begin(), result_.tool_calls.end(),
                     [](const reassembled_tool_call& a, const reassembled_tool_call& b) {
                       return a.choice != b.choice ? a.choice < b.choice : a.index < b.index;
                     });
    simdjson::dom::parser parser;
    for (auto& c : result_.tool_calls) {
      if (blank(c.arguments_raw)) {
        c.arguments_valid = true;
        continue;
      }
      simdjson::dom::element root;
      c.arguments_valid = parser.parse(c.arguments_raw).get(root) == simdjson::SUCCESS;
    }
  }
  return result_;
}

void reassembler::reset() {
  result_ = reassembled{};
  dirty_ = false;
}

summary_extras extras_from(const provider_summary& summary) noexcept {
  summary_extras x;
  x.dialect = summary.dialect;
  x.stop_reason_native = summary.stop_reason;
  x.has_stop_reason = summary.has_stop_reason;
  x.usage_native_json = summary.usage_native;
  x.sse_events_dispatched = summary.counters.sse_events;
  x.last_sequence_number = summary.last_sequence_number;
  return x;
}

std::string summary_json(const reassembled& result, const summary_extras& extras, bool pretty) {
  json_writer w(pretty);
  w.begin_object();
  w.key("provider");
  w.string(to_string(extras.dialect));
  w.key("id");
  w.string(result.id);
  w.key("model");
  w.string(result.model);
  w.key("text");
  w.string(result.text);
  if (!result.other_choices.empty()) {  // only with n > 1, so the fixtures' shape is kept otherwise
    w.key("other_choices");
    w.begin_array();
    for (const reassembled_choice& c : result.other_choices) {
      w.begin_object();
      w.key("choice");
      w.number(std::uint64_t{c.choice});
      w.key("text");
      w.string(c.text);
      w.end_object();
    }
    w.end_array();
  }

  w.key("thinking");
  w.begin_array();
  for (const auto& t : result.thinking) {
    w.begin_object();
    w.key("text");
    w.string(t.text);
    w.key("signature");
    w.string(t.signature);
    if (t.redacted) {
      w.key("redacted");
      w.boolean(true);
      w.key("data");
      w.string(t.data);
    }
    w.end_object();
  }
  w.end_array();

  w.key("tool_calls");
  w.begin_array();
  simdjson::dom::parser parser;
  for (const auto& c : result.tool_calls) {
    w.begin_object();
    w.key("id");
    if (c.id.empty()) {
      w.null();  // Gemini sends calls without ids
    } else {
      w.string(c.id);
    }
    w.key("name");
    w.string(c.name);
    w.key("arguments");
    simdjson::dom::element root;
    if (blank(c.arguments_raw)) {
      w.raw("{}");
    } else if (parser.parse(c.arguments_raw).get(root) == simdjson::SUCCESS) {
      w.raw(simdjson::to_string(root));
    } else {
      w.null();
    }
    w.key("arguments_raw");
    w.string(c.arguments_raw);
    if (!c.arguments_valid && !blank(c.arguments_raw)) {
      w.key("arguments_valid");
      w.boolean(false);
    }
    w.end_object();
  }
  w.end_array();

  w.key("stop_reason");
  if (extras.has_stop_reason) {
    w.string(extras.stop_reason_native);
  } else {
    w.null();
  }
  w.key("stop_reason_normalized");
  if (result.stop) {
    w.string(to_string(*result.stop));
  } else {
    w.null();
  }

  w.key("usage");
  if (result.usage) {
    w.begin_object();
    w.key("input_tokens");
    w.number(std::uint64_t{result.usage->input_tokens});
    w.key("output_tokens");
    w.number(std::uint64_t{result.usage->output_tokens});
    w.key("total_tokens");
    w.number(std::uint64_t{result.usage->total_tokens});
    w.end_object();
  } else {
    w.null();
  }
  w.key("usage_native");
  if (extras.usage_native_json.empty()) {
    w.null();
  } else {
    w.raw(extras.usage_native_json);
  }

  w.key("error");
  if (result.has_error) {
    w.begin_object();
    w.key("type");
    w.string(result.error_code);
    w.key("message");
    w.string(result.error_message);
    w.end_object();
  } else {
    w.null();
  }
  w.key("completed");
  w.boolean(result.completed);
  w.key("sse_events_dispatched");
  w.number(extras.sse_events_dispatched);
  if (extras.dialect == provider::openai_responses) {
    w.key("last_sequence_number");
    if (extras.last_sequence_number >= 0) {
      w.number(extras.last_sequence_number);
    } else {
      w.null();
    }
  }
  w.end_object();
  std::string out = w.take();
  if (pretty) out += '\n';
  return out;
}

}  // namespace rill::codec
