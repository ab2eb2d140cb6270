#include "rill/clock.hpp"

#include <cstdint>
#include <limits>
#include <thread>

namespace rill::clock {

const tsc_ratio& tsc_calibration() noexcept {
  static const tsc_ratio ratio = [] {
    const std::uint64_t steady0 = steady_now_ns();
    const std::uint64_t tsc0 = tsc_now();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const std::uint64_t steady1 = steady_now_ns();
    const std::uint64_t tsc1 = tsc_now();
    const double ticks = static_cast<double>(tsc1 - tsc0);
    return tsc_ratio{tsc1, steady1, ticks > 0 ? static_cast<double>(steady1 - steady0) / ticks : 1.0};
  }();
  return ratio;
}

namespace {

constexpr std::int64_t kMaxNs = std::numeric_limits<std::int64_t>::max();

// Nanoseconds of CLOCK_MONOTONIC for a stamp, within [0, kMaxNs]: a stamp can come from outside (a decoded
// JSON event), and one past the range must saturate rather than wrap or overflow.
std::int64_t steady_ns_of(clock_kind kind, std::uint64_t stamp) noexcept {
  switch (kind) {
    case clock_kind::coarse:
    case clock_kind::steady:
      // Both count nanoseconds of CLOCK_MONOTONIC, steady_clock's own clock on Linux.
      return stamp > static_cast<std::uint64_t>(kMaxNs) ? kMaxNs : static_cast<std::int64_t>(stamp);
    case clock_kind::tsc: {
      const tsc_ratio& r = tsc_calibration();
      const double delta_ns = (static_cast<double>(stamp) - static_cast<double>(r.tsc_base)) * r.ns_per_tick;
      const double ns = static_cast<double>(r.steady_base) + delta_ns;
      // 2^63 itself is not representable in int64: compare against it, not against kMaxNs as a double.
      if (!(ns < 9223372036854775808.0)) return kMaxNs;
      return ns > 0 ? static_cast<std::int64_t>(ns) : 0;
    }
    case clock_kind::none: break;
  }
  return 0;
}

std::int64_t saturating_sub(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t out;
  if (__builtin_sub_overflow(a, b, &out)) return b > 0 ? std::numeric_limits<std::int64_t>::min() : kMaxNs;
  return out;
}

}  // namespace

std::chrono::steady_clock::time_point to_steady(clock_kind kind, std::uint64_t stamp) noexcept {
  using std::chrono::steady_clock;
  return steady_clock::time_point(std::chrono::duration_cast<steady_clock::duration>(
      std::chrono::nanoseconds(steady_ns_of(kind, stamp))));
}

std::chrono::system_clock::time_point to_system(clock_kind kind, std::uint64_t stamp) noexcept {
  using std::chrono::nanoseconds;
  const std::int64_t steady_now =
      std::chrono::duration_cast<nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  const std::int64_t system_now =
      std::chrono::duration_cast<nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Both steady values lie in [0, kMaxNs], so the age cannot overflow; the wall-clock result saturates.
  const std::int64_t age = steady_now - steady_ns_of(kind, stamp);
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          nanoseconds(saturating_sub(system_now, age))));
}

}  // namespace rill::clock
