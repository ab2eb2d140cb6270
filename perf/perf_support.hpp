// What the pinned perf/*_perf.cpp programs add to rill-bench's harness (pinning, the core-to-core probe and
// medians come from tools/bench/harness.hpp): rounds bracketed by probes, and flag parsing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "harness.hpp"

namespace rill_perf {

// The core-to-core probes around one round of runs, and whether they read the same vCPU placement (this
// VM's placements differ by 1.7x or more; a round across two of them compares nothing).
struct probed_round {
  double before_ns, after_ns;
  bool same_placement() const { return std::max(before_ns, after_ns) <= 1.5 * std::min(before_ns, after_ns); }
};

// Probes, calls `round()`, probes again.
template <class Round>
probed_round between_probes(Round&& round) {
  constexpr int kProbeTrips = 20000;
  const double before = rill_bench::probe_c2c_ns(kProbeTrips);
  round();
  return {before, rill_bench::probe_c2c_ns(kProbeTrips)};
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
