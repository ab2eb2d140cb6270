// rill/status.hpp: the one result type of rill's hot paths.
//
// Every operation that can fail on a hot path returns a `rill::status` by value: no exceptions, no
// allocation. `status` converts to `std::error_code` through `rill::status_category()` for callers that
// prefer the standard error machinery; `to_string` gives a stable lower-case name.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace rill {

// Result of a rill operation. `ok` is zero so `if (s != status::ok)` and `!is_ok(s)` read naturally.
enum class [[nodiscard]] status : std::uint8_t {
  ok = 0,
  full,            // no room now: event ring or payload arena at capacity (or dropped under `drop` policy)
  closed,          // the stream is closed: sends are refused; receives end once drained
  timeout,         // a deadline passed before the operation could complete
  cancelled,       // a std::stop_token was triggered while waiting
  too_large,       // the payload can never fit (larger than the arena, or a field over its limit)
  invalid,         // malformed input: unknown kind, bad span, missing field, bad id, bad JSON or SSE
  not_found,       // no stream with that id
  already_exists,  // a live stream already has that id
  empty,           // nothing to receive now (try_receive on an open, empty stream)
  lagged,          // a multicast subscriber missed events that were overwritten (it continues after them)
  detached,        // a multicast subscriber was cut off (slow_reader::detach) or is not attached
  not_retained,    // a resume point older than the oldest event a multicast stream still retains
};

inline constexpr bool is_ok(status s) noexcept { return s == status::ok; }

// Stable name of a status ("ok", "full", ...). Never allocates.
constexpr std::string_view to_string(status s) noexcept {
  switch (s) {
    case status::ok: return "ok";
    case status::full: return "full";
    case status::closed: return "closed";
    case status::timeout: return "timeout";
    case status::cancelled: return "cancelled";
    case status::too_large: return "too_large";
    case status::invalid: return "invalid";
    case status::not_found: return "not_found";
    case status::already_exists: return "already_exists";
    case status::empty: return "empty";
    case status::lagged: return "lagged";
    case status::detached: return "detached";
    case status::not_retained: return "not_retained";
  }
  return "unknown";
}

// The error category of rill statuses; name() is "rill". Thread-safe, a function-local static.
const std::error_category& status_category() noexcept;

inline std::error_code make_error_code(status s) noexcept {
  return {static_cast<int>(s), status_category()};
}

}  // namespace rill

template <>
struct std::is_error_code_enum<rill::status> : std::true_type {};
