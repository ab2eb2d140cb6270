#include "rill/clock.hpp"

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

std::chrono::steady_clock::time_point to_steady(clock_kind kind, std::uint64_t stamp) noexcept {
  using std::chrono::nanoseconds;
  using std::chrono::steady_clock;
  switch (kind) {
    case clock_kind::coarse:
    case clock_kind::steady:
      // Both count nanoseconds of CLOCK_MONOTONIC, steady_clock's own clock on Linux.
      return steady_clock::time_point(std::chrono::duration_cast<steady_clock::duration>(nanoseconds(stamp)));
    case clock_kind::tsc: {
      const tsc_ratio& r = tsc_calibration();
      const double delta_ns = (static_cast<double>(stamp) - static_cast<double>(r.tsc_base)) * r.ns_per_tick;
      const auto ns = static_cast<std::int64_t>(static_cast<double>(r.steady_base) + delta_ns);
      return steady_clock::time_point(std::chrono::duration_cast<steady_clock::duration>(nanoseconds(ns)));
    }
    case clock_kind::none: break;
  }
  return steady_clock::time_point{};
}

std::chrono::system_clock::time_point to_system(clock_kind kind, std::uint64_t stamp) noexcept {
  const auto steady_now = std::chrono::steady_clock::now();
  const auto system_now = std::chrono::system_clock::now();
  const auto age = steady_now - to_steady(kind, stamp);
  return system_now - std::chrono::duration_cast<std::chrono::system_clock::duration>(age);
}

}  // namespace rill::clock
