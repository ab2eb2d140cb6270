// rill/clock.hpp: the clocks rill stamps events with, and their conversion to std::chrono.
//
// `steady_clock::now()` costs about 22 ns on rill's reference VM, a whole event's budget several times over,
// so a stream stamps events with one of two cheap clocks (stream_options::stamping):
//   - coarse: CLOCK_MONOTONIC_COARSE in nanoseconds (about 3 ns to read; resolution 1-4 ms, the kernel tick).
//     Same epoch as std::chrono::steady_clock on Linux, so conversion is exact.
//   - tsc: the x86 time-stamp counter (about 9 ns; cycle resolution). Converted with a ratio calibrated once
//     per process against steady_clock (first use of `tsc_calibration()`, about 10 ms).
// The clock an event was stamped with travels in its flags; `to_steady` / `to_system` convert any stamp.
// Thread-safety: every function here is safe from any thread. None allocates after calibration.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace rill {

// Which clock produced an event's timestamp. Two bits in the event's flags.
enum class clock_kind : std::uint8_t {
  none = 0,    // not stamped (the producer's own value, or zero)
  coarse = 1,  // CLOCK_MONOTONIC_COARSE nanoseconds
  tsc = 2,     // raw time-stamp counter ticks
  steady = 3,  // std::chrono::steady_clock nanoseconds (a producer that stamps precisely itself)
};

namespace clock {

// CLOCK_MONOTONIC_COARSE in nanoseconds. About 3 ns; never blocks.
inline std::uint64_t coarse_now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// The time-stamp counter (rdtsc). Not serializing: it may be reordered with nearby loads, which is
// harmless for per-event stamps. Falls back to steady_clock where there is no TSC.
inline std::uint64_t tsc_now() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

// steady_clock nanoseconds since its epoch (about 22 ns).
inline std::uint64_t steady_now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// TSC-to-steady conversion, measured once per process on first use (thread-safe static init, ~10 ms).
struct tsc_ratio {
  std::uint64_t tsc_base;    // a TSC reading ...
  std::uint64_t steady_base; // ... and the steady_clock nanoseconds taken at the same moment
  double ns_per_tick;
};
const tsc_ratio& tsc_calibration() noexcept;

// Reads the clock `kind` names, in its own units (see clock_kind).
inline std::uint64_t now(clock_kind kind) noexcept {
  switch (kind) {
    case clock_kind::coarse: return coarse_now_ns();
    case clock_kind::tsc: return tsc_now();
    case clock_kind::steady: return steady_now_ns();
    case clock_kind::none: break;
  }
  return 0;
}

// Converts a stamp of clock `kind` to steady_clock. A `none` stamp converts to the epoch. Any stamp is
// accepted (it may come from a decoded event): results saturate at the epoch and at the clock's maximum.
// The first tsc conversion in a process calibrates the TSC (about 10 ms; concurrent callers wait for it).
std::chrono::steady_clock::time_point to_steady(clock_kind kind, std::uint64_t stamp) noexcept;

// Converts a stamp to wall-clock time, using the current offset between system_clock and steady_clock
// (so a wall-clock step after the stamp shifts the result by that step). Saturates like to_steady; the
// same first-use calibration for tsc.
std::chrono::system_clock::time_point to_system(clock_kind kind, std::uint64_t stamp) noexcept;

}  // namespace clock
}  // namespace rill
