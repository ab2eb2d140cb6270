// rill/codec/json.hpp: every rill event as one JSON object, and the exact decode back.
//
// Encoding writes a compact object with stable keys (docs/wire_format.md has the table):
//   {"type":"text_delta","seq":7,"timestamp":123,"clock":"coarse","index":0,"text":"Hi"}
// `type` is `kind_info(kind).name`, the text fields use `kind_info(kind).field_names`. The writer is purpose-built:
// RFC 8259 escaping (quote, backslash, \b \f \n \r \t, every other control byte as \u00XX, NUL included),
// valid UTF-8 copied through unchanged, nothing else escaped.
//
// Guarantees
//   - Round trip: for every event that passes `event::validate()` and whose text is valid UTF-8,
//     decode(encode(e)) is `same_content` with e and has the same seq, timestamp and clock.
//   - Encoders append to a caller-owned buffer and never allocate once that buffer has the capacity; the
//     fixed-buffer overload never allocates. On any failure nothing is appended.
//   - The decoder reuses its parser memory: after it has seen the largest input, decode never allocates.
//   - Invalid JSON, a wrong value type, an unknown `type`, a missing required field or a duplicated key gives
//     status::invalid with a message, and the output event is left untouched.
// Not guaranteed
//   - Invalid UTF-8 in text cannot round trip: by default each maximal ill-formed subsequence is replaced by
//     U+FFFD (as WHATWG TextDecoder does); `invalid_utf8::reject` fails the encode instead.
//   - Numbers above 2^53 (seq, timestamp, duration) are exact in this codec but not in JavaScript clients.
//   - Unknown keys are ignored on decode (newer writers may add keys); they are not preserved.
// Thread-safety: the free functions are safe from any thread; one json_decoder or owned_event must not be used
// from two threads at once.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "rill/event.hpp"
#include "rill/status.hpp"

namespace rill::codec {

// What the writer does with bytes that are not valid UTF-8.
enum class invalid_utf8 : std::uint8_t {
  replace,  // each maximal ill-formed subsequence becomes U+FFFD (EF BF BD); the encode succeeds
  reject,   // the encode fails with status::invalid and appends nothing
};

struct json_options {
  invalid_utf8 on_invalid_utf8 = invalid_utf8::replace;
};

// Appends the JSON object for `e` to `out`. Never blocks; allocates only when `out` must grow (an allocation
// failure terminates, as in any noexcept code). status::invalid (nothing appended) when `e` fails
// `validate()` or, under `invalid_utf8::reject`, holds invalid UTF-8; status::too_large when a field is over
// its limit.
status encode_json(const event& e, std::string& out, const json_options& options = {}) noexcept;

// Writes the JSON object for `e` to `dest` (at most `capacity` bytes) and sets `written`. Never blocks or
// allocates. status::too_large with `written` = 0 when it does not fit; other errors as above.
status encode_json(const event& e, char* dest, std::size_t capacity, std::size_t& written,
                   const json_options& options = {}) noexcept;

// Appends `text` as one quoted JSON string (the escaping above). For tools that build their own JSON. Never
// blocks; allocates only when `out` grows. status::invalid, nothing appended, only under `reject`.
status append_json_string(std::string& out, std::string_view text,
                          invalid_utf8 on_invalid_utf8 = invalid_utf8::replace) noexcept;

// An event that owns its text: long text is copied into the object, so it outlives the buffer it came from
// (a decoder's parser, a stream's arena). Copying an owned_event copies the text. Not thread-safe.
class owned_event {
 public:
  owned_event() noexcept = default;
  // Deep copy of `e` (its text included). Allocates when the text does not fit inline.
  explicit owned_event(const event& e) { assign(e); }
  owned_event(const owned_event& other) { assign(other.event_); }
  owned_event& operator=(const owned_event& other) {
    if (this != &other) assign(other.event_);
    return *this;
  }
  owned_event(owned_event&& other) { assign(other.event_); }
  owned_event& operator=(owned_event&& other) {
    if (this != &other) assign(other.event_);
    return *this;
  }
  ~owned_event() = default;

  // Replaces the content with a deep copy of `e`, reusing this object's text storage (allocates only when it
  // must grow). The copy keeps kind, index, choice, aux, kind bit, numbers, text, seq and timestamp. The
  // copied event's long text is external text borrowed from this object: sending it copies it again.
  // `e` may be this object's own event (a.assign(a.get())). Moving an owned_event copies too (the event's
  // spans point into the text storage), so moves may allocate and throw std::bad_alloc.
  void assign(const event& e);
  // The event; valid until the next assign or the destruction of this object.
  const event& get() const noexcept { return event_; }
  const event* operator->() const noexcept { return &event_; }

 private:
  event event_;
  std::string storage_;
};

// Decodes event JSON with simdjson. Long text of the decoded event borrows this decoder's memory: it stays
// valid until the next decode() or the decoder's destruction (copy it into an owned_event to keep it).
// Not thread-safe: use one decoder per thread.
class json_decoder {
 public:
  // Allocates the (empty) parser. Throws std::bad_alloc only.
  json_decoder();
  ~json_decoder();
  json_decoder(json_decoder&&) noexcept;
  json_decoder& operator=(json_decoder&&) noexcept;
  json_decoder(const json_decoder&) = delete;
  json_decoder& operator=(const json_decoder&) = delete;

  // Parses one JSON object into `out`. Never blocks; allocates only when `json` is larger than any input seen
  // before. On failure `out` is untouched, error_message() says why, and the result is status::invalid
  // (malformed input, wrong type, unknown kind, missing required field, duplicated key, value out of range)
  // or status::too_large (a leading text field over 65535 bytes, or parser memory exhausted).
  status decode(std::string_view json, event& out) noexcept;

  // Like decode() but copies the result into `out`, which then owns its text. May allocate for long text.
  status decode(std::string_view json, owned_event& out);

  // Why the last decode failed ("" after a success). Valid until the next decode().
  std::string_view error_message() const noexcept { return {message_.data(), message_size_}; }

 private:
  struct parser_state;
  status fail(status code, std::string_view what, std::string_view detail = {}) noexcept;

  std::unique_ptr<parser_state> parser_;
  std::array<char, 160> message_{};
  std::size_t message_size_ = 0;
};

}  // namespace rill::codec
