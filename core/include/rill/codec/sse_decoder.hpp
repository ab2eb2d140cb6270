// rill/codec/sse_decoder.hpp: an incremental, byte-level Server-Sent Events decoder.
//
// Follows the WHATWG "event stream interpretation" rules exactly:
//   - lines end in CRLF, LF or a lone CR; a CR ending one feed and an LF starting the next are one line end;
//   - one leading UTF-8 BOM (EF BB BF) is stripped, also when its bytes arrive in separate feeds;
//   - a line starting with ':' is a comment and is ignored;
//   - a field splits at the first ':'; one space after the colon is removed; a line without a colon is a
//     field name with an empty value; unknown fields are ignored;
//   - `data` lines are joined with '\n'; a blank line dispatches the event unless no `data` line was seen
//     (keep-alive comments and `retry`-only blocks dispatch nothing);
//   - `id` sets the last event id, which stays until another `id` line changes it (sticky); an id containing
//     NUL is ignored; `retry` is applied only when its value is all ASCII digits;
//   - an event not ended by a blank line when the input ends is discarded (or, by option, flushed and
//     marked truncated).
//
// Guarantees: bytes, not characters, are parsed, so a multi-byte UTF-8 sequence split across feeds is
// reassembled byte for byte. Work is linear in the input: a line split across feeds is never rescanned (the
// decoder keeps its place in the line), and line ends are found with memchr. A pending event's size (data,
// event type and id/retry values being read) is capped; going over the cap is status::too_large with a
// message and the byte offset, never a silent truncation. Steady state is allocation-free: the buffers grow
// to the largest event seen and are reused.
//
// Not guaranteed: the decoder does not validate UTF-8 or interpret the data (see provider.hpp for that). One
// decoder is one stream: it is not thread-safe; use one per connection (moving it between threads between
// calls is fine).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "rill/status.hpp"

namespace rill::codec {

// One dispatched SSE event. Its views point into the decoder and stay valid until the decoder's next call
// (the sink receives it during the call).
struct sse_event {
  std::string_view event_type;  // the `event` field as sent; empty when absent (WHATWG type "message")
  std::string_view data;        // the `data` lines joined with '\n' (no trailing '\n')
  std::string_view id;          // the last event id at dispatch (sticky across events); empty if never set
  std::uint64_t offset = 0;     // byte offset in the whole stream of the event's first line
  bool truncated = false;       // flushed by finish() without its terminating blank line

  // The WHATWG event type: `event_type`, or "message" when it is empty.
  std::string_view type_or_message() const noexcept {
    return event_type.empty() ? std::string_view("message") : event_type;
  }
};

struct sse_decoder_options {
  // Most bytes a pending event may hold (data + event type + an id or retry value being read). Exceeding it
  // fails the decoder with status::too_large. Comment lines are skipped without being buffered and never
  // count against it.
  std::size_t max_event_bytes = std::size_t{16} << 20;
  // At finish(): dispatch an event that has data but no terminating blank line, with `truncated` set,
  // instead of discarding it as the WHATWG rules do.
  bool flush_unterminated_at_eof = false;
};

class sse_decoder {
 public:
  // `data` of a dispatched event is followed by at least this many readable bytes (contents unspecified), so
  // a JSON parser that reads past the end (simdjson) can parse it in place.
  static constexpr std::size_t kDataPadding = 64;

  // Outcome of one next() call.
  enum class step : std::uint8_t {
    need_input,   // the current input is used up; feed more (or finish)
    event_ready,  // `out` holds a dispatched event
    failed,       // the decoder failed (see error()); it stays failed until reset()
  };

  // Reserves the initial buffers. Throws std::bad_alloc only.
  explicit sse_decoder(const sse_decoder_options& options = {});

  // ---- push interface ----
  // Decodes `bytes` and calls `sink(const sse_event&)` for each event completed by them, in order. The sink
  // returns void or rill::status; a non-ok status stops decoding, fails the decoder and is returned.
  // Returns status::ok, the decoder's error (status::too_large: an event over the cap, or no memory to grow a
  // buffer), or status::closed after finish(). Never blocks; allocates only to grow the reusable buffers.
  template <class Sink>
  status feed(std::string_view bytes, Sink&& sink) {
    set_input(bytes);
    return drain(sink);
  }

  // Ends the stream: an event without its terminating blank line is discarded (truncated() then says so) or,
  // with `flush_unterminated_at_eof`, dispatched with `truncated` set. Same sink and results as feed().
  template <class Sink>
  status finish(Sink&& sink) {
    sse_event ev;
    switch (next_at_eof(ev)) {
      case step::event_ready: {
        const status s = call_sink(sink, ev);
        if (s != status::ok) return fail_by_sink(s);
        return status::ok;
      }
      case step::failed: return error_;
      case step::need_input: return status::ok;
    }
    return status::ok;
  }

  // ---- pull interface (what feed() and finish() are made of) ----
  // Makes `bytes` the current input; previous input not yet consumed by next() is dropped. Never fails.
  void set_input(std::string_view bytes) noexcept;
  // Consumes the current input up to the end of the next dispatched event and returns it in `out` (valid
  // until the next call), or consumes all of it and returns need_input. Never blocks.
  step next(sse_event& out) noexcept;
  // Ends the stream (see finish()). Returns event_ready at most once; later calls return need_input.
  step next_at_eof(sse_event& out) noexcept;

  // ---- state ----
  // ok, too_large (pending event over the cap), or the status a sink returned.
  status error() const noexcept { return error_; }
  // Human-readable reason of the failure, empty when none. Valid until reset().
  std::string_view error_message() const noexcept { return {error_text_, error_length_}; }
  // Stream byte offset at which the decoder failed.
  std::uint64_t error_offset() const noexcept { return error_offset_; }
  // Bytes consumed so far (the stream offset of the next byte), BOM included.
  std::uint64_t bytes_consumed() const noexcept { return offset_; }
  std::uint64_t events_dispatched() const noexcept { return dispatched_; }
  // The last event ID string (what a client sends back as Last-Event-ID): the id in force at the last block
  // end (blank line, or the end of input when an unterminated event is flushed). An `id:` line of a block
  // that has not ended yet, or that the end of input discarded, does not count, as in the WHATWG parser.
  std::string_view last_event_id() const noexcept { return last_id_; }
  // The last valid `retry` value in milliseconds, or -1 when none was sent. Saturates at INT64_MAX.
  std::int64_t retry_ms() const noexcept { return retry_ms_; }
  // After finish(): whether the input ended inside an event that had data (discarded or flushed).
  bool truncated() const noexcept { return truncated_; }
  bool finished() const noexcept { return finished_; }
  const sse_decoder_options& options() const noexcept { return options_; }

  // Forgets the stream (ids, retry, errors, pending bytes) and keeps the buffers' capacity.
  void reset() noexcept;

 private:
  enum class line_state : std::uint8_t { start, name, value_first, value, discard };
  enum class field : std::uint8_t { none, data, event, id, retry };

  template <class Sink>
  static status call_sink(Sink& sink, const sse_event& ev) {
    if constexpr (std::is_same_v<std::invoke_result_t<Sink&, const sse_event&>, void>) {
      sink(ev);
      return status::ok;
    } else {
      return static_cast<status>(sink(ev));
    }
  }
  template <class Sink>
  status drain(Sink& sink) {
    sse_event ev;
    for (;;) {
      switch (next(ev)) {
        case step::need_input: return status::ok;
        case step::failed: return error_;
        case step::event_ready: {
          const status s = call_sink(sink, ev);
          if (s != status::ok) return fail_by_sink(s);
          break;
        }
      }
    }
  }
  status fail_by_sink(status s) noexcept;

  // A growable byte buffer that always keeps kDataPadding bytes (zeroed when allocated) after its end.
  class padded_buffer {
   public:
    padded_buffer() = default;
    padded_buffer(const padded_buffer&) = delete;
    padded_buffer& operator=(const padded_buffer&) = delete;
    ~padded_buffer() { delete[] bytes_; }
    void reserve(std::size_t capacity);
    void append(const char* p, std::size_t n) {
      if (size_ + n > capacity_) reserve(size_ + n > 2 * capacity_ ? size_ + n : 2 * capacity_);
      if (n != 0) std::char_traits<char>::copy(bytes_ + size_, p, n);
      size_ += n;
    }
    void push_back(char c) { append(&c, 1); }
    void clear() noexcept { size_ = 0; }
    const char* data() const noexcept { return bytes_; }
    std::size_t size() const noexcept { return size_; }

   private:
    char* bytes_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;  // usable bytes; the allocation is capacity_ + kDataPadding
  };

  // next() and next_at_eof() without their std::bad_alloc handler: these and the helpers below throw it
  // when a buffer cannot grow, and the handler fails the decoder with too_large.
  step next_step(sse_event& out);
  step eof_step(sse_event& out);
  // Consumes `n` bytes of one line (no CR/LF among them) that start at stream offset `at`.
  void take_segment(const char* p, std::size_t n, std::uint64_t at);
  bool append_value(const char* p, std::size_t n, std::uint64_t at);
  void resolve_field() noexcept;
  bool end_line();  // true when the line was blank and an event is ready
  void commit_id();
  void make_event(sse_event& out, bool truncated);
  const char* find_line_end() noexcept;
  void fail(status s, const char* what, std::uint64_t at) noexcept;
  std::size_t pending_bytes() const noexcept { return data_.size() + type_.size() + value_.size(); }

  sse_decoder_options options_;

  // current input
  const char* in_ = nullptr;
  const char* in_end_ = nullptr;
  const char* next_cr_ = nullptr;  // cached memchr results within the current input; nullptr: none left
  const char* next_lf_ = nullptr;
  bool cr_known_ = false;
  bool lf_known_ = false;

  // line state (persists across feeds so a split line is never rescanned)
  line_state line_ = line_state::start;
  field field_ = field::none;
  bool skip_lf_ = false;        // the last line ended in CR: an LF right after it is part of that line end
  std::uint8_t bom_matched_ = 0;  // BOM bytes matched so far; 3 after the check is over
  bool bom_done_ = false;
  char name_[8] = {};
  std::uint8_t name_len_ = 0;   // > sizeof name_: an unknown (too long) field name
  bool value_invalid_ = false;  // retry value with a non-digit, id value with a NUL

  // pending event
  padded_buffer data_;
  std::string type_;
  std::string value_;  // an id value being read
  std::uint64_t retry_value_ = 0;  // a retry value being read (saturating)
  bool retry_has_digit_ = false;
  std::uint32_t data_lines_ = 0;
  bool event_open_ = false;  // some non-blank line since the last blank line
  std::uint64_t event_offset_ = 0;
  bool clear_on_next_ = false;  // the last returned event's views point into data_/type_

  // stream state
  std::string id_;           // the last event ID buffer: set by `id:` lines, sticky across events
  std::string last_id_;      // the last event ID string: id_ as of the last block end
  bool id_changed_ = false;  // id_ was set since the last block end
  std::int64_t retry_ms_ = -1;
  std::uint64_t offset_ = 0;
  std::uint64_t dispatched_ = 0;
  bool truncated_ = false;
  bool finished_ = false;
  status error_ = status::ok;
  std::uint64_t error_offset_ = 0;
  char error_text_[160] = {};
  std::size_t error_length_ = 0;
};

}  // namespace rill::codec
