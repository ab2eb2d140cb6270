// rill/event.hpp: the 64-byte tagged-union event every rill stream carries.
//
// Layout (static_asserted below): one cache line, 64-byte aligned, trivially copyable.
//   bytes  0..23  header: kind, flags, inline text length, aux (block type / stop reason), index, choice,
//                 stream-local sequence number, timestamp
//   bytes 24..63  payload: numeric fields of the kind, or its text block
//
// Text. A kind has zero to three string fields (`kind_info(k).field_count`). Inline and arena text store
// them together as one block. Up to `kInlineTextCapacity - 2 * (field_count - 1)` bytes in total (40 for one field, 38 for
// two, 36 for three) live inside the event. Longer text is *external* when the event is built (the event
// borrows the caller's bytes, which must stay valid until the send that carries it returns) and the stream
// copies it into its payload arena during the send; a received event's long text therefore lives in the
// stream's arena and stays valid until the consumer releases the event (see stream.hpp). Every field but the
// last is limited to 65535 bytes; an event built with a longer one is marked and its send fails with
// status::too_large.
//
// Accessors check the kind with a debug-build assertion; reading the wrong kind's payload in a release
// build returns unspecified values but never reads outside the event (or its text block).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "rill/clock.hpp"
#include "rill/detail/assert.hpp"
#include "rill/status.hpp"

namespace rill {

// Every kind of event rill carries: LLM response structure, tool use, accounting, errors, stream framing,
// and the workflow / agent lifecycle. The numeric values are stable (they appear in binary dumps).
enum class event_kind : std::uint8_t {
  none = 0,  // a default-constructed event; never valid to send
  message_start,
  message_stop,
  content_block_start,
  content_block_stop,
  text_delta,
  thinking_delta,
  signature_delta,
  tool_call_start,
  tool_args_delta,
  tool_call_end,
  tool_result,
  tool_error,
  usage,
  error,
  stream_start,
  stream_complete,
  keep_alive,
  execution_started,
  execution_completed,
  execution_failed,
  step_started,
  step_completed,
  step_failed,
  state_updated,
  agent_added,
  agent_removed,
  mcp_connected,
  mcp_disconnected,
  user,
};
inline constexpr std::size_t kEventKindCount = static_cast<std::size_t>(event_kind::user) + 1;

// The type of a content block (content_block_start's aux byte).
enum class block_type : std::uint8_t {
  text = 0,
  thinking,
  redacted_thinking,
  tool_use,
  tool_result,
  image,
  other,
};
inline constexpr std::size_t kBlockTypeCount = static_cast<std::size_t>(block_type::other) + 1;

// Normalized stop reason (message_stop's aux byte): the engine vocabulary of the provider fixtures.
enum class stop_reason : std::uint8_t {
  none = 0,
  end_turn,
  tool_use,
  max_tokens,
  stop_sequence,
  content_filter,
  refusal,
  pause_turn,
  error,
};
inline constexpr std::size_t kStopReasonCount = static_cast<std::size_t>(stop_reason::error) + 1;

// Static facts about a kind: its stable wire name, how many string fields it has, their names (as the JSON
// codec writes them), and which of them must be non-empty.
struct kind_descriptor {
  std::string_view name;
  std::uint8_t field_count;
  std::array<std::string_view, 3> field_names;
  std::uint8_t required_fields;  // bit i set: field i must be non-empty
};

// Descriptor of `kind`; the `none` descriptor for values outside the enum. Constant time, never fails.
const kind_descriptor& kind_info(event_kind kind) noexcept;

// Bit k set: kind k has a required (non-empty) string field. Inline so that a send can skip the full
// validation for most events without a call; event.cpp static_asserts it against the descriptor table.
inline constexpr std::uint64_t kKindsWithRequiredFields =
    (1ull << static_cast<unsigned>(event_kind::tool_call_start)) |
    (1ull << static_cast<unsigned>(event_kind::tool_result)) |
    (1ull << static_cast<unsigned>(event_kind::tool_error)) |
    (1ull << static_cast<unsigned>(event_kind::execution_started)) |
    (1ull << static_cast<unsigned>(event_kind::execution_completed)) |
    (1ull << static_cast<unsigned>(event_kind::execution_failed)) |
    (1ull << static_cast<unsigned>(event_kind::step_started)) |
    (1ull << static_cast<unsigned>(event_kind::step_completed)) |
    (1ull << static_cast<unsigned>(event_kind::step_failed)) |
    (1ull << static_cast<unsigned>(event_kind::state_updated)) |
    (1ull << static_cast<unsigned>(event_kind::agent_added)) |
    (1ull << static_cast<unsigned>(event_kind::agent_removed)) |
    (1ull << static_cast<unsigned>(event_kind::mcp_connected)) |
    (1ull << static_cast<unsigned>(event_kind::mcp_disconnected));

// Stable wire name ("text_delta", ...). "none" for unknown values.
inline std::string_view to_string(event_kind kind) noexcept { return kind_info(kind).name; }
// Parses a wire name; returns event_kind::none for an unknown name.
event_kind kind_from_string(std::string_view name) noexcept;

std::string_view to_string(block_type type) noexcept;
std::string_view to_string(stop_reason reason) noexcept;
// Parse the names above; `ok` is false for an unknown name.
block_type block_type_from_string(std::string_view name, bool& ok) noexcept;
stop_reason stop_reason_from_string(std::string_view name, bool& ok) noexcept;

// Token accounting (the usage kind). 32-bit counters: 4 billion tokens per event.
struct usage_counts {
  std::uint32_t input_tokens = 0;
  std::uint32_t output_tokens = 0;
  std::uint32_t total_tokens = 0;
  std::uint32_t cache_read_tokens = 0;
  std::uint32_t cache_write_tokens = 0;
  std::uint32_t reasoning_tokens = 0;
  friend bool operator==(const usage_counts&, const usage_counts&) = default;
};

// A 64-byte event. Build one with the named factories (`event::text_delta(0, "hi")`), read it with the
// accessors. Trivially copyable: copying an event with external or arena text copies the reference, not the
// bytes.
class alignas(64) event {
 public:
  static constexpr std::size_t kInlineTextCapacity = 40;
  static constexpr std::size_t kMaxLeadingFieldBytes = 0xffff;

  // Flag bits.
  static constexpr std::uint8_t kFlagExternalText = 1u << 0;  // text block borrowed from the caller
  static constexpr std::uint8_t kFlagArenaText = 1u << 1;     // text block in the stream's payload arena
  static constexpr std::uint8_t kFlagKindBit = 1u << 2;       // the kind's own boolean (see accessors)
  static constexpr std::uint8_t kFlagOversizeField = 1u << 3; // a leading field exceeded 65535 bytes
  static constexpr std::uint8_t kClockShift = 4;              // bits 4-5: clock_kind of the timestamp
  static constexpr std::uint8_t kClockMask = 3u << kClockShift;
  // Byte offset of the 8-byte, 8-aligned sequence number (seq()). rill's SPSC ring publishes each slot
  // through this word (an atomic store into it), so its position is part of the layout contract.
  static constexpr std::size_t kSeqOffset = 8;
  // Byte offsets of the flags byte and the 8-byte timestamp, for code that stamps events as whole words
  // (rill's SPSC batch send).
  static constexpr std::size_t kFlagsOffset = 1;
  static constexpr std::size_t kTimestampOffset = 16;

  constexpr event() noexcept = default;

  // ---- factories: one per kind. Text arguments longer than the inline capacity are borrowed. ----
  static event message_start(std::string_view message_id, std::string_view model = {}) noexcept;
  static event message_stop(stop_reason reason) noexcept;
  // `data`: a redacted_thinking block's opaque payload (Anthropic's `data`, which a client must send back
  // verbatim on its next turn); empty for other blocks.
  static event content_block_start(std::uint16_t index, block_type type, std::string_view data = {}) noexcept;
  static event content_block_stop(std::uint16_t index) noexcept;
  // `index` is the content block (Anthropic), output item (Responses) or choice (Chat Completions, Gemini);
  // `choice` the OpenAI choice or Gemini candidate the text belongs to (0 unless the request asked for n >
  // 1).
  static event text_delta(std::uint16_t index, std::string_view text, std::uint16_t choice = 0) noexcept;
  static event thinking_delta(std::uint16_t index, std::string_view text, std::uint16_t choice = 0) noexcept;
  static event signature_delta(std::uint16_t index, std::string_view signature,
                               std::uint16_t choice = 0) noexcept;
  // `index` is the tool call's index (its content block for Anthropic); `choice` as for text_delta.
  static event tool_call_start(std::uint16_t index, std::string_view call_id, std::string_view tool_name,
                               std::uint16_t choice = 0) noexcept;
  static event tool_args_delta(std::uint16_t index, std::string_view fragment, std::uint16_t choice = 0) noexcept;
  // `args_invalid`: the reassembled arguments were not complete, valid JSON.
  static event tool_call_end(std::uint16_t index, bool args_invalid = false, std::uint16_t choice = 0) noexcept;
  static event tool_result(std::string_view call_id, std::string_view content, bool is_error = false) noexcept;
  static event tool_error(std::string_view call_id, std::string_view message) noexcept;
  static event usage(const usage_counts& counts, bool estimated = false) noexcept;
  static event error(std::string_view code, std::string_view message, bool retryable = false) noexcept;
  static event stream_start(std::string_view provider, std::string_view model,
                            std::string_view request_id = {}) noexcept;
  static event stream_complete(std::uint64_t total_chunks, std::uint64_t duration_ns) noexcept;
  static event keep_alive() noexcept;
  // Workflow and agent lifecycle: `subject` is the execution / step / agent / server id or state key;
  // `detail` is a name, an error message or a state value. `index` numbers steps.
  static event lifecycle(event_kind kind, std::string_view subject, std::string_view detail = {},
                         std::uint16_t index = 0) noexcept;
  // Application-defined: `code` is the application's own type tag, `data` opaque bytes.
  static event user(std::uint16_t code, std::string_view data) noexcept;

  // ---- header ----
  event_kind kind() const noexcept { return kind_; }
  std::uint8_t flags() const noexcept { return flags_; }
  std::uint16_t index() const noexcept { return index_; }
  std::uint16_t choice() const noexcept { return choice_; }
  // Stream-local sequence number, assigned by the stream on send (0, 1, 2, ...).
  std::uint64_t seq() const noexcept { return seq_; }
  std::uint64_t timestamp() const noexcept { return timestamp_; }
  clock_kind timestamp_clock() const noexcept { return static_cast<clock_kind>((flags_ & kClockMask) >> kClockShift); }
  // The stamp as steady or wall-clock time (clock::to_steady / to_system: the first tsc conversion in a
  // process calibrates for about 10 ms).
  std::chrono::steady_clock::time_point steady_time() const noexcept {
    return clock::to_steady(timestamp_clock(), timestamp_);
  }
  std::chrono::system_clock::time_point system_time() const noexcept {
    return clock::to_system(timestamp_clock(), timestamp_);
  }
  void set_timestamp(clock_kind kind, std::uint64_t stamp) noexcept {
    timestamp_ = stamp;
    flags_ = static_cast<std::uint8_t>((flags_ & ~kClockMask) | (static_cast<std::uint8_t>(kind) << kClockShift));
  }
  void set_seq(std::uint64_t seq) noexcept { seq_ = seq; }

  // ---- text block ----
  // Number of string fields of this kind, and field i's bytes (empty when i is out of range). The view is
  // valid while the event is: for a received event with arena text, until the consumer releases it.
  std::size_t field_count() const noexcept { return kind_info(kind_).field_count; }
  std::string_view field(std::size_t i) const noexcept;
  // The whole text block (all fields back to back) of inline or arena text; for external text only when
  // the kind has a single field (borrowed fields are separate buffers), else empty.
  std::string_view text_block() const noexcept;
  bool text_is_inline() const noexcept { return (flags_ & (kFlagExternalText | kFlagArenaText)) == 0; }
  bool text_is_external() const noexcept { return (flags_ & kFlagExternalText) != 0; }
  bool text_is_in_arena() const noexcept { return (flags_ & kFlagArenaText) != 0; }
  // Total text bytes (all fields).
  std::size_t text_size() const noexcept;

  // ---- per-kind accessors (debug-asserted) ----
  // text / thinking / signature / tool_args deltas, user data. Inline in this header: consumers read it per
  // event.
  std::string_view text() const noexcept;
  std::string_view message_id() const noexcept { return checked_field(event_kind::message_start, 0); }
  std::string_view model() const noexcept;  // message_start, stream_start
  stop_reason stop() const noexcept {
    RILL_ASSERT(kind_ == event_kind::message_stop, "stop() read from a non-message_stop event");
    return static_cast<stop_reason>(aux_);
  }
  block_type block() const noexcept {
    RILL_ASSERT(kind_ == event_kind::content_block_start, "block() read from a non-content_block_start event");
    return static_cast<block_type>(aux_);
  }
  std::string_view block_data() const noexcept { return checked_field(event_kind::content_block_start, 0); }
  std::string_view call_id() const noexcept;    // tool_call_start, tool_result, tool_error
  std::string_view tool_name() const noexcept { return checked_field(event_kind::tool_call_start, 1); }
  std::string_view tool_content() const noexcept { return checked_field(event_kind::tool_result, 1); }
  bool tool_is_error() const noexcept { return checked_bit(event_kind::tool_result); }
  bool args_invalid() const noexcept { return checked_bit(event_kind::tool_call_end); }
  std::string_view error_code() const noexcept { return checked_field(event_kind::error, 0); }
  std::string_view error_message() const noexcept;  // error, tool_error
  bool retryable() const noexcept { return checked_bit(event_kind::error); }
  usage_counts usage_values() const noexcept;
  bool usage_estimated() const noexcept { return checked_bit(event_kind::usage); }
  std::string_view provider() const noexcept { return checked_field(event_kind::stream_start, 0); }
  std::string_view request_id() const noexcept { return checked_field(event_kind::stream_start, 2); }
  std::uint64_t total_chunks() const noexcept;
  std::uint64_t duration_ns() const noexcept;
  std::string_view subject() const noexcept;  // lifecycle kinds
  std::string_view detail() const noexcept;   // lifecycle kinds
  std::uint16_t user_code() const noexcept {
    RILL_ASSERT(kind_ == event_kind::user, "user_code() read from a non-user event");
    return index_;
  }
  // The kind's boolean flag (retryable, is_error, args_invalid, estimated) without a kind check.
  bool kind_bit() const noexcept { return (flags_ & kFlagKindBit) != 0; }

  // Checks the event is sendable: a known kind, required fields present, leading fields within limits.
  // Does not look at arena spans (the stream does). status::invalid or status::too_large on failure.
  status validate() const noexcept;
  // True for the common case that needs no further checks: a known kind other than none, without required
  // fields and without an enum in aux (message_stop, content_block_start: validate() range-checks it), with
  // inline text (validate() would return ok). One bit test and one flag test, inline, so a send can skip
  // the call; false says only "run validate()".
  bool validates_trivially() const noexcept {
    static_assert(kEventKindCount <= 64, "the kind test uses one 64-bit mask");
    constexpr std::uint64_t kKindsWithEnumAux =
        (1ull << static_cast<unsigned>(event_kind::message_stop)) |
        (1ull << static_cast<unsigned>(event_kind::content_block_start));
    constexpr std::uint64_t kTrivialKinds = ((std::uint64_t{1} << kEventKindCount) - 1) & ~std::uint64_t{1} &
                                            ~kKindsWithRequiredFields & ~kKindsWithEnumAux;
    const auto k = static_cast<unsigned>(kind_);
    return k < 64 && ((kTrivialKinds >> k) & 1u) != 0 &&
           (flags_ & (kFlagExternalText | kFlagArenaText | kFlagOversizeField)) == 0;
  }

  // Equal when kind, index, choice, aux, the kind bit, numeric payload and every text field are equal.
  // Ignores seq, timestamp and where the text lives (inline, external or arena).
  bool same_content(const event& other) const noexcept;

  // ---- low-level access for streams and codecs (rill/detail) ----
  std::uint8_t aux() const noexcept { return aux_; }
  // Copies every text field, back to back, to `dest` (text_size() bytes) and makes the event refer to that
  // copy as arena text. Used by the stream when it moves borrowed text into its arena.
  void move_text_to_arena(char* dest) noexcept;
  // Makes an event whose text block (all fields, contiguous, `size` bytes) already lies at `block` in the
  // arena refer to it. Leading field lengths are kept. Used by the claim/commit path and by codecs.
  void set_arena_block(const char* block, std::uint32_t size) noexcept;
  // Builds an event of `kind` whose text block is `block` split into fields with the given leading lengths.
  // Used by codecs and factories. Leading field lengths past 65535 mark the event oversize.
  static event with_text(event_kind kind, std::uint16_t index, std::uint8_t aux, bool kind_bit,
                         const std::string_view* fields, std::size_t count) noexcept;
  // Numeric payload access for codecs (unions are private).
  static event with_numbers(event_kind kind, std::uint64_t a, std::uint64_t b) noexcept;

 private:
  std::string_view checked_field(event_kind expected, std::size_t i) const noexcept {
    RILL_ASSERT(kind_ == expected, "field accessor used on an event of another kind");
    (void)expected;
    return field(i);
  }
  // The kinds text() reads: one text field, so inline text is the whole payload with no length table.
  bool has_one_text_field() const noexcept {
    switch (kind_) {
      case event_kind::text_delta:
      case event_kind::thinking_delta:
      case event_kind::signature_delta:
      case event_kind::tool_args_delta:
      case event_kind::user:
        return true;
      default:
        return false;
    }
  }
  bool checked_bit(event_kind expected) const noexcept {
    RILL_ASSERT(kind_ == expected, "flag accessor used on an event of another kind");
    (void)expected;
    return kind_bit();
  }
  std::size_t leading_table_bytes() const noexcept {
    const std::size_t n = field_count();
    return n > 1 ? 2 * (n - 1) : 0;
  }
  // The one-field factories (text deltas, tool argument fragments, user events), inline: text that fits
  // is copied in with a few fixed-size moves, longer text goes through with_text() and is borrowed. Both
  // arms are prvalues, so the event is built straight in the caller's object. A copy from a temporary
  // reloads its bytes with wide loads right after the narrow stores that wrote them, a stalled
  // store-to-load forward: an inline variant that built a local and returned it took 16.7 ns per
  // text_delta, this one 1.9 ns, the out-of-line with_text() 6.3-7.9 ns.
  static event with_single_field(event_kind kind, std::uint16_t index, std::string_view text,
                                 std::uint16_t choice = 0) noexcept {
    return text.size() <= kInlineTextCapacity ? event(kind, index, text, choice)
                                              : with_borrowed_field(kind, index, text, choice);
  }
  // The borrowed-text arm, out of line: it sets the choice after with_text() returns.
  static event with_borrowed_field(event_kind kind, std::uint16_t index, std::string_view text,
                                   std::uint16_t choice) noexcept;
  // One inline text field of at most kInlineTextCapacity bytes.
  event(event_kind kind, std::uint16_t index, std::string_view short_text, std::uint16_t choice) noexcept
      : kind_(kind),
        inline_size_(static_cast<std::uint8_t>(short_text.size())),
        index_(index),
        choice_(choice) {
    copy_short(payload_, short_text.data(), short_text.size());
  }
  // Copies n <= kInlineTextCapacity bytes as two to three overlapping fixed-size moves, which compile to
  // plain loads and stores (a memcpy of a size unknown at compile time is a library call).
  static void copy_short(unsigned char* to, const char* from, std::size_t n) noexcept {
    static_assert(kInlineTextCapacity <= 48, "three 16-byte moves cover the inline text");
    if (n >= 16) {
      std::memcpy(to, from, 16);
      if (n > 32) std::memcpy(to + 16, from + 16, 16);
      std::memcpy(to + n - 16, from + n - 16, 16);
    } else if (n >= 8) {
      std::memcpy(to, from, 8);
      std::memcpy(to + n - 8, from + n - 8, 8);
    } else if (n >= 4) {
      std::memcpy(to, from, 4);
      std::memcpy(to + n - 4, from + n - 4, 4);
    } else if (n != 0) {
      to[0] = static_cast<unsigned char>(from[0]);
      to[n / 2] = static_cast<unsigned char>(from[n / 2]);
      to[n - 1] = static_cast<unsigned char>(from[n - 1]);
    }
  }
  std::uint16_t leading_length(std::size_t i) const noexcept {
    std::uint16_t len;
    std::memcpy(&len, payload_ + 2 * i, sizeof len);
    return len;
  }

  // Non-inline text. Arena text is one contiguous block: the leading-length table at offset 0, then a
  // span {pointer, size} at kArenaSpanOffset. External text keeps one span per field (up to three, 12 bytes
  // each at offset 12 * i), so fields from separate buffers can be borrowed without joining them.
  struct text_span {
    const char* data;
    std::uint32_t size;
  };
  static constexpr std::size_t kArenaSpanOffset = 8;  // after a leading-length table of at most 4 bytes
  static constexpr std::size_t kExternalSpanStride = 12;
  text_span span_at(std::size_t offset) const noexcept {
    text_span s;
    std::memcpy(&s.data, payload_ + offset, sizeof s.data);
    std::memcpy(&s.size, payload_ + offset + sizeof s.data, sizeof s.size);
    return s;
  }
  void set_span_at(std::size_t offset, const char* data, std::uint32_t size) noexcept {
    std::memcpy(payload_ + offset, &data, sizeof data);
    std::memcpy(payload_ + offset + sizeof data, &size, sizeof size);
  }

  event_kind kind_ = event_kind::none;
  std::uint8_t flags_ = 0;
  std::uint8_t inline_size_ = 0;  // bytes of inline text (whole block) when the text is inline
  std::uint8_t aux_ = 0;          // block_type or stop_reason
  std::uint16_t index_ = 0;       // content block / tool call / step index; user code
  std::uint16_t choice_ = 0;      // OpenAI choice index
  std::uint64_t seq_ = 0;
  std::uint64_t timestamp_ = 0;
  alignas(8) unsigned char payload_[kInlineTextCapacity] = {};

  friend struct event_layout_check;
};

struct event_layout_check {
  static_assert(sizeof(event) == 64, "an event is exactly one cache line");
  static_assert(alignof(event) == 64, "an event never straddles two cache lines");
  static_assert(std::is_trivially_copyable_v<event>, "events are copied with memcpy between threads");
  static_assert(offsetof(event, payload_) == 24, "header is 24 bytes");
  static_assert(offsetof(event, seq_) == event::kSeqOffset, "the SPSC ring publishes slots through seq_");
  static_assert(offsetof(event, flags_) == event::kFlagsOffset);
  static_assert(offsetof(event, timestamp_) == event::kTimestampOffset);
};

inline event event::text_delta(std::uint16_t index, std::string_view text, std::uint16_t choice) noexcept {
  return with_single_field(event_kind::text_delta, index, text, choice);
}
inline event event::thinking_delta(std::uint16_t index, std::string_view text,
                                   std::uint16_t choice) noexcept {
  return with_single_field(event_kind::thinking_delta, index, text, choice);
}
inline event event::signature_delta(std::uint16_t index, std::string_view signature,
                                    std::uint16_t choice) noexcept {
  return with_single_field(event_kind::signature_delta, index, signature, choice);
}
inline event event::tool_args_delta(std::uint16_t index, std::string_view fragment,
                                    std::uint16_t choice) noexcept {
  return with_single_field(event_kind::tool_args_delta, index, fragment, choice);
}
inline event event::user(std::uint16_t code, std::string_view data) noexcept {
  return with_single_field(event_kind::user, code, data);
}

inline std::string_view event::text() const noexcept {
  RILL_ASSERT(has_one_text_field(), "text() read from an event without a single text field");
  if (has_one_text_field() && text_is_inline()) [[likely]] {
    return {reinterpret_cast<const char*>(payload_), inline_size_};
  }
  return field(0);  // arena or borrowed text, or (asserted above) another kind
}

// Inline text capacity for a kind (total bytes of its fields that fit in the event).
constexpr std::size_t inline_capacity_for_fields(std::size_t field_count) noexcept {
  return event::kInlineTextCapacity - (field_count > 1 ? 2 * (field_count - 1) : 0);
}

}  // namespace rill
