// internal/json_out.hpp: the output side shared by rill's JSON, SSE and dialect encoders (private).
//
// A sink is where bytes go: `string_sink` appends to a caller's std::string, `fixed_sink` fills a caller's
// buffer and records overflow instead of writing past it. `write_escaped` is the RFC 8259 string escaper;
// `write_event_fields` writes one event's keys (without the braces) so the SSE and JSON-RPC forms can embed it.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "rill/codec/json.hpp"
#include "rill/event.hpp"

namespace rill::codec::internal {

struct string_sink {
  std::string& out;
  void put(std::string_view bytes) { out.append(bytes.data(), bytes.size()); }
  void put(const char* bytes, std::size_t n) { out.append(bytes, n); }
  void put(char c) { out.push_back(c); }
};

struct fixed_sink {
  char* dest;
  std::size_t capacity;
  std::size_t size = 0;
  bool overflow = false;
  void put(const char* bytes, std::size_t n) noexcept {
    if (n > capacity - size) {
      overflow = true;
      return;
    }
    if (n != 0) std::memcpy(dest + size, bytes, n);
    size += n;
  }
  void put(std::string_view bytes) noexcept { put(bytes.data(), bytes.size()); }
  void put(char c) noexcept { put(&c, 1); }
};

template <class Sink>
void write_uint(Sink& sink, std::uint64_t value) {
  char digits[20];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  sink.put(digits, static_cast<std::size_t>(result.ptr - digits));
}

// Length of the well-formed UTF-8 sequence at p (2..4), or 0 when the bytes there are ill-formed. On 0,
// `bad_length` is the length of the maximal ill-formed subpart to replace with one U+FFFD (Unicode 3.9, D93b).
inline std::size_t utf8_sequence(const unsigned char* p, const unsigned char* end, std::size_t& bad_length) noexcept {
  const unsigned char lead = p[0];
  std::size_t need;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    need = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    need = 3;
    if (lead == 0xe0) lo = 0xa0;        // no overlong 3-byte forms
    else if (lead == 0xed) hi = 0x9f;   // no UTF-16 surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    need = 4;
    if (lead == 0xf0) lo = 0x90;        // no overlong 4-byte forms
    else if (lead == 0xf4) hi = 0x8f;   // nothing above U+10FFFF
  } else {
    bad_length = 1;
    return 0;
  }
  std::size_t have = 1;
  const std::size_t available = static_cast<std::size_t>(end - p);
  while (have < need && have < available) {
    const unsigned char c = p[have];
    const bool ok = have == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xbf);
    if (!ok) break;
    ++have;
  }
  if (have == need) return need;
  bad_length = have;
  return 0;
}

// True when any of the 8 bytes in `word` needs attention: a control byte, '"', '\\' or a non-ASCII byte.
// The lowest flagged byte is exact (higher ones may be false positives of the borrow), which is all the
// caller uses.
inline std::uint64_t special_bytes_mask(std::uint64_t word) noexcept {
  constexpr std::uint64_t kOnes = 0x0101010101010101ull;
  constexpr std::uint64_t kHigh = 0x8080808080808080ull;
  const std::uint64_t below_space = (word - kOnes * 0x20) & ~word;
  const std::uint64_t quote = word ^ (kOnes * '"');
  const std::uint64_t backslash = word ^ (kOnes * '\\');
  const std::uint64_t is_quote = (quote - kOnes) & ~quote;
  const std::uint64_t is_backslash = (backslash - kOnes) & ~backslash;
  return (below_space | is_quote | is_backslash | word) & kHigh;
}

// Writes `text` escaped, without the surrounding quotes. Returns false (having written a prefix) only when
// `policy` is reject and the text is not valid UTF-8; callers roll back.
template <class Sink>
bool write_escaped(Sink& sink, std::string_view text, invalid_utf8 policy) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = p + text.size();
  const auto* run = p;  // start of bytes copied through unchanged
  while (p < end) {
    // Fast path: skip 8 plain ASCII bytes at a time.
    while (end - p >= 8) {
      std::uint64_t word;
      std::memcpy(&word, p, sizeof word);
      const std::uint64_t mask = special_bytes_mask(word);
      if (mask != 0) {
        p += static_cast<unsigned>(__builtin_ctzll(mask)) / 8;  // little-endian: lowest address first
        goto special;
      }
      p += 8;
    }
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') ++p;
    if (p == end) break;
  special:
    if (*p >= 0x80) {
      std::size_t bad_length = 0;
      const std::size_t length = utf8_sequence(p, end, bad_length);
      if (length != 0) {
        p += length;  // valid multi-byte character: part of the run
        continue;
      }
      if (policy == invalid_utf8::reject) return false;
      sink.put(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
      sink.put("\xef\xbf\xbd", 3);
      p += bad_length;
      run = p;
      continue;
    }
    sink.put(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
    const unsigned char c = *p++;
    run = p;
    switch (c) {
      case '"': sink.put("\\\"", 2); break;
      case '\\': sink.put("\\\\", 2); break;
      case '\b': sink.put("\\b", 2); break;
      case '\f': sink.put("\\f", 2); break;
      case '\n': sink.put("\\n", 2); break;
      case '\r': sink.put("\\r", 2); break;
      case '\t': sink.put("\\t", 2); break;
      default: {
        const char escape[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        sink.put(escape, sizeof escape);
      }
    }
  }
  sink.put(reinterpret_cast<const char*>(run), static_cast<std::size_t>(end - run));
  return true;
}

template <class Sink>
bool write_string(Sink& sink, std::string_view text, invalid_utf8 policy) {
  sink.put('"');
  const bool ok = write_escaped(sink, text, policy);
  sink.put('"');
  return ok;
}

// `,"key":` (the key is a trusted ASCII literal: not escaped).
template <class Sink>
void write_key(Sink& sink, std::string_view key) {
  sink.put(',');
  sink.put('"');
  sink.put(key);
  sink.put("\":", 2);
}

template <class Sink>
void write_uint_member(Sink& sink, std::string_view key, std::uint64_t value) {
  write_key(sink, key);
  write_uint(sink, value);
}

template <class Sink>
void write_bool_member(Sink& sink, std::string_view key, bool value) {
  write_key(sink, key);
  if (value) sink.put("true", 4);
  else sink.put("false", 5);
}

// Key names shared by the writer and the decoder.
inline constexpr std::string_view kClockNames[] = {"none", "coarse", "tsc", "steady"};

// The kind's named boolean key, or "" when its kind bit has no name (then it is written as "flag").
inline std::string_view kind_bit_name(event_kind kind) noexcept {
  switch (kind) {
    case event_kind::tool_call_end: return "args_invalid";
    case event_kind::tool_result: return "is_error";
    case event_kind::usage: return "estimated";
    case event_kind::error: return "retryable";
    default: return {};
  }
}

// Kinds whose `index` is always written (it means something for them).
inline bool kind_has_index(event_kind kind) noexcept {
  switch (kind) {
    case event_kind::content_block_start:
    case event_kind::content_block_stop:
    case event_kind::text_delta:
    case event_kind::thinking_delta:
    case event_kind::signature_delta:
    case event_kind::tool_call_start:
    case event_kind::tool_args_delta:
    case event_kind::tool_call_end:
      return true;
    default:
      return kind >= event_kind::execution_started && kind <= event_kind::mcp_disconnected;
  }
}

// Kinds that always write their OpenAI choice index. The text deltas carry one too, written only when it is
// not 0 (so n = 1 output keeps its shape).
inline bool kind_has_choice(event_kind kind) noexcept {
  return kind == event_kind::tool_call_start || kind == event_kind::tool_args_delta ||
         kind == event_kind::tool_call_end;
}

// Writes the event's members after the opening brace, starting with `"type":...` (no leading comma).
// Returns status::invalid when the policy rejects the text; callers have validated the event.
template <class Sink>
status write_event_members(Sink& sink, const event& e, invalid_utf8 policy) {
  const event_kind kind = e.kind();
  const kind_descriptor& info = kind_info(kind);
  sink.put("\"type\":\"", 8);
  sink.put(info.name);
  sink.put('"');
  write_uint_member(sink, "seq", e.seq());
  write_uint_member(sink, "timestamp", e.timestamp());
  write_key(sink, "clock");
  sink.put('"');
  sink.put(kClockNames[static_cast<std::size_t>(e.timestamp_clock()) & 3]);
  sink.put('"');

  if (kind == event_kind::user) {
    write_uint_member(sink, "code", e.index());
  } else if (kind_has_index(kind) || e.index() != 0) {
    write_uint_member(sink, "index", e.index());
  }
  if (kind_has_choice(kind) || e.choice() != 0) write_uint_member(sink, "choice", e.choice());

  if (kind == event_kind::content_block_start) {
    write_key(sink, "block_type");
    sink.put('"');
    sink.put(to_string(e.block()));
    sink.put('"');
  } else if (kind == event_kind::message_stop) {
    write_key(sink, "stop_reason");
    sink.put('"');
    sink.put(to_string(e.stop()));
    sink.put('"');
  } else if (e.aux() != 0) {
    write_uint_member(sink, "aux", e.aux());
  }

  const std::string_view bit_name = kind_bit_name(kind);
  if (!bit_name.empty()) {
    write_bool_member(sink, bit_name, e.kind_bit());
  } else if (e.kind_bit()) {
    write_bool_member(sink, "flag", true);
  }

  if (kind == event_kind::usage) {
    const usage_counts u = e.usage_values();
    write_uint_member(sink, "input_tokens", u.input_tokens);
    write_uint_member(sink, "output_tokens", u.output_tokens);
    write_uint_member(sink, "total_tokens", u.total_tokens);
    write_uint_member(sink, "cache_read_tokens", u.cache_read_tokens);
    write_uint_member(sink, "cache_write_tokens", u.cache_write_tokens);
    write_uint_member(sink, "reasoning_tokens", u.reasoning_tokens);
  } else if (kind == event_kind::stream_complete) {
    write_uint_member(sink, "total_chunks", e.total_chunks());
    write_uint_member(sink, "duration_ns", e.duration_ns());
  }

  for (std::size_t i = 0; i < info.field_count; ++i) {
    write_key(sink, info.field_names[i]);
    if (!write_string(sink, e.field(i), policy)) return status::invalid;
  }
  return status::ok;
}

}  // namespace rill::codec::internal
