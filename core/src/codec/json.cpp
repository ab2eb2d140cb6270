#include "rill/codec/json.hpp"

#include <simdjson.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <new>

#include "internal/json_out.hpp"

namespace rill::codec {
namespace {

using internal::fixed_sink;
using internal::string_sink;

template <class Sink>
status write_event_object(Sink& sink, const event& e, invalid_utf8 policy) {
  sink.put('{');
  const status s = internal::write_event_members(sink, e, policy);
  sink.put('}');
  return s;
}

// Builds an event from decoded parts. Events carry a choice only when built by the tool and delta factories
// (there is no setter), so a non-zero choice goes through them; everything else through with_text / the
// numeric factories.
// Returns status::invalid when the parts describe an event no public constructor can build.
status build_event(event_kind kind, std::uint16_t index, std::uint16_t choice, std::uint8_t aux, bool kind_bit,
                   const std::string_view* fields, std::size_t field_count, const usage_counts& usage,
                   std::uint64_t total_chunks, std::uint64_t duration_ns, event& out) noexcept {
  if (kind == event_kind::usage || kind == event_kind::stream_complete) {
    if (index != 0 || choice != 0 || aux != 0) return status::invalid;
    if (kind == event_kind::usage) {
      out = event::usage(usage, kind_bit);
    } else {
      if (kind_bit) return status::invalid;
      out = event::stream_complete(total_chunks, duration_ns);
    }
    return status::ok;
  }
  if (choice == 0) {
    out = event::with_text(kind, index, aux, kind_bit, fields, field_count);
    return status::ok;
  }
  if (aux != 0) return status::invalid;
  switch (kind) {
    case event_kind::tool_call_start:
      if (kind_bit) return status::invalid;
      out = event::tool_call_start(index, fields[0], fields[1], choice);
      return status::ok;
    case event_kind::tool_args_delta:
      if (kind_bit) return status::invalid;
      out = event::tool_args_delta(index, fields[0], choice);
      return status::ok;
    case event_kind::tool_call_end:
      out = event::tool_call_end(index, kind_bit, choice);
      return status::ok;
    case event_kind::text_delta:
      if (kind_bit) return status::invalid;
      out = event::text_delta(index, fields[0], choice);
      return status::ok;
    case event_kind::thinking_delta:
      if (kind_bit) return status::invalid;
      out = event::thinking_delta(index, fields[0], choice);
      return status::ok;
    case event_kind::signature_delta:
      if (kind_bit) return status::invalid;
      out = event::signature_delta(index, fields[0], choice);
      return status::ok;
    default:
      return status::invalid;
  }
}

}  // namespace

status encode_json(const event& e, std::string& out, const json_options& options) noexcept {
  if (const status v = e.validate(); v != status::ok) return v;
  const std::size_t original_size = out.size();
  string_sink sink{out};
  const status s = write_event_object(sink, e, options.on_invalid_utf8);
  if (s != status::ok) out.resize(original_size);
  return s;
}

status encode_json(const event& e, char* dest, std::size_t capacity, std::size_t& written,
                   const json_options& options) noexcept {
  written = 0;
  if (const status v = e.validate(); v != status::ok) return v;
  fixed_sink sink{dest, capacity};
  const status s = write_event_object(sink, e, options.on_invalid_utf8);
  if (s != status::ok) return s;
  if (sink.overflow) return status::too_large;
  written = sink.size;
  return status::ok;
}

status append_json_string(std::string& out, std::string_view text, invalid_utf8 on_invalid_utf8) noexcept {
  const std::size_t original_size = out.size();
  string_sink sink{out};
  if (!internal::write_string(sink, text, on_invalid_utf8)) {
    out.resize(original_size);
    return status::invalid;
  }
  return status::ok;
}

// ---- owned_event ----

void owned_event::assign(const event& e) {
  const std::size_t n = e.field_count();
  if (n == 0 || e.text_is_inline()) {
    event_ = e;  // the text, if any, lives inside the event itself
    return;
  }
  // `e` may be this object's own event, or borrow its text: then the text is gathered into a new string
  // (read before storage_ changes) that replaces storage_; otherwise storage_ is reused.
  const std::less<const char*> before;
  bool borrows_storage = false;
  for (std::size_t i = 0; i < n && !borrows_storage; ++i) {
    const char* p = e.field(i).data();
    borrows_storage =
        p != nullptr && !before(p, storage_.data()) && before(p, storage_.data() + storage_.size());
  }
  std::string gathered;
  std::string& text = borrows_storage ? gathered : storage_;
  text.clear();
  for (std::size_t i = 0; i < n; ++i) text.append(e.field(i));
  if (borrows_storage) storage_.swap(gathered);
  std::array<std::string_view, 3> fields{};
  std::size_t offset = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t size = e.field(i).size();
    fields[i] = std::string_view(storage_).substr(offset, size);
    offset += size;
  }
  event rebuilt;
  if (build_event(e.kind(), e.index(), e.choice(), e.aux(), e.kind_bit(), fields.data(), n, {}, 0, 0, rebuilt) !=
      status::ok) {
    // Not reachable for events made by rill's constructors; keep the borrowed copy rather than lose it.
    event_ = e;
    return;
  }
  rebuilt.set_seq(e.seq());
  rebuilt.set_timestamp(e.timestamp_clock(), e.timestamp());
  event_ = rebuilt;
}

// ---- json_decoder ----

struct json_decoder::parser_state {
  simdjson::dom::parser parser;
};

json_decoder::json_decoder() : parser_(std::make_unique<parser_state>()) {}
json_decoder::~json_decoder() = default;
json_decoder::json_decoder(json_decoder&&) noexcept = default;
json_decoder& json_decoder::operator=(json_decoder&&) noexcept = default;

status json_decoder::fail(status code, std::string_view what, std::string_view detail) noexcept {
  std::size_t n = 0;
  const auto append = [&](std::string_view part) {
    const std::size_t take = std::min(part.size(), message_.size() - n);
    std::memcpy(message_.data() + n, part.data(), take);
    n += take;
  };
  append(what);
  if (!detail.empty()) {
    append(": ");
    append(detail);
  }
  message_size_ = n;
  return code;
}

namespace {

// Keys the decoder knows, as bits of a "seen" mask (a key seen twice is an error).
enum key_bit : std::uint32_t {
  kKeySeq = 1u << 0,
  kKeyTimestamp = 1u << 1,
  kKeyClock = 1u << 2,
  kKeyIndex = 1u << 3,
  kKeyChoice = 1u << 4,
  kKeyAux = 1u << 5,
  kKeyBit = 1u << 6,
  kKeyTotalChunks = 1u << 7,
  kKeyDuration = 1u << 8,
  kKeyField0 = 1u << 9,   // text fields: kKeyField0 << i
  kKeyUsage0 = 1u << 12,  // usage counters: kKeyUsage0 << i (6 of them: bits 12-17)
  kKeyType = 1u << 18,
};

constexpr std::string_view kUsageKeys[] = {"input_tokens",      "output_tokens",      "total_tokens",
                                           "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"};

}  // namespace

status json_decoder::decode(std::string_view json, owned_event& out) {
  event decoded;
  const status s = decode(json, decoded);
  if (s == status::ok) out.assign(decoded);
  return s;
}

status json_decoder::decode(std::string_view json, event& out) noexcept {
  message_size_ = 0;
  if (json.empty()) return fail(status::invalid, "not valid JSON", "empty input");
  simdjson::dom::element root;
  if (const auto error = parser_->parser.parse(json.data(), json.size()).get(root); error) {
    return fail(error == simdjson::MEMALLOC || error == simdjson::CAPACITY ? status::too_large : status::invalid,
                "not valid JSON", simdjson::error_message(error));
  }
  simdjson::dom::object object;
  if (root.get_object().get(object)) return fail(status::invalid, "the event is not a JSON object");

  std::string_view type_name;
  if (const auto error = object.at_key("type").get_string().get(type_name); error) {
    return fail(status::invalid, error == simdjson::NO_SUCH_FIELD ? "missing field \"type\"" : "\"type\" is not a string");
  }
  const event_kind kind = kind_from_string(type_name);
  if (kind == event_kind::none) return fail(status::invalid, "unknown event type", type_name);
  const kind_descriptor& info = kind_info(kind);
  const std::string_view bit_name = internal::kind_bit_name(kind);
  const std::string_view index_key = kind == event_kind::user ? "code" : "index";

  std::uint32_t seen = 0;
  std::uint64_t seq = 0, timestamp = 0, index = 0, choice = 0, aux = 0, total_chunks = 0, duration_ns = 0;
  clock_kind clock = clock_kind::none;
  bool kind_bit = false;
  usage_counts usage;
  std::array<std::uint32_t*, 6> usage_slots = {&usage.input_tokens,      &usage.output_tokens,
                                               &usage.total_tokens,      &usage.cache_read_tokens,
                                               &usage.cache_write_tokens, &usage.reasoning_tokens};
  std::array<std::string_view, 3> fields{};

  const auto mark = [&](std::uint32_t bit, std::string_view key) -> bool {
    if (seen & bit) {
      static_cast<void>(fail(status::invalid, "duplicated key", key));
      return false;
    }
    seen |= bit;
    return true;
  };
  const auto read_uint = [&](simdjson::dom::element value, std::uint64_t limit, std::uint64_t& target,
                             std::string_view key) -> bool {
    std::uint64_t v;
    if (value.get_uint64().get(v) || v > limit) {
      static_cast<void>(fail(status::invalid, "expected an unsigned integer in range", key));
      return false;
    }
    target = v;
    return true;
  };
  const auto read_name = [&](simdjson::dom::element value, std::string_view key, std::string_view& target) -> bool {
    if (value.get_string().get(target)) {
      static_cast<void>(fail(status::invalid, "expected a string", key));
      return false;
    }
    return true;
  };

  for (const auto member : object) {
    const std::string_view key = member.key;
    const simdjson::dom::element value = member.value;

    bool is_field = false;
    for (std::size_t i = 0; i < info.field_count; ++i) {
      if (key != info.field_names[i]) continue;
      if (!mark(kKeyField0 << i, key) || !read_name(value, key, fields[i])) return status::invalid;
      is_field = true;
      break;
    }
    if (is_field) continue;
    if (key == "type") {  // read above (at_key takes the first); a second one is refused, not ignored
      if (!mark(kKeyType, key)) return status::invalid;
      continue;
    }

    if (key == "seq") {
      if (!mark(kKeySeq, key) || !read_uint(value, std::numeric_limits<std::uint64_t>::max(), seq, key)) {
        return status::invalid;
      }
    } else if (key == "timestamp") {
      if (!mark(kKeyTimestamp, key) ||
          !read_uint(value, std::numeric_limits<std::uint64_t>::max(), timestamp, key)) {
        return status::invalid;
      }
    } else if (key == "clock") {
      std::string_view name;
      if (!mark(kKeyClock, key) || !read_name(value, key, name)) return status::invalid;
      const auto* found = std::find(std::begin(internal::kClockNames), std::end(internal::kClockNames), name);
      if (found == std::end(internal::kClockNames)) return fail(status::invalid, "unknown clock", name);
      clock = static_cast<clock_kind>(found - std::begin(internal::kClockNames));
    } else if (key == index_key) {
      if (!mark(kKeyIndex, key) || !read_uint(value, 0xffff, index, key)) return status::invalid;
    } else if (key == "choice") {
      if (!mark(kKeyChoice, key) || !read_uint(value, 0xffff, choice, key)) return status::invalid;
    } else if (kind == event_kind::content_block_start && key == "block_type") {
      std::string_view name;
      if (!mark(kKeyAux, key) || !read_name(value, key, name)) return status::invalid;
      bool known = false;
      aux = static_cast<std::uint64_t>(block_type_from_string(name, known));
      if (!known) return fail(status::invalid, "unknown block_type", name);
    } else if (kind == event_kind::message_stop && key == "stop_reason") {
      std::string_view name;
      if (!mark(kKeyAux, key) || !read_name(value, key, name)) return status::invalid;
      bool known = false;
      aux = static_cast<std::uint64_t>(stop_reason_from_string(name, known));
      if (!known) return fail(status::invalid, "unknown stop_reason", name);
    } else if (key == "aux" && kind != event_kind::content_block_start && kind != event_kind::message_stop) {
      if (!mark(kKeyAux, key) || !read_uint(value, 0xff, aux, key)) return status::invalid;
    } else if (bit_name.empty() ? key == "flag" : key == bit_name) {
      if (!mark(kKeyBit, key)) return status::invalid;
      if (value.get_bool().get(kind_bit)) return fail(status::invalid, "expected true or false", key);
    } else if (kind == event_kind::stream_complete && key == "total_chunks") {
      if (!mark(kKeyTotalChunks, key) ||
          !read_uint(value, std::numeric_limits<std::uint64_t>::max(), total_chunks, key)) {
        return status::invalid;
      }
    } else if (kind == event_kind::stream_complete && key == "duration_ns") {
      if (!mark(kKeyDuration, key) ||
          !read_uint(value, std::numeric_limits<std::uint64_t>::max(), duration_ns, key)) {
        return status::invalid;
      }
    } else if (kind == event_kind::usage) {
      for (std::size_t i = 0; i < std::size(kUsageKeys); ++i) {
        if (key != kUsageKeys[i]) continue;
        std::uint64_t v = 0;
        if (!mark(kKeyUsage0 << i, key) || !read_uint(value, 0xffffffffu, v, key)) return status::invalid;
        *usage_slots[i] = static_cast<std::uint32_t>(v);
        break;
      }
    }
    // Any other key is ignored: newer writers may add keys.
  }

  if (kind == event_kind::content_block_start && !(seen & kKeyAux)) {
    return fail(status::invalid, "missing required field", "block_type");
  }
  if (kind == event_kind::message_stop && !(seen & kKeyAux)) {
    return fail(status::invalid, "missing required field", "stop_reason");
  }
  for (std::size_t i = 0; i < info.field_count; ++i) {
    if ((info.required_fields & (1u << i)) && fields[i].empty()) {
      return fail(status::invalid, "missing required field", info.field_names[i]);
    }
  }
  for (std::size_t i = 0; i + 1 < info.field_count; ++i) {
    if (fields[i].size() > event::kMaxLeadingFieldBytes) {
      return fail(status::too_large, "text field longer than 65535 bytes", info.field_names[i]);
    }
  }

  event decoded;
  if (build_event(kind, static_cast<std::uint16_t>(index), static_cast<std::uint16_t>(choice),
                  static_cast<std::uint8_t>(aux), kind_bit, fields.data(), info.field_count, usage, total_chunks,
                  duration_ns, decoded) != status::ok) {
    return fail(status::invalid, "this combination of index, choice, aux and flag cannot be represented",
                info.name);
  }
  decoded.set_seq(seq);
  decoded.set_timestamp(clock, timestamp);
  if (const status v = decoded.validate(); v != status::ok) return fail(v, "the decoded event is not valid", info.name);
  out = decoded;
  return status::ok;
}

}  // namespace rill::codec
