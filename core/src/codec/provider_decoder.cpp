// provider_decoder: SSE framing, dialect detection and the helpers every adapter shares.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>

#include "codec/provider_impl.hpp"

namespace rill::codec {

static_assert(sse_decoder::kDataPadding >= simdjson::SIMDJSON_PADDING,
              "SSE data is parsed in place, so it must carry simdjson's padding");

namespace {

constexpr std::string_view kProviderNames[] = {"unknown", "openai_chat", "openai_responses", "anthropic",
                                               "gemini"};

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

std::string_view to_string(provider dialect) noexcept {
  const auto i = static_cast<std::size_t>(dialect);
  return i < std::size(kProviderNames) ? kProviderNames[i] : kProviderNames[0];
}

provider provider_from_string(std::string_view name, bool& ok) noexcept {
  ok = true;
  if (name == "auto") return provider::unknown;
  char normalized[24];
  if (name.size() < sizeof normalized) {
    for (std::size_t i = 0; i < name.size(); ++i) normalized[i] = name[i] == '-' ? '_' : name[i];
    const std::string_view n(normalized, name.size());
    for (std::size_t i = 1; i < std::size(kProviderNames); ++i) {
      if (n == kProviderNames[i]) return static_cast<provider>(i);
    }
  }
  ok = false;
  return provider::unknown;
}

// ---------------------------------------------------------------------------------------------------------
// provider_decoder: the public face forwards to impl.

provider_decoder::provider_decoder(const provider_decoder_options& options)
    : impl_(std::make_unique<impl>(options)) {}
provider_decoder::~provider_decoder() = default;
provider_decoder::provider_decoder(provider_decoder&&) noexcept = default;
provider_decoder& provider_decoder::operator=(provider_decoder&&) noexcept = default;

status provider_decoder::feed_erased(std::string_view bytes, void* sink, sink_fn fn) noexcept {
  impl_->sink = sink;
  impl_->sink_call = fn;
  return impl_->feed(bytes);
}

status provider_decoder::finish_erased(void* sink, sink_fn fn) noexcept {
  impl_->sink = sink;
  impl_->sink_call = fn;
  return impl_->finish();
}

status provider_decoder::decode_erased(const sse_event& ev, void* sink, sink_fn fn) noexcept {
  if (impl_->error != status::ok) return impl_->error;
  impl_->sink = sink;
  impl_->sink_call = fn;
  return impl_->on_sse_event(ev, false);
}

provider provider_decoder::dialect() const noexcept { return impl_->active; }
const provider_summary& provider_decoder::summary() const noexcept { return impl_->summary; }
const sse_decoder& provider_decoder::sse() const noexcept { return impl_->sse; }
status provider_decoder::error() const noexcept { return impl_->error; }
std::string_view provider_decoder::error_message() const noexcept { return impl_->error_text; }
std::uint64_t provider_decoder::error_offset() const noexcept { return impl_->error_offset; }
void provider_decoder::reset() noexcept { impl_->reset(); }

// ---------------------------------------------------------------------------------------------------------
// impl: plumbing

provider_decoder::impl::impl(const provider_decoder_options& opts)
    : options(opts), sse(opts.sse), active(opts.dialect) {
  summary.dialect = active;
  calls.resize(4);
  for (auto& c : calls) c.args.reserve(256);
  usage_fields.resize(8);
  error_text.reserve(256);
  unpadded_copy.reserve(1024);
  // Sized once for typical events; the parsers grow (once) for larger ones.
  if (parser.allocate(64 * 1024) != simdjson::SUCCESS) throw std::bad_alloc();
  if (args_parser.allocate(4 * 1024) != simdjson::SUCCESS) throw std::bad_alloc();
}

void provider_decoder::impl::reset() noexcept {
  sse.reset();
  active = options.dialect;
  summary.dialect = active;
  summary.id.clear();
  summary.model.clear();
  summary.stop_reason.clear();
  summary.has_stop_reason = false;
  summary.usage_native.clear();
  summary.completed = false;
  summary.errored = false;
  summary.last_sequence_number = -1;
  summary.truncated = false;
  summary.counters = {};
  sink = nullptr;
  sink_call = nullptr;
  sink_status = status::ok;
  error = status::ok;
  error_offset = 0;
  error_text.clear();
  for (std::size_t i = 0; i < calls_used; ++i) calls[i].args.clear();
  calls_used = 0;
  argument_bytes = 0;
  tool_calls_seen = 0;
  message_started = false;
  stop_known = false;
  stop_emitted = false;
  complete_emitted = false;
  refusal_seen = false;
  pending_stop = stop_reason::none;
  gemini_usage_seen = false;
  gemini_candidates_seen = 0;
  gemini_candidates_finished = 0;
  gemini_last_usage = {};
  usage_fields_used = 0;
}

void provider_decoder::impl::fail(status s, std::string_view what, std::uint64_t at) {
  error = s;
  error_offset = at;
  char where[48];
  std::snprintf(where, sizeof where, " at byte offset %" PRIu64, at);
  error_text.assign(what);
  if (what.find("byte offset") == std::string_view::npos) error_text.append(where);
}

bool provider_decoder::impl::emit(const event& e) {
  if (sink_status != status::ok || error != status::ok) return false;
  if (!e.validates_trivially()) {
    // Built from upstream strings: one too long for an event field (a message id, a tool call id, an error
    // type over 65535 bytes) fails the decode here, rather than reach the sink as an event it must refuse.
    if (const status v = e.validate(); v != status::ok) {
      fail(v,
           v == status::too_large ? "an upstream field is longer than an event field may be (65535 bytes)"
                                  : "an upstream event maps to an invalid event",
           event_offset);
      return false;
    }
  }
  sink_status = sink_call(sink, e);
  if (sink_status != status::ok) return false;
  ++summary.counters.events_emitted;
  return true;
}

status provider_decoder::impl::feed(std::string_view bytes) noexcept {
  if (error != status::ok) return error;
  sse.set_input(bytes);
  sse_event ev;
  for (;;) {
    const sse_decoder::step step = sse.next(ev);
    if (step == sse_decoder::step::need_input) return status::ok;
    const status s = take_step(step, ev);
    if (s != status::ok) return s;
  }
}

status provider_decoder::impl::take_step(sse_decoder::step step, const sse_event& ev) noexcept {
  if (step == sse_decoder::step::failed) {
    fail(sse.error(), sse.error_message(), sse.error_offset());
    return error;
  }
  return on_sse_event(ev, true);
}

status provider_decoder::impl::finish() noexcept {
  if (error != status::ok) return error;
  sse_event ev;
  const sse_decoder::step step = sse.next_at_eof(ev);
  if (step != sse_decoder::step::need_input) {
    const status s = take_step(step, ev);
    if (s != status::ok) return s;
  }
  summary.truncated = sse.truncated();
  try {
    // Whatever the provider left open is closed, so a consumer never waits for an end that cannot come.
    end_open_calls();
    if (stop_known) emit_stop();
    if (sink_status != status::ok) fail(sink_status, "the event sink stopped decoding", sse.bytes_consumed());
  } catch (const std::bad_alloc&) {
    out_of_memory(sse.bytes_consumed());
  }
  return error;
}

void provider_decoder::impl::out_of_memory(std::uint64_t at) noexcept {
  error = status::too_large;
  error_offset = at;
  // The constructor reserved room for this message: assigning it allocates nothing.
  error_text.assign("out of memory while decoding the response (the decoder cannot continue)");
}

bool provider_decoder::impl::parse(const sse_event& ev, bool padded, dom_json::element& root) {
  const char* data = ev.data.data();
  if (!padded) {
    unpadded_copy.assign(ev.data);
    unpadded_copy.append(simdjson::SIMDJSON_PADDING, '\0');
    data = unpadded_copy.data();
  }
  const auto err = parser.parse(data, ev.data.size(), false).get(root);
  if (err == simdjson::SUCCESS) return true;
  if (err == simdjson::MEMALLOC) {
    fail(status::too_large, "no memory to parse the event's JSON", ev.offset);
    return false;
  }
  ++summary.counters.non_json_data;
  if (options.strict_json) {
    std::string what = "SSE data is not JSON (";
    what += simdjson::error_message(err);
    what += ")";
    fail(status::invalid, what, ev.offset);
  }
  return false;
}

provider provider_decoder::impl::detect(const sse_event& ev, const dom_json::element* root) const noexcept {
  const std::string_view type = ev.event_type;
  if (type.substr(0, 9) == "response.") return provider::openai_responses;
  if (type == "message_start" || type == "content_block_start" || type == "content_block_delta" ||
      type == "content_block_stop" || type == "message_delta" || type == "message_stop") {
    return provider::anthropic;
  }
  if (root == nullptr) return provider::unknown;
  dom_json::object o;
  if (root->get_object().get(o) != simdjson::SUCCESS) return provider::unknown;
  const std::string_view data_type = dom_json::string_or_empty(o, "type");
  if (data_type.substr(0, 9) == "response.") return provider::openai_responses;
  if (data_type == "message_start" || data_type == "content_block_start" ||
      data_type == "content_block_delta" || data_type == "message_delta") {
    return provider::anthropic;
  }
  dom_json::element e;
  if (dom_json::get(o, "choices", e) || dom_json::string_or_empty(o, "object") == "chat.completion.chunk") {
    return provider::openai_chat;
  }
  if (dom_json::get(o, "candidates", e) || dom_json::get(o, "usageMetadata", e) || dom_json::get(o, "promptFeedback", e)) {
    return provider::gemini;
  }
  return provider::unknown;
}

status provider_decoder::impl::on_sse_event(const sse_event& ev, bool padded) noexcept {
  // The adapters allocate (ids, arguments, the native usage): std::bad_alloc fails the decoder here, with
  // this event's output cut short, rather than terminate the process.
  try {
    return decode_event(ev, padded);
  } catch (const std::bad_alloc&) {
    out_of_memory(ev.offset);
    return error;
  }
}

status provider_decoder::impl::decode_event(const sse_event& ev, bool padded) {
  ++summary.counters.sse_events;
  if (summary.errored) {  // an in-stream error ended the response: nothing after it is emitted
    ++summary.counters.after_error;
    return sink_status;
  }
  event_offset = ev.offset;
  dom_json::element root;
  bool parsed = false;
  if (active == provider::unknown) {
    active = detect(ev, nullptr);
    if (active == provider::unknown) {
      std::string_view d = ev.data;
      while (!d.empty() && is_space(d.back())) d.remove_suffix(1);
      if (d == "[DONE]") {
        active = provider::openai_chat;
      } else if (parse(ev, padded, root)) {
        parsed = true;
        active = detect(ev, &root);
        dom_json::object o, err;
        const bool is_object = root.get_object().get(o) == simdjson::SUCCESS;
        if (active == provider::unknown && is_object && event_type(o, ev) == "error") {
          typed_error(o);  // an error before anything identified the dialect
        } else if (active == provider::unknown && is_object && dom_json::get_object(o, "error", err)) {
          generic_error(err);
        } else if (active == provider::unknown) {
          ++summary.counters.unknown_events;
        }
      } else if (error != status::ok) {
        return error;
      }
    }
    summary.dialect = active;
    if (active == provider::unknown) return sink_status;
  }

  if (active == provider::openai_chat) {
    std::string_view d = ev.data;
    while (!d.empty() && is_space(d.back())) d.remove_suffix(1);
    if (d == "[DONE]") {
      openai_chat_done();
      return sink_status;
    }
  }
  if (!parsed) {
    if (!parse(ev, padded, root)) return error;
  }
  switch (active) {
    case provider::openai_chat: openai_chat(ev, root); break;
    case provider::openai_responses: openai_responses(ev, root); break;
    case provider::anthropic: anthropic(ev, root); break;
    case provider::gemini: gemini(ev, root); break;
    case provider::unknown: break;
  }
  if (error != status::ok) return error;
  if (sink_status != status::ok) fail(sink_status, "the event sink stopped decoding", ev.offset);
  return sink_status;
}

// ---------------------------------------------------------------------------------------------------------
// impl: helpers shared by the dialects

provider_decoder::impl::tool_call* provider_decoder::impl::find_call(std::uint16_t choice,
                                                                     std::uint16_t index) noexcept {
  for (std::size_t i = 0; i < calls_used; ++i) {
    if (calls[i].choice == choice && calls[i].index == index) return &calls[i];
  }
  return nullptr;
}

provider_decoder::impl::tool_call* provider_decoder::impl::add_call(std::uint16_t choice,
                                                                    std::uint16_t index) {
  static_assert(kMaxToolCalls == 1024, "the message below names the bound");
  if (calls_used == kMaxToolCalls) {
    fail(status::too_large, "more than 1024 tool calls in one response", event_offset);
    return nullptr;
  }
  if (calls_used == calls.size()) calls.emplace_back();
  tool_call& c = calls[calls_used++];
  c.choice = choice;
  c.index = index;
  c.open = true;
  c.started = false;
  c.id.clear();
  c.args.clear();
  ++tool_calls_seen;
  return &c;
}

bool provider_decoder::impl::call_id_fits(std::string_view id) {
  if (id.size() <= event::kMaxLeadingFieldBytes) return true;
  fail(status::too_large, "an upstream tool call id is longer than an event field may be (65535 bytes)",
       event_offset);
  return false;
}

bool provider_decoder::impl::start_call(tool_call& call, std::string_view id, std::string_view name) {
  if (call.started) return true;
  if (!call_id_fits(id)) return false;
  if (!id.empty()) call.id.assign(id);
  if (name.empty()) {
    ++summary.counters.malformed_payloads;
    return true;
  }
  call.started = true;
  if (!emit(event::tool_call_start(call.index, call.id, name, call.choice))) return false;
  return call.args.empty() || emit(event::tool_args_delta(call.index, call.args, call.choice));
}

void provider_decoder::impl::add_fragment(tool_call& call, std::string_view fragment) {
  if (fragment.empty()) return;
  if (fragment.size() > options.max_argument_bytes - argument_bytes) {
    fail(status::too_large, "tool call arguments over max_argument_bytes in one response", event_offset);
    return;
  }
  argument_bytes += fragment.size();
  call.args.append(fragment);
  if (call.started) emit(event::tool_args_delta(call.index, fragment, call.choice));
}

bool provider_decoder::impl::args_valid(tool_call& call) {
  std::size_t first = 0;
  while (first < call.args.size() && is_space(call.args[first])) ++first;
  if (first == call.args.size()) return true;  // no arguments at all: the empty object
  const std::size_t size = call.args.size();
  call.args.append(simdjson::SIMDJSON_PADDING, '\0');  // parse in place; capacity is kept for next time
  dom_json::element root;
  const bool ok = args_parser.parse(call.args.data(), size, false).get(root) == simdjson::SUCCESS;
  call.args.resize(size);
  return ok;
}

bool provider_decoder::impl::end_call(tool_call& call) {
  if (!call.open) return true;
  call.open = false;
  if (!call.started) return true;
  const bool invalid = !args_valid(call);
  return emit(event::tool_call_end(call.index, invalid, call.choice));
}

bool provider_decoder::impl::end_open_calls(int choice_filter) {
  for (std::size_t i = 0; i < calls_used; ++i) {
    if (choice_filter >= 0 && calls[i].choice != choice_filter) continue;
    if (!end_call(calls[i])) return false;
  }
  return true;
}

void provider_decoder::impl::start_message(std::string_view id, std::string_view model) {
  if (message_started) return;
  message_started = true;
  summary.id.assign(id);
  summary.model.assign(model);
  emit(event::message_start(summary.id, summary.model));
}

void provider_decoder::impl::set_native_stop(std::string_view native, stop_reason normalized) {
  summary.stop_reason.assign(native);
  summary.has_stop_reason = true;
  pending_stop = normalized;
  stop_known = true;
}

bool provider_decoder::impl::emit_stop() {
  if (stop_emitted) return true;
  stop_emitted = true;
  return emit(event::message_stop(pending_stop));
}

bool provider_decoder::impl::emit_complete() {
  if (complete_emitted || summary.errored) return true;
  complete_emitted = true;
  summary.completed = true;
  return emit(event::stream_complete(summary.counters.sse_events, 0));
}

bool provider_decoder::impl::emit_error(std::string_view code, std::string_view message, bool retryable) {
  summary.errored = true;
  summary.completed = false;
  if (!emit(event::error(code, message, retryable))) return false;
  end_open_calls();
  pending_stop = stop_reason::error;
  stop_known = true;
  return emit_stop();
}

bool provider_decoder::impl::emit_usage(const usage_counts& counts) {
  return emit(event::usage(counts));
}

void provider_decoder::impl::set_usage_native(dom_json::element usage) {
  summary.usage_native = simdjson::to_string(usage);
}

bool provider_decoder::impl::as_object(dom_json::element e, dom_json::object& out) noexcept {
  if (e.get_object().get(out) == simdjson::SUCCESS) return true;
  ++summary.counters.malformed_payloads;
  return false;
}

bool provider_decoder::impl::took_error(dom_json::object chunk) {
  dom_json::object err;
  if (!dom_json::get_object(chunk, "error", err)) return false;
  generic_error(err);
  return true;
}

void provider_decoder::impl::generic_error(dom_json::object error_object) {
  // {"error": {"type" | "status" | "code", "message"}}: OpenAI and Gemini both use this shape.
  std::string_view code = dom_json::string_or_empty(error_object, "type");
  if (code.empty()) code = dom_json::string_or_empty(error_object, "status");
  if (code.empty()) code = dom_json::string_or_empty(error_object, "code");
  std::string_view message = dom_json::string_or_empty(error_object, "message");
  emit_error(code.empty() ? std::string_view("error") : code, message, is_retryable_error(code));
}

void provider_decoder::impl::typed_error(dom_json::object data) {
  dom_json::object nested;
  if (dom_json::get_object(data, "error", nested)) {
    generic_error(nested);  // Anthropic: the nested object's `type` is the code
    return;
  }
  std::string_view code = dom_json::string_or_empty(data, "code");  // Responses
  emit_error(code.empty() ? std::string_view("error") : code, dom_json::string_or_empty(data, "message"),
             is_retryable_error(code));
}

bool is_retryable_error(std::string_view code) noexcept {
  // OpenAI (Chat and Responses), Anthropic and Gemini codes for overload, rate limits and server faults.
  return code == "server_error" || code == "rate_limit_exceeded" || code == "overloaded" ||
         code == "server_is_overloaded" || code == "overloaded_error" || code == "rate_limit_error" ||
         code == "api_error" || code == "timeout_error" || code == "UNAVAILABLE" ||
         code == "RESOURCE_EXHAUSTED" || code == "INTERNAL";
}

}  // namespace rill::codec
