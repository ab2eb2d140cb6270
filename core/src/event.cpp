#include "rill/event.hpp"

#include <algorithm>

namespace rill {
namespace {

constexpr std::uint8_t kReq0 = 1u << 0;
constexpr std::uint8_t kReq1 = 1u << 1;

// Indexed by event_kind. Field names are the JSON keys the codec writes.
constexpr std::array<kind_descriptor, kEventKindCount> kKinds = {{
    {"none", 0, {}, 0},
    {"message_start", 2, {"message_id", "model"}, 0},
    {"message_stop", 0, {}, 0},
    {"content_block_start", 1, {"data"}, 0},
    {"content_block_stop", 0, {}, 0},
    {"text_delta", 1, {"text"}, 0},
    {"thinking_delta", 1, {"text"}, 0},
    {"signature_delta", 1, {"signature"}, 0},
    {"tool_call_start", 2, {"call_id", "name"}, kReq1},
    {"tool_args_delta", 1, {"fragment"}, 0},
    {"tool_call_end", 0, {}, 0},
    {"tool_result", 2, {"call_id", "content"}, kReq0},
    {"tool_error", 2, {"call_id", "message"}, kReq0},
    {"usage", 0, {}, 0},
    {"error", 2, {"code", "message"}, 0},
    {"stream_start", 3, {"provider", "model", "request_id"}, 0},
    {"stream_complete", 0, {}, 0},
    {"keep_alive", 0, {}, 0},
    {"execution_started", 2, {"execution_id", "name"}, kReq0},
    {"execution_completed", 2, {"execution_id", "detail"}, kReq0},
    {"execution_failed", 2, {"execution_id", "error"}, kReq0},
    {"step_started", 2, {"step_id", "name"}, kReq0},
    {"step_completed", 2, {"step_id", "detail"}, kReq0},
    {"step_failed", 2, {"step_id", "error"}, kReq0},
    {"state_updated", 2, {"key", "value"}, kReq0},
    {"agent_added", 2, {"agent_id", "name"}, kReq0},
    {"agent_removed", 2, {"agent_id", "reason"}, kReq0},
    {"mcp_connected", 2, {"server", "detail"}, kReq0},
    {"mcp_disconnected", 2, {"server", "reason"}, kReq0},
    {"user", 1, {"data"}, 0},
}};

constexpr std::array<std::string_view, kBlockTypeCount> kBlockNames = {
    "text", "thinking", "redacted_thinking", "tool_use", "tool_result", "image", "other"};
constexpr std::array<std::string_view, kStopReasonCount> kStopNames = {
    "none",          "end_turn",       "tool_use", "max_tokens", "stop_sequence",
    "content_filter", "refusal",       "pause_turn", "error"};

constexpr bool required_mask_matches_table() {
  for (std::size_t i = 0; i < kKinds.size(); ++i) {
    const bool has_required = kKinds[i].required_fields != 0;
    const bool in_mask = (kKindsWithRequiredFields >> i) & 1u;
    if (has_required != in_mask) return false;
  }
  return true;
}
static_assert(required_mask_matches_table(), "kKindsWithRequiredFields disagrees with the kind table");
static_assert(kEventKindCount <= 64, "kKindsWithRequiredFields is a 64-bit mask");

bool is_lifecycle(event_kind kind) noexcept {
  return kind >= event_kind::execution_started && kind <= event_kind::mcp_disconnected;
}

template <std::size_t N>
std::size_t find_name(const std::array<std::string_view, N>& names, std::string_view name) noexcept {
  return static_cast<std::size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

}  // namespace

const kind_descriptor& kind_info(event_kind kind) noexcept {
  const auto i = static_cast<std::size_t>(kind);
  return i < kKinds.size() ? kKinds[i] : kKinds[0];
}

event_kind kind_from_string(std::string_view name) noexcept {
  for (std::size_t i = 1; i < kKinds.size(); ++i) {
    if (kKinds[i].name == name) return static_cast<event_kind>(i);
  }
  return event_kind::none;
}

std::string_view to_string(block_type type) noexcept {
  const auto i = static_cast<std::size_t>(type);
  return i < kBlockNames.size() ? kBlockNames[i] : "other";
}

std::string_view to_string(stop_reason reason) noexcept {
  const auto i = static_cast<std::size_t>(reason);
  return i < kStopNames.size() ? kStopNames[i] : "none";
}

block_type block_type_from_string(std::string_view name, bool& ok) noexcept {
  const std::size_t i = find_name(kBlockNames, name);
  ok = i < kBlockNames.size();
  return ok ? static_cast<block_type>(i) : block_type::other;
}

stop_reason stop_reason_from_string(std::string_view name, bool& ok) noexcept {
  const std::size_t i = find_name(kStopNames, name);
  ok = i < kStopNames.size();
  return ok ? static_cast<stop_reason>(i) : stop_reason::none;
}

// ---- construction ----

event event::with_text(event_kind kind, std::uint16_t index, std::uint8_t aux, bool kind_bit,
                       const std::string_view* fields, std::size_t count) noexcept {
  event e;
  e.kind_ = kind;
  e.index_ = index;
  e.aux_ = aux;
  if (kind_bit) e.flags_ |= kFlagKindBit;
  const std::size_t n = kind_info(kind).field_count;
  RILL_ASSERT(count <= n, "more text fields than the kind has");
  count = std::min(count, n);
  const std::size_t table = n > 1 ? 2 * (n - 1) : 0;

  std::size_t total = 0;
  for (std::size_t i = 0; i < count; ++i) total += fields[i].size();
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const std::size_t len = i < count ? fields[i].size() : 0;
    if (len > kMaxLeadingFieldBytes) e.flags_ |= kFlagOversizeField;
    const auto len16 = static_cast<std::uint16_t>(std::min<std::size_t>(len, kMaxLeadingFieldBytes));
    std::memcpy(e.payload_ + 2 * i, &len16, sizeof len16);
  }
  if (total + table <= kInlineTextCapacity) {
    unsigned char* out = e.payload_ + table;
    for (std::size_t i = 0; i < count; ++i) {
      if (!fields[i].empty()) std::memcpy(out, fields[i].data(), fields[i].size());
      out += fields[i].size();
    }
    e.inline_size_ = static_cast<std::uint8_t>(total);
    return e;
  }
  // Too long to inline: borrow each field where it is; the stream copies them into its arena on send.
  // The leading-length table is rebuilt from these spans then, so it is not kept here.
  std::memset(e.payload_, 0, sizeof e.payload_);
  e.flags_ |= kFlagExternalText;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string_view f = i < count ? fields[i] : std::string_view{};
    if (f.size() > 0xffffffffu) e.flags_ |= kFlagOversizeField;
    e.set_span_at(kExternalSpanStride * i, f.data(), static_cast<std::uint32_t>(f.size()));
  }
  if (total > 0xffffffffu) e.flags_ |= kFlagOversizeField;
  return e;
}

event event::with_numbers(event_kind kind, std::uint64_t a, std::uint64_t b) noexcept {
  event e;
  e.kind_ = kind;
  std::memcpy(e.payload_, &a, sizeof a);
  std::memcpy(e.payload_ + 8, &b, sizeof b);
  return e;
}

event event::message_start(std::string_view message_id, std::string_view model) noexcept {
  const std::string_view f[] = {message_id, model};
  return with_text(event_kind::message_start, 0, 0, false, f, 2);
}

event event::message_stop(stop_reason reason) noexcept {
  event e;
  e.kind_ = event_kind::message_stop;
  e.aux_ = static_cast<std::uint8_t>(reason);
  return e;
}

event event::content_block_start(std::uint16_t index, block_type type, std::string_view data) noexcept {
  return with_text(event_kind::content_block_start, index, static_cast<std::uint8_t>(type), false, &data, 1);
}

event event::content_block_stop(std::uint16_t index) noexcept {
  event e;
  e.kind_ = event_kind::content_block_stop;
  e.index_ = index;
  return e;
}

event event::tool_call_start(std::uint16_t index, std::string_view call_id, std::string_view tool_name,
                             std::uint16_t choice) noexcept {
  const std::string_view f[] = {call_id, tool_name};
  event e = with_text(event_kind::tool_call_start, index, 0, false, f, 2);
  e.choice_ = choice;
  return e;
}

event event::with_borrowed_field(event_kind kind, std::uint16_t index, std::string_view text,
                                 std::uint16_t choice) noexcept {
  event e = with_text(kind, index, 0, false, &text, 1);
  e.choice_ = choice;
  return e;
}

event event::tool_call_end(std::uint16_t index, bool args_invalid, std::uint16_t choice) noexcept {
  event e;
  e.kind_ = event_kind::tool_call_end;
  e.index_ = index;
  e.choice_ = choice;
  if (args_invalid) e.flags_ |= kFlagKindBit;
  return e;
}

event event::tool_result(std::string_view call_id, std::string_view content, bool is_error) noexcept {
  const std::string_view f[] = {call_id, content};
  return with_text(event_kind::tool_result, 0, 0, is_error, f, 2);
}

event event::tool_error(std::string_view call_id, std::string_view message) noexcept {
  const std::string_view f[] = {call_id, message};
  return with_text(event_kind::tool_error, 0, 0, false, f, 2);
}

event event::usage(const usage_counts& counts, bool estimated) noexcept {
  event e;
  e.kind_ = event_kind::usage;
  static_assert(sizeof(usage_counts) <= kInlineTextCapacity);
  std::memcpy(e.payload_, &counts, sizeof counts);
  if (estimated) e.flags_ |= kFlagKindBit;
  return e;
}

event event::error(std::string_view code, std::string_view message, bool retryable) noexcept {
  const std::string_view f[] = {code, message};
  return with_text(event_kind::error, 0, 0, retryable, f, 2);
}

event event::stream_start(std::string_view provider, std::string_view model,
                          std::string_view request_id) noexcept {
  const std::string_view f[] = {provider, model, request_id};
  return with_text(event_kind::stream_start, 0, 0, false, f, 3);
}

event event::stream_complete(std::uint64_t total_chunks, std::uint64_t duration_ns) noexcept {
  return with_numbers(event_kind::stream_complete, total_chunks, duration_ns);
}

event event::keep_alive() noexcept {
  event e;
  e.kind_ = event_kind::keep_alive;
  return e;
}

event event::lifecycle(event_kind kind, std::string_view subject, std::string_view detail,
                       std::uint16_t index) noexcept {
  if (!is_lifecycle(kind)) return event{};  // kind none: validate() reports invalid
  const std::string_view f[] = {subject, detail};
  return with_text(kind, index, 0, false, f, 2);
}

// ---- reading ----

std::size_t event::text_size() const noexcept {
  if (text_is_inline()) return inline_size_;
  if (text_is_in_arena()) return span_at(kArenaSpanOffset).size;
  std::size_t total = 0;
  for (std::size_t i = 0; i < field_count(); ++i) total += span_at(kExternalSpanStride * i).size;
  return total;
}

std::string_view event::text_block() const noexcept {
  const std::size_t n = field_count();
  if (n == 0) return {};
  if (text_is_inline()) {
    return {reinterpret_cast<const char*>(payload_) + leading_table_bytes(), inline_size_};
  }
  if (text_is_in_arena()) {
    const text_span s = span_at(kArenaSpanOffset);
    return {s.data, s.size};
  }
  if (n == 1) {
    const text_span s = span_at(0);
    return {s.data, s.size};
  }
  return {};
}

std::string_view event::field(std::size_t i) const noexcept {
  const std::size_t n = field_count();
  if (i >= n) return {};
  if (text_is_external()) {
    const text_span s = span_at(kExternalSpanStride * i);
    return {s.data, s.size};
  }
  const std::string_view block = text_block();
  std::size_t offset = 0;
  for (std::size_t j = 0; j < i; ++j) offset += leading_length(j);
  if (offset > block.size()) return {};
  const std::size_t len = (i + 1 < n) ? leading_length(i) : block.size() - offset;
  return block.substr(offset, len);
}

std::string_view event::model() const noexcept {
  RILL_ASSERT(kind_ == event_kind::message_start || kind_ == event_kind::stream_start,
              "model() read from an event that has no model");
  return field(1);
}

std::string_view event::call_id() const noexcept {
  RILL_ASSERT(kind_ == event_kind::tool_call_start || kind_ == event_kind::tool_result ||
                  kind_ == event_kind::tool_error,
              "call_id() read from an event that has no call id");
  return field(0);
}

std::string_view event::error_message() const noexcept {
  RILL_ASSERT(kind_ == event_kind::error || kind_ == event_kind::tool_error,
              "error_message() read from an event that has no error message");
  return field(1);
}

usage_counts event::usage_values() const noexcept {
  RILL_ASSERT(kind_ == event_kind::usage, "usage_values() read from a non-usage event");
  usage_counts c;
  std::memcpy(&c, payload_, sizeof c);
  return c;
}

std::uint64_t event::total_chunks() const noexcept {
  RILL_ASSERT(kind_ == event_kind::stream_complete, "total_chunks() read from a non-stream_complete event");
  std::uint64_t v;
  std::memcpy(&v, payload_, sizeof v);
  return v;
}

std::uint64_t event::duration_ns() const noexcept {
  RILL_ASSERT(kind_ == event_kind::stream_complete, "duration_ns() read from a non-stream_complete event");
  std::uint64_t v;
  std::memcpy(&v, payload_ + 8, sizeof v);
  return v;
}

std::string_view event::subject() const noexcept {
  RILL_ASSERT(is_lifecycle(kind_), "subject() read from a non-lifecycle event");
  return field(0);
}

std::string_view event::detail() const noexcept {
  RILL_ASSERT(is_lifecycle(kind_), "detail() read from a non-lifecycle event");
  return field(1);
}

status event::validate() const noexcept {
  if (kind_ == event_kind::none || static_cast<std::size_t>(kind_) >= kEventKindCount) return status::invalid;
  if (flags_ & kFlagOversizeField) return status::too_large;
  if ((flags_ & kFlagExternalText) && (flags_ & kFlagArenaText)) return status::invalid;
  if (kind_ == event_kind::content_block_start && aux_ >= kBlockTypeCount) return status::invalid;
  if (kind_ == event_kind::message_stop && aux_ >= kStopReasonCount) return status::invalid;
  const kind_descriptor& d = kind_info(kind_);
  if (d.field_count == 0) return status::ok;
  if (text_is_inline() && inline_size_ + leading_table_bytes() > kInlineTextCapacity) return status::invalid;
  if (text_is_external()) {
    for (std::size_t i = 0; i < d.field_count; ++i) {
      const text_span s = span_at(kExternalSpanStride * i);
      if (s.data == nullptr && s.size != 0) return status::invalid;
      if (i + 1 < d.field_count && s.size > kMaxLeadingFieldBytes) return status::too_large;
    }
  } else {
    const std::string_view block = text_block();
    if (block.data() == nullptr && !block.empty()) return status::invalid;
    std::size_t leading = 0;
    for (std::size_t j = 0; j + 1 < d.field_count; ++j) leading += leading_length(j);
    if (leading > block.size()) return status::invalid;
  }
  for (std::size_t i = 0; i < d.field_count; ++i) {
    if ((d.required_fields & (1u << i)) && field(i).empty()) return status::invalid;
  }
  return status::ok;
}

bool event::same_content(const event& other) const noexcept {
  if (kind_ != other.kind_ || index_ != other.index_ || choice_ != other.choice_ || aux_ != other.aux_ ||
      kind_bit() != other.kind_bit()) {
    return false;
  }
  const std::size_t n = field_count();
  if (n == 0) {
    // Numeric kinds: compare the whole payload (unused bytes are zero-initialized by every factory).
    return std::memcmp(payload_, other.payload_, sizeof payload_) == 0;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (field(i) != other.field(i)) return false;
  }
  return true;
}

void event::move_text_to_arena(char* dest) noexcept {
  RILL_ASSERT(text_is_external(), "move_text_to_arena on an event without borrowed text");
  const std::size_t n = field_count();
  std::array<std::uint16_t, 2> leading{};
  std::size_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const text_span s = span_at(kExternalSpanStride * i);
    if (s.size != 0) std::memmove(dest + total, s.data, s.size);  // may already be in place (try_claim)
    if (i + 1 < n) leading[i] = static_cast<std::uint16_t>(s.size);
    total += s.size;
  }
  std::memset(payload_, 0, sizeof payload_);
  for (std::size_t i = 0; i + 1 < n; ++i) std::memcpy(payload_ + 2 * i, &leading[i], sizeof leading[i]);
  flags_ = static_cast<std::uint8_t>(flags_ & ~kFlagExternalText);
  set_arena_block(dest, static_cast<std::uint32_t>(total));
}

void event::set_arena_block(const char* block, std::uint32_t size) noexcept {
  flags_ = static_cast<std::uint8_t>((flags_ & ~kFlagExternalText) | kFlagArenaText);
  inline_size_ = 0;
  set_span_at(kArenaSpanOffset, block, size);
}

}  // namespace rill
