// oneway_regime_perf: why spsc_throughput moves two- to three-fold between runs of one queue.
//
//   oneway_regime_perf [--rounds N] [--run-ms MS] [--capacity N]
//
// The spsc_throughput workload (64-byte elements, one per call, producer on cpu0, consumer on cpu1),
// instrumented: the consumer counts the polls that found the ring empty, the producer counts the pushes
// that found it full and samples the ring's depth every 4096 elements. Two rows, interleaved round by round,
// each on a queue built for the run:
//   rill    rill::stream (SPSC) try_send + try_receive
//   boost   boost::lockfree::spsc_queue push + pop
// Per run it prints the rate, empty polls and full pushes per 1000 elements and the mean depth; per row, the
// median, minimum and maximum rate over the rounds kept. Rounds whose core-to-core probes differ by more
// than 1.5x are left out. docs/benchmarking.md ("One-way regimes") has what it showed.
#include <algorithm>
#include <atomic>
#include <boost/lockfree/spsc_queue.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "perf_support.hpp"
#include "rill/detail/layout.hpp"
#include "rill/stream.hpp"

namespace {

using rill_bench::median_of;
constexpr const char* kProgram = "oneway_regime_perf";

constexpr std::size_t kPool = 1024;  // element k is pool entry k mod 1024
constexpr std::uint64_t kDepthSampleEvery = 4096;

struct alignas(64) item {
  std::uint64_t index;
  std::uint64_t payload[7];
};

struct run_figures {
  double events_per_sec = 0;
  double empty_polls_per_k = 0;  // consumer polls that found the ring empty, per 1000 elements
  double full_pushes_per_k = 0;  // producer pushes refused for lack of room, per 1000 elements
  double mean_depth = 0;         // elements in the ring, sampled by the producer
};

// One timed run. `push(k)` sends pool entry k mod kPool and says whether there was room; `pop(check)` takes
// at most one element and calls check(index) for it, returning whether it took one; `depth()` is the
// producer's view of how many elements are in the ring.
template <class Push, class Pop, class Depth>
run_figures timed_run(std::chrono::milliseconds budget, Push push, Pop pop, Depth depth) {
  std::atomic<bool> stop{false}, go{false};
  constexpr std::uint64_t kNotDone = ~std::uint64_t{0};
  std::atomic<std::uint64_t> produced{kNotDone};
  std::uint64_t received = 0, empty_polls = 0, wrong = 0, full_pushes = 0, depth_samples = 0;
  double depth_sum = 0;
  std::chrono::steady_clock::time_point start, end;
  std::thread consumer([&] {
    rill_bench::pin_this_thread(1);
    while (!go.load(std::memory_order_acquire)) rill::detail::cpu_relax();  // pairs with the release of go
    std::uint64_t k = 0, empty = 0, bad = 0;
    auto check = [&](std::uint64_t index) {
      bad += index != (k & (kPool - 1)) ? 1 : 0;
      ++k;
    };
    while (true) {
      if (pop(check)) continue;
      ++empty;
      // Pairs with the producer's release store after its last push: an empty pop after it means drained
      // (the count is compared below, so a lost element fails the run instead of hanging it).
      if (produced.load(std::memory_order_acquire) != kNotDone && !pop(check)) break;
      rill::detail::cpu_relax();
    }
    end = std::chrono::steady_clock::now();
    received = k;
    empty_polls = empty;
    wrong = bad;
  });
  std::thread producer([&] {
    rill_bench::pin_this_thread(0);
    while (!go.load(std::memory_order_acquire)) rill::detail::cpu_relax();  // pairs with the release of go
    start = std::chrono::steady_clock::now();
    std::uint64_t sent = 0, full = 0, samples = 0;
    double sum = 0;
    while (!stop.load(std::memory_order_relaxed)) {  // a time signal only: it orders no data
      sum += static_cast<double>(depth());
      ++samples;
      for (std::uint64_t k = 0; k < kDepthSampleEvery; ++k, ++sent) {
        while (!push(sent)) {
          ++full;
          rill::detail::cpu_relax();
        }
      }
    }
    full_pushes = full;
    depth_sum = sum;
    depth_samples = samples;
    produced.store(sent, std::memory_order_release);  // after the last push; pairs with the consumer
  });
  go.store(true, std::memory_order_release);  // both threads start together; pairs with their acquires
  std::this_thread::sleep_for(budget);
  stop.store(true, std::memory_order_relaxed);  // a time signal; the results travel through produced and join
  producer.join();
  consumer.join();
  const std::uint64_t sent = produced.load(std::memory_order_relaxed);  // the joins ordered it
  if (wrong != 0 || received != sent) {
    std::fprintf(stderr, "%s: %llu elements out of order, %llu of %llu received\n", kProgram,
                 static_cast<unsigned long long>(wrong), static_cast<unsigned long long>(received),
                 static_cast<unsigned long long>(sent));
    std::exit(1);
  }
  const double thousands = static_cast<double>(received) / 1000.0;
  run_figures f;
  f.events_per_sec = static_cast<double>(received) / std::chrono::duration<double>(end - start).count();
  f.empty_polls_per_k = static_cast<double>(empty_polls) / thousands;
  f.full_pushes_per_k = static_cast<double>(full_pushes) / thousands;
  f.mean_depth = depth_samples != 0 ? depth_sum / static_cast<double>(depth_samples) : 0;
  return f;
}

const std::vector<rill::event>& rill_pool() {
  static const std::vector<rill::event> pool = [] {
    std::vector<rill::event> v;
    for (std::size_t i = 0; i < kPool; ++i)
      v.push_back(rill::event::text_delta(static_cast<std::uint16_t>(i), "token"));
    return v;
  }();
  return pool;
}

const std::vector<item>& item_pool() {
  static const std::vector<item> pool = [] {
    std::vector<item> v(kPool);
    for (std::size_t i = 0; i < v.size(); ++i) v[i].index = i;
    return v;
  }();
  return pool;
}

run_figures rill_run(std::chrono::milliseconds budget, std::size_t capacity) {
  rill::stream_options o;
  o.capacity = capacity;
  o.allocate_on_first_send = false;  // as rill-bench: the ring is built before the run
  auto s = std::make_unique<rill::stream>(o);
  struct alignas(rill::detail::kFalseSharingRange) consumer_slot {
    rill::received r;
  };
  auto slot = std::make_unique<consumer_slot>();  // consumer-written: off the producer's lines
  const auto& pool = rill_pool();
  return timed_run(
      budget, [&](std::uint64_t k) { return s->try_send(pool[k & (kPool - 1)]) == rill::status::ok; },
      [&](auto& check) {
        if (s->try_receive(slot->r) != rill::status::ok) return false;
        check(slot->r->index());
        return true;
      },
      [&] { return s->approx_size(); });
}

run_figures boost_run(std::chrono::milliseconds budget, std::size_t capacity) {
  auto q = std::make_unique<boost::lockfree::spsc_queue<item>>(capacity);
  struct alignas(rill::detail::kFalseSharingRange) consumer_slot {
    item e;
  };
  auto slot = std::make_unique<consumer_slot>();  // consumer-written: off the producer's lines
  const auto& pool = item_pool();
  return timed_run(
      budget, [&](std::uint64_t k) { return q->push(pool[k & (kPool - 1)]); },
      [&](auto& check) {
        if (!q->pop(slot->e)) return false;
        check(slot->e.index);
        return true;
      },
      [&] { return capacity - q->write_available(); });
}

struct row {
  row(std::string n, std::function<run_figures(std::chrono::milliseconds)> r)
      : name(std::move(n)), run(std::move(r)) {}
  std::string name;
  std::function<run_figures(std::chrono::milliseconds)> run;
  std::vector<run_figures> runs;  // kept rounds only
};

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t rounds = 10;
  std::chrono::milliseconds budget{250};
  std::size_t capacity = 65536;  // rill-bench's spsc_throughput capacity
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--rounds" && i + 1 < argc) {
      rounds = rill_perf::parse_count(kProgram, "--rounds", argv[++i]);
    } else if (arg == "--run-ms" && i + 1 < argc) {
      budget = std::chrono::milliseconds(rill_perf::parse_count(kProgram, "--run-ms", argv[++i]));
    } else if (arg == "--capacity" && i + 1 < argc) {
      capacity = static_cast<std::size_t>(rill_perf::parse_count(kProgram, "--capacity", argv[++i]));
    } else {
      std::fprintf(stderr, "usage: oneway_regime_perf [--rounds N] [--run-ms MS] [--capacity N]\n");
      return 2;
    }
  }
  if ((capacity & (capacity - 1)) != 0 || capacity < 2 || capacity > (std::size_t{1} << 24)) {
    std::fprintf(stderr, "%s: --capacity must be a power of two from 2 to 2^24\n", kProgram);
    return 2;
  }
  std::vector<row> rows;
  rows.emplace_back("rill", [capacity](auto b) { return rill_run(b, capacity); });
  rows.emplace_back("boost", [capacity](auto b) { return boost_run(b, capacity); });

  std::printf("oneway_regime_perf: %llu rounds, %lld ms a run, one per call, capacity %zu, cpu0 -> cpu1\n",
              static_cast<unsigned long long>(rounds), static_cast<long long>(budget.count()), capacity);
  std::printf("per run: M events/s / empty polls per 1k / full pushes per 1k / mean depth\n");
  std::uint64_t skipped = 0;
  for (std::uint64_t r = 0; r < rounds; ++r) {
    std::vector<run_figures> round;
    const rill_perf::probed_round probes = rill_perf::between_probes([&] {
      for (row& x : rows) round.push_back(x.run(budget));
    });
    const bool same_placement = probes.same_placement();
    std::printf("round %2llu  c2c %3.0f/%3.0f ns", static_cast<unsigned long long>(r + 1), probes.before_ns,
                probes.after_ns);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      std::printf(" | %s %5.1f/%5.1f/%5.2f/%6.0f", rows[i].name.c_str(), round[i].events_per_sec / 1e6,
                  round[i].empty_polls_per_k, round[i].full_pushes_per_k, round[i].mean_depth);
    }
    std::printf("%s\n", same_placement ? "" : "  (placement changed: left out)");
    if (!same_placement) {
      ++skipped;
      continue;
    }
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i].runs.push_back(round[i]);
  }
  std::printf("\n%-8s %6s %10s %10s %10s %12s %12s %11s\n", "row", "runs", "median", "min", "max", "empty/1k",
              "full/1k", "depth");
  for (const row& x : rows) {
    if (x.runs.empty()) continue;
    std::vector<double> rate, empty, full, depth;
    for (const run_figures& f : x.runs) {
      rate.push_back(f.events_per_sec / 1e6);
      empty.push_back(f.empty_polls_per_k);
      full.push_back(f.full_pushes_per_k);
      depth.push_back(f.mean_depth);
    }
    std::printf("%-8s %6zu %6.1f M/s %6.1f M/s %6.1f M/s %12.2f %12.2f %11.0f\n", x.name.c_str(),
                x.runs.size(), median_of(rate), *std::min_element(rate.begin(), rate.end()),
                *std::max_element(rate.begin(), rate.end()), median_of(empty), median_of(full),
                median_of(depth));
  }
  std::printf("(%llu round(s) left out for a placement change; empty/1k, full/1k and depth are medians)\n",
              static_cast<unsigned long long>(skipped));
  return 0;  // exit status 1 is kept for elements out of order
}
