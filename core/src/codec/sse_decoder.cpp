// SSE decoding: the line scanner and the WHATWG field rules (see rill/codec/sse_decoder.hpp).
#include "rill/codec/sse_decoder.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>

namespace rill::codec {

namespace {

constexpr unsigned char kBom[3] = {0xEF, 0xBB, 0xBF};
constexpr char kBomChars[3] = {'\xEF', '\xBB', '\xBF'};
constexpr std::uint8_t kNameTooLong = 0xff;  // every known field name fits in 5 bytes

}  // namespace

void sse_decoder::padded_buffer::reserve(std::size_t capacity) {
  if (capacity <= capacity_) return;
  // Value-initialized so the padding a JSON parser may read is never uninitialized memory.
  char* grown = new char[capacity + kDataPadding]();
  if (size_ != 0) std::memcpy(grown, bytes_, size_);
  delete[] bytes_;
  bytes_ = grown;
  capacity_ = capacity;
}

sse_decoder::sse_decoder(const sse_decoder_options& options) : options_(options) {
  data_.reserve(std::min<std::size_t>(options_.max_event_bytes, 4096));
  type_.reserve(64);
  value_.reserve(64);
  id_.reserve(64);
  last_id_.reserve(64);
}

void sse_decoder::reset() noexcept {
  in_ = in_end_ = nullptr;
  next_cr_ = next_lf_ = nullptr;
  cr_known_ = lf_known_ = false;
  line_ = line_state::start;
  field_ = field::none;
  skip_lf_ = false;
  bom_matched_ = 0;
  bom_done_ = false;
  name_len_ = 0;
  value_invalid_ = false;
  data_.clear();
  type_.clear();
  value_.clear();
  retry_value_ = 0;
  retry_has_digit_ = false;
  data_lines_ = 0;
  event_open_ = false;
  event_offset_ = 0;
  clear_on_next_ = false;
  id_.clear();
  last_id_.clear();
  id_changed_ = false;
  retry_ms_ = -1;
  offset_ = 0;
  dispatched_ = 0;
  truncated_ = false;
  finished_ = false;
  error_ = status::ok;
  error_offset_ = 0;
  error_length_ = 0;
}

void sse_decoder::set_input(std::string_view bytes) noexcept {
  in_ = bytes.data();
  in_end_ = bytes.data() + bytes.size();
  cr_known_ = lf_known_ = false;  // the memchr caches belong to the previous input
}

void sse_decoder::fail(status s, const char* what, std::uint64_t at) noexcept {
  error_ = s;
  error_offset_ = at;
  const int n = std::snprintf(error_text_, sizeof error_text_, "%s at byte offset %" PRIu64, what, at);
  error_length_ = n < 0 ? 0 : std::min(static_cast<std::size_t>(n), sizeof error_text_ - 1);
  in_ = in_end_;
}

status sse_decoder::fail_by_sink(status s) noexcept {
  fail(s, "the event sink stopped decoding", offset_);
  return s;
}

// Finds the next CR or LF in the current input. Each memchr result is cached until the scan passes it, so
// a stream with only LF line ends pays for one CR scan of the whole input, not one per line.
const char* sse_decoder::find_line_end() noexcept {
  const auto remaining = static_cast<std::size_t>(in_end_ - in_);
  if (!lf_known_ || (next_lf_ != nullptr && next_lf_ < in_)) {
    next_lf_ = static_cast<const char*>(std::memchr(in_, '\n', remaining));
    lf_known_ = true;
  }
  if (!cr_known_ || (next_cr_ != nullptr && next_cr_ < in_)) {
    next_cr_ = static_cast<const char*>(std::memchr(in_, '\r', remaining));
    cr_known_ = true;
  }
  if (next_lf_ == nullptr) return next_cr_;
  if (next_cr_ == nullptr) return next_lf_;
  return std::min(next_lf_, next_cr_);
}

bool sse_decoder::append_value(const char* p, std::size_t n, std::uint64_t at) {
  if (field_ == field::none) return true;
  if (field_ == field::retry) {
    // Parsed as it arrives: a retry value needs no buffer and so never counts against the cap.
    for (std::size_t i = 0; i < n && !value_invalid_; ++i) {
      const auto digit = static_cast<unsigned>(static_cast<unsigned char>(p[i])) - '0';
      if (digit > 9) {
        value_invalid_ = true;
        break;
      }
      retry_has_digit_ = true;
      constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
      retry_value_ = retry_value_ > (kMax - digit) / 10 ? kMax : retry_value_ * 10 + digit;
    }
    return true;
  }
  if (field_ == field::id && (value_invalid_ || std::memchr(p, '\0', n) != nullptr)) {
    value_invalid_ = true;  // an id with NUL is ignored: stop buffering it
    value_.clear();
    return true;
  }
  const std::size_t pending = pending_bytes();
  if (n > options_.max_event_bytes || pending > options_.max_event_bytes - n) {
    const std::size_t fits = options_.max_event_bytes > pending ? options_.max_event_bytes - pending : 0;
    char what[96];
    std::snprintf(what, sizeof what, "SSE event larger than the %zu-byte cap (max_event_bytes)",
                  options_.max_event_bytes);
    fail(status::too_large, what, at + fits);
    return false;
  }
  switch (field_) {
    case field::data: data_.append(p, n); break;
    case field::event: type_.append(p, n); break;
    case field::id: value_.append(p, n); break;
    case field::none:
    case field::retry: break;
  }
  return true;
}

void sse_decoder::resolve_field() noexcept {
  const std::string_view name(name_, name_len_ == kNameTooLong ? 0 : name_len_);
  if (name_len_ == kNameTooLong) {
    field_ = field::none;
  } else if (name == "data") {
    field_ = field::data;
  } else if (name == "event") {
    field_ = field::event;
    type_.clear();  // a later `event` line replaces an earlier one
  } else if (name == "id") {
    field_ = field::id;
    value_.clear();
  } else if (name == "retry") {
    field_ = field::retry;
    retry_value_ = 0;
    retry_has_digit_ = false;
  } else {
    field_ = field::none;
  }
}

void sse_decoder::take_segment(const char* p, std::size_t n, std::uint64_t at) {
  const char* const begin = p;
  while (n > 0) {
    switch (line_) {
      case line_state::start:
        if (*p == ':') {  // a comment: skipped, never buffered
          line_ = line_state::discard;
          return;
        }
        line_ = line_state::name;
        name_len_ = 0;
        field_ = field::none;
        value_invalid_ = false;
        break;
      case line_state::name: {
        const auto* colon = static_cast<const char*>(std::memchr(p, ':', n));
        const std::size_t k = colon != nullptr ? static_cast<std::size_t>(colon - p) : n;
        if (name_len_ != kNameTooLong) {
          if (k <= sizeof name_ - name_len_) {
            if (k != 0) std::memcpy(name_ + name_len_, p, k);
            name_len_ = static_cast<std::uint8_t>(name_len_ + k);
          } else {
            name_len_ = kNameTooLong;
          }
        }
        if (colon == nullptr) return;
        resolve_field();
        line_ = field_ == field::none ? line_state::discard : line_state::value_first;
        p += k + 1;
        n -= k + 1;
        break;
      }
      case line_state::value_first:
        line_ = line_state::value;
        if (*p == ' ') {  // exactly one leading space belongs to the syntax, not the value
          ++p;
          --n;
        }
        break;
      case line_state::value:
        append_value(p, n, at + static_cast<std::uint64_t>(p - begin));
        return;
      case line_state::discard:
        return;
    }
  }
}

bool sse_decoder::end_line() {
  switch (line_) {
    case line_state::start:  // a blank line ends the block
      commit_id();           // dispatched or not, as the WHATWG parser sets the last event ID string first
      if (data_lines_ == 0) {
        type_.clear();
        event_open_ = false;
        return false;
      }
      return true;
    case line_state::name:  // no colon: the whole line is the name, the value is empty
      resolve_field();
      [[fallthrough]];
    case line_state::value_first:
    case line_state::value:
      switch (field_) {
        case field::data:
          // The separator counts against the cap too, so a flood of empty data lines cannot grow unbounded.
          if (pending_bytes() >= options_.max_event_bytes) {
            append_value("\n", 1, offset_);
            break;
          }
          data_.push_back('\n');
          ++data_lines_;
          break;
        case field::id:
          if (!value_invalid_) {
            id_.assign(value_);
            id_changed_ = true;
          }
          value_.clear();
          break;
        case field::retry:
          if (!value_invalid_ && retry_has_digit_) retry_ms_ = static_cast<std::int64_t>(retry_value_);
          break;
        case field::event:
        case field::none:
          break;
      }
      break;
    case line_state::discard:
      break;
  }
  line_ = line_state::start;
  return false;
}

void sse_decoder::commit_id() {
  if (!id_changed_) return;
  last_id_.assign(id_);
  id_changed_ = false;
}

void sse_decoder::make_event(sse_event& out, bool truncated) {
  out.event_type = type_;
  out.data = std::string_view(data_.data(), data_.size() - 1);  // drop the last line's '\n'
  out.id = id_;
  out.offset = event_offset_;
  out.truncated = truncated;
  ++dispatched_;
  data_lines_ = 0;
  event_open_ = false;
  clear_on_next_ = true;
}

sse_decoder::step sse_decoder::next(sse_event& out) noexcept {
  try {
    return next_step(out);
  } catch (const std::bad_alloc&) {
    fail(status::too_large, "out of memory while buffering an SSE event", offset_);
    return step::failed;
  }
}

sse_decoder::step sse_decoder::next_at_eof(sse_event& out) noexcept {
  try {
    return eof_step(out);
  } catch (const std::bad_alloc&) {
    fail(status::too_large, "out of memory while buffering an SSE event", offset_);
    return step::failed;
  }
}

sse_decoder::step sse_decoder::next_step(sse_event& out) {
  if (error_ != status::ok) return step::failed;
  if (finished_) {
    if (in_ == in_end_) return step::need_input;
    fail(status::closed, "input fed after finish()", offset_);
    return step::failed;
  }
  if (clear_on_next_) {
    data_.clear();
    type_.clear();
    clear_on_next_ = false;
  }
  if (!bom_done_) {
    while (in_ < in_end_ && bom_matched_ < 3 && static_cast<unsigned char>(*in_) == kBom[bom_matched_]) {
      ++bom_matched_;
      ++in_;
      ++offset_;
    }
    if (bom_matched_ == 3) {
      bom_done_ = true;
    } else if (in_ < in_end_) {
      // Not a BOM after all: the bytes held back are the start of the first line.
      bom_done_ = true;
      if (bom_matched_ != 0) {
        event_open_ = true;
        event_offset_ = 0;
        take_segment(kBomChars, bom_matched_, 0);
      }
    } else {
      return step::need_input;
    }
  }
  while (in_ < in_end_) {
    if (skip_lf_) {
      skip_lf_ = false;
      if (*in_ == '\n') {
        ++in_;
        ++offset_;
        continue;
      }
    }
    const char* eol = find_line_end();
    const auto n = static_cast<std::size_t>((eol != nullptr ? eol : in_end_) - in_);
    if (n != 0 && line_ == line_state::start && !event_open_) {
      event_open_ = true;
      event_offset_ = offset_;
    }
    if (n != 0) {
      take_segment(in_, n, offset_);
      if (error_ != status::ok) return step::failed;
    }
    if (eol == nullptr) {  // a partial line: its state is kept, its bytes are not rescanned
      offset_ += n;
      in_ = in_end_;
      return step::need_input;
    }
    skip_lf_ = *eol == '\r';
    in_ = eol + 1;
    offset_ += n + 1;
    if (end_line()) {
      make_event(out, false);
      return step::event_ready;
    }
    if (error_ != status::ok) return step::failed;
  }
  return step::need_input;
}

sse_decoder::step sse_decoder::eof_step(sse_event& out) {
  if (error_ != status::ok) return step::failed;
  if (finished_) return step::need_input;
  finished_ = true;
  in_ = in_end_;
  if (clear_on_next_) {
    data_.clear();
    type_.clear();
    clear_on_next_ = false;
  }
  const bool in_data_line =
      (line_ == line_state::value || line_ == line_state::value_first) && field_ == field::data;
  const bool in_bare_data_name = line_ == line_state::name && std::string_view(name_, name_len_ == kNameTooLong ? 0 : name_len_) == "data";
  if (!options_.flush_unterminated_at_eof) {
    truncated_ = data_lines_ != 0 || in_data_line || in_bare_data_name;
    data_.clear();
    type_.clear();
    value_.clear();
    data_lines_ = 0;
    line_ = line_state::start;
    return step::need_input;
  }
  if (line_ != line_state::start) {
    end_line();  // the end of input ends the last line
    if (error_ != status::ok) return step::failed;
  }
  if (data_lines_ == 0) return step::need_input;
  truncated_ = true;
  commit_id();  // an event flushed at the end of input ends its block too
  make_event(out, true);
  return step::event_ready;
}

}  // namespace rill::codec
