// What the pinned perf/*_perf.cpp programs add to rill-bench's harness (pinning, the core-to-core probe and
// medians come from tools/bench/harness.hpp): rounds bracketed by probes, rows of implementations run
// interleaved, one verified producer/consumer timed run, and flag parsing.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "rill/detail/layout.hpp"

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

// Runs `rounds` rounds. Each calls `run_round()` (which returns that round's results) between two
// core-to-core probes and prints "round N  c2c B/A ns", then `print(results)` on the same line. A round whose
// probes read another placement is marked left out; the others go to `keep(results)`. Returns how many
// rounds were left out.
template <class RunRound, class Print, class Keep>
std::uint64_t run_probed_rounds(std::uint64_t rounds, RunRound&& run_round, Print&& print, Keep&& keep) {
  std::uint64_t left_out = 0;
  for (std::uint64_t r = 0; r < rounds; ++r) {
    decltype(run_round()) results;
    const probed_round probes = between_probes([&] { results = run_round(); });
    std::printf("round %2llu  c2c %3.0f/%3.0f ns", static_cast<unsigned long long>(r + 1), probes.before_ns,
                probes.after_ns);
    print(results);
    const bool same_placement = probes.same_placement();
    std::printf("%s\n", same_placement ? "" : "  (placement changed: left out)");
    if (same_placement) {
      keep(results);
    } else {
      ++left_out;
    }
  }
  return left_out;
}

// One implementation in a program that interleaves several: its name, one timed run of `budget`, and the
// figures of the rounds kept.
template <class Figures>
struct measured_row {
  measured_row(std::string row_name, std::function<Figures(std::chrono::milliseconds)> timed_run)
      : name(std::move(row_name)), run(std::move(timed_run)) {}
  std::string name;
  std::function<Figures(std::chrono::milliseconds budget)> run;
  std::vector<Figures> runs;  // kept rounds only
};

// Runs every row once a round, in order, for `rounds` rounds as run_probed_rounds does; `print(figures)`
// writes one run's figures after its row's name on the round's line. Returns how many rounds were left out.
template <class Figures, class Print>
std::uint64_t run_rows(std::vector<measured_row<Figures>>& rows, std::uint64_t rounds,
                       std::chrono::milliseconds budget, Print&& print) {
  return run_probed_rounds(
      rounds,
      [&] {
        std::vector<Figures> round;
        for (measured_row<Figures>& row : rows) round.push_back(row.run(budget));
        return round;
      },
      [&](const std::vector<Figures>& round) {
        for (std::size_t i = 0; i < rows.size(); ++i) {
          std::printf(" | %s ", rows[i].name.c_str());
          print(round[i]);
        }
      },
      [&](const std::vector<Figures>& round) {
        for (std::size_t i = 0; i < rows.size(); ++i) rows[i].runs.push_back(round[i]);
      });
}

// What run_pinned_pair measured.
struct pinned_pair_result {
  std::uint64_t received = 0;
  std::uint64_t empty_polls = 0;  // consumer pops that took nothing
  double seconds = 0;             // from the producer's start to the consumer's last element
};

// One timed run of a producer pinned to cpu0 and a consumer pinned to cpu1, started together.
// `produce(stop)` sends elements 0, 1, 2, ... (element k carries index k & pool_mask) until `stop` reads
// true, then returns how many it sent. `pop(check)` takes what it can, calls check(index) for each element in
// order and returns how many it took. The consumer stops at the first empty pop after the producer has
// returned; an element out of order or missing then exits the program with status 1 (named `program`).
template <class Produce, class Pop>
pinned_pair_result run_pinned_pair(const char* program, std::chrono::milliseconds budget,
                                   std::uint64_t pool_mask, Produce&& produce, Pop&& pop) {
  std::atomic<bool> stop{false}, go{false};
  constexpr std::uint64_t kNotDone = ~std::uint64_t{0};
  std::atomic<std::uint64_t> produced{kNotDone};
  std::uint64_t wrong = 0;
  pinned_pair_result result;
  std::chrono::steady_clock::time_point start, end;
  std::thread consumer([&] {
    rill_bench::pin_this_thread(1);
    while (!go.load(std::memory_order_acquire)) rill::detail::cpu_relax();  // pairs with the release of go
    std::uint64_t k = 0, empty = 0, bad = 0;
    auto check = [&](std::uint64_t index) {
      bad += index != (k & pool_mask) ? 1 : 0;
      ++k;
    };
    while (true) {
      if (pop(check) != 0) continue;
      ++empty;
      // Pairs with the producer's release store after its last push: an empty pop after it means drained
      // (the count is compared below, so a lost element fails the run instead of hanging it).
      if (produced.load(std::memory_order_acquire) != kNotDone && pop(check) == 0) break;
      rill::detail::cpu_relax();
    }
    end = std::chrono::steady_clock::now();
    result.received = k;
    result.empty_polls = empty;
    wrong = bad;
  });
  std::thread producer([&] {
    rill_bench::pin_this_thread(0);
    while (!go.load(std::memory_order_acquire)) rill::detail::cpu_relax();  // pairs with the release of go
    start = std::chrono::steady_clock::now();
    const std::uint64_t sent = produce(stop);
    produced.store(sent, std::memory_order_release);  // after the last push; pairs with the consumer
  });
  go.store(true, std::memory_order_release);  // both threads start together; pairs with their acquires
  std::this_thread::sleep_for(budget);
  stop.store(true, std::memory_order_relaxed);  // a time signal; the results travel through produced and join
  producer.join();
  consumer.join();
  const std::uint64_t sent = produced.load(std::memory_order_relaxed);  // the joins ordered it
  if (wrong != 0 || result.received != sent) {
    std::fprintf(stderr, "%s: %llu elements out of order, %llu of %llu received\n", program,
                 static_cast<unsigned long long>(wrong), static_cast<unsigned long long>(result.received),
                 static_cast<unsigned long long>(sent));
    std::exit(1);
  }
  result.seconds = std::chrono::duration<double>(end - start).count();
  return result;
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

// Reads `--flag N` pairs (positive counts, parse_count) into the matching targets. Anything else prints
// `usage` and exits with status 2.
inline void parse_count_flags(const char* program, const char* usage, int argc, char** argv,
                              std::initializer_list<std::pair<const char*, std::uint64_t*>> flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto match =
        std::find_if(flags.begin(), flags.end(), [&](const auto& f) { return arg == f.first; });
    if (match == flags.end() || i + 1 >= argc) {
      std::fprintf(stderr, "usage: %s\n", usage);
      std::exit(2);
    }
    *match->second = parse_count(program, match->first, argv[++i]);
  }
}

}  // namespace rill_perf
