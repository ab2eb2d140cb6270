// What the pinned perf/*_perf.cpp programs share: pinning, the core-to-core probe, medians and flag parsing.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "rill/detail/layout.hpp"

namespace rill_perf {

// Pins the calling thread to `cpu`; says so on stderr (naming `program`) when it cannot.
inline void pin_to(const char* program, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
    std::fprintf(stderr, "%s: cannot pin to cpu%d; results are not comparable\n", program, cpu);
  }
}

// One-way core-to-core latency (ns) between cpu0 (the calling thread, pinned here) and cpu1: a ping-pong of
// one atomic word per direction, round trip / 2.
inline double probe_c2c_ns(const char* program) {
  struct alignas(rill::detail::kFalseSharingRange) word {
    std::atomic<std::uint64_t> value{0};
  };
  auto ping = std::make_unique<word>();
  auto pong = std::make_unique<word>();
  constexpr std::uint64_t kTrips = 20000;
  std::thread echo([&] {
    pin_to(program, 1);
    for (std::uint64_t i = 1; i <= kTrips; ++i) {
      while (ping->value.load(std::memory_order_acquire) != i) rill::detail::cpu_relax();  // pairs with ping
      pong->value.store(i, std::memory_order_release);
    }
  });
  pin_to(program, 0);
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 1; i <= kTrips; ++i) {
    ping->value.store(i, std::memory_order_release);  // pairs with the echo's acquire
    while (pong->value.load(std::memory_order_acquire) != i) rill::detail::cpu_relax();
  }
  const auto end = std::chrono::steady_clock::now();
  echo.join();
  return std::chrono::duration<double, std::nano>(end - start).count() / (2.0 * kTrips);
}

// The core-to-core probes around one round of runs, and whether they read the same vCPU placement (this
// VM's placements differ by 1.7x or more; a round across two of them compares nothing).
struct probed_round {
  double before_ns, after_ns;
  bool same_placement() const { return std::max(before_ns, after_ns) <= 1.5 * std::min(before_ns, after_ns); }
};

// Probes, calls `round()`, probes again.
template <class Round>
probed_round between_probes(const char* program, Round&& round) {
  const double before = probe_c2c_ns(program);
  round();
  return {before, probe_c2c_ns(program)};
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A positive decimal count for `flag`; exits with status 2 on anything else.
inline std::uint64_t parse_count(const char* program, const char* flag, const char* text) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || v == 0) {
    std::fprintf(stderr, "%s: %s needs a positive number, got '%s'\n", program, flag, text);
    std::exit(2);
  }
  return v;
}

}  // namespace rill_perf
