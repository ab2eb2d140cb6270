// rill/detail/wait_loop.hpp: the spin-then-park loop behind rill's blocking calls. Installed, not for users.
//
// `attempt()` is retried until it returns something other than `retry`: first `spins` times with a pause
// in between, then around a park on `word` using the handshake of parking.hpp (announce, heavy barrier,
// re-check, sleep). The waker's side is wait_word::notify_after_publish() after its progress is visible.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stop_token>

#include "rill/detail/layout.hpp"
#include "rill/detail/parking.hpp"
#include "rill/status.hpp"

namespace rill::detail {

// The deadline `timeout` from now: now for a timeout of zero or less, time_point::max() (no deadline) for
// one that would reach past the clock's range (a timeout of years means "forever", not an overflow).
// Compared as double nanoseconds, so no duration type's range can overflow the test; the second of margin
// covers the double's rounding near the end of the range.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) noexcept {
  using time_point = std::chrono::steady_clock::time_point;
  using double_ns = std::chrono::duration<double, std::nano>;
  const time_point now = std::chrono::steady_clock::now();
  if (timeout <= timeout.zero()) return now;
  if (double_ns(timeout) >= double_ns(time_point::max() - now) - double_ns(std::chrono::seconds(1))) {
    return time_point::max();
  }
  return now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
}

struct no_op {
  void operator()() const noexcept {}
};

// Returns the first result of `attempt()` other than `retry`; status::timeout at `deadline`
// (time_point::max() for none); status::cancelled when `token` (may be null) is stopped. `on_first_wait`
// runs once, when the first attempt failed (e.g. to count a wait); `on_park` each time the caller has
// announced itself on `word` and is about to sleep (a waker from then on sees it).
template <class Attempt, class OnFirstWait, class OnPark = no_op>
status wait_loop(wait_word& word, status retry, Attempt&& attempt,
                 std::chrono::steady_clock::time_point deadline, const std::stop_token* token,
                 std::uint32_t spins, OnFirstWait&& on_first_wait, OnPark&& on_park = OnPark{}) {
  using time_point = std::chrono::steady_clock::time_point;
  status s = attempt();
  if (s != retry) return s;
  on_first_wait();
  for (std::uint32_t i = 0; i < spins; ++i) {
    cpu_relax();
    s = attempt();
    if (s != retry) return s;
  }
  while (true) {
    if (token != nullptr && token->stop_requested()) return status::cancelled;
    if (deadline != time_point::max() && std::chrono::steady_clock::now() >= deadline) return status::timeout;
    const std::uint32_t announced = word.announce();
    on_park();
    const bool handshake_holds = heavy_barrier();
    s = attempt();  // the re-check of the handshake (parking.hpp)
    if (s != retry) return s;
    if (token != nullptr && token->stop_requested()) return status::cancelled;
    // Without the handshake's guarantee, sleep at most a millisecond at a time rather than trust a wake-up.
    const time_point park_until =
        handshake_holds ? deadline
                        : std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(1));
    if (word.park(announced, park_until) == park_result::timed_out && park_until == deadline) {
      s = attempt();
      return s != retry ? s : status::timeout;
    }
    s = attempt();
    if (s != retry) return s;
  }
}

}  // namespace rill::detail
