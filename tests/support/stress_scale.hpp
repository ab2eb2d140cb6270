// Test support: scales stress-test work by RILL_STRESS_SCALE (default 1.0) so sanitizer runs stay short.
// The asan ctest preset sets 0.05 and tsan 0.02 (CMakePresets.json).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <pthread.h>
#include <sched.h>

namespace rill::test {

inline double stress_scale() {
  const char* value = std::getenv("RILL_STRESS_SCALE");
  if (value == nullptr) return 1.0;
  const double scale = std::strtod(value, nullptr);
  return scale > 0 ? scale : 1.0;
}

// `full` scaled, never below `floor`.
inline std::uint64_t scaled(std::uint64_t full, std::uint64_t floor = 1000) {
  return std::max<std::uint64_t>(floor, static_cast<std::uint64_t>(static_cast<double>(full) * stress_scale()));
}

// Pins the calling thread to `cpu` when it exists; a no-op otherwise (tests must pass unpinned too).
inline void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// A 64-bit mix for payload checksums (splitmix64 finalizer).
inline std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace rill::test
