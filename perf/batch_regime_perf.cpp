// batch_regime_perf: why spsc_batch_throughput moves two- to three-fold between runs of one queue.
//
//   batch_regime_perf [--rounds N] [--run-ms MS]
//
// The spsc_batch_throughput workload (64-byte elements, 64 per call, capacity 65536, producer on cpu0,
// consumer on cpu1), instrumented: the producer reads rdtsc around every call that sends a whole batch,
// and the consumer counts the polls that found the ring empty. Four rows, interleaved round by round:
//   rill copy_out      try_send_batch + try_receive_batch (copies the batch out, then frees the slots)
//   rill in_place      try_send_batch + try_drain (hands each event over in its slot)
//   boost range        boost::lockfree::spsc_queue push(ptr, n) + pop(ptr, n) (copies out)
//   boost in_place     push(ptr, n) + consume_all
// Each run lands in one of two regimes. Caught up: the consumer keeps pace and finds the ring empty between
// batches, so it reads every line while the line still sits in the producer's cache. Backlog: the consumer
// fell behind by more than the producer's L2 holds and reads lines the producer has already evicted to the
// shared L3. The table gives each row's rate and producer cost per batch in each regime, and how many of its
// runs landed in the backlog. Rounds whose core-to-core probes differ by more than 1.5x are left out.
#include <algorithm>
#include <atomic>
#include <boost/lockfree/spsc_queue.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "perf_support.hpp"
#include "rill/clock.hpp"
#include "rill/detail/layout.hpp"
#include "rill/stream.hpp"

namespace {

using rill_bench::median_of;
constexpr const char* kProgram = "batch_regime_perf";

constexpr std::size_t kCapacity = 65536;
constexpr std::size_t kBatch = 64;
constexpr std::size_t kPool = 1024;  // elements cycle through a pool; element k is pool entry k mod 1024

// A run below this many empty polls per batch is in the backlog regime (the consumer almost never waits).
constexpr double kBacklogEmptyPolls = 1.0;

struct alignas(64) item {
  std::uint64_t index;
  std::uint64_t payload[7];
};

struct run_figures {
  double events_per_sec = 0;
  double producer_ticks_per_batch = 0;  // rdtsc ticks per call that sent a whole batch
  double empty_polls_per_batch = 0;
};

// One timed run. `push(first, n)` sends up to n elements from pool position `first` and returns how many it
// sent; `pop(check)` takes up to one batch, calls check(index) for each element in order, returns the count.
template <class Push, class Pop>
run_figures timed_run(std::chrono::milliseconds budget, Push push, Pop pop) {
  std::atomic<bool> stop{false}, go{false};
  constexpr std::uint64_t kNotDone = ~std::uint64_t{0};
  std::atomic<std::uint64_t> produced{kNotDone};
  std::uint64_t received = 0, empty_polls = 0, wrong = 0, ticks = 0, whole_batches = 0;
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
      if (pop(check) != 0) continue;
      ++empty;
      // Pairs with the producer's release store, after its last push: an empty pop after it means drained
      // (the count is compared below, so a lost element fails the run instead of hanging it).
      if (produced.load(std::memory_order_acquire) != kNotDone && pop(check) == 0) break;
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
    std::uint64_t sent = 0, spent = 0, whole = 0;
    while (!stop.load(std::memory_order_relaxed)) {  // a time signal only: it orders no data
      for (int k = 0; k < 16; ++k) {
        std::size_t done = 0;
        while (done < kBatch) {
          const std::uint64_t t0 = rill::clock::tsc_now();
          const std::size_t n = push((sent + done) & (kPool - 1), kBatch - done);
          const std::uint64_t t1 = rill::clock::tsc_now();
          if (n == kBatch) {
            spent += t1 - t0;
            ++whole;
          }
          if (n == 0) rill::detail::cpu_relax();
          done += n;
        }
        sent += kBatch;
      }
    }
    ticks = spent;
    whole_batches = whole;
    produced.store(sent, std::memory_order_release);  // after the last push; pairs with the consumer
  });
  go.store(true, std::memory_order_release);  // both threads start together; pairs with their acquires
  std::this_thread::sleep_for(budget);
  stop.store(true, std::memory_order_relaxed);  // a time signal; the results travel through produced and join
  producer.join();
  consumer.join();
  const std::uint64_t sent = produced.load(std::memory_order_relaxed);  // the joins ordered it
  if (wrong != 0 || received != sent) {
    std::fprintf(stderr, "batch_regime_perf: %llu elements out of order, %llu of %llu received\n",
                 static_cast<unsigned long long>(wrong), static_cast<unsigned long long>(received),
                 static_cast<unsigned long long>(sent));
    std::exit(1);
  }
  run_figures f;
  f.events_per_sec = static_cast<double>(received) / std::chrono::duration<double>(end - start).count();
  f.producer_ticks_per_batch =
      whole_batches != 0 ? static_cast<double>(ticks) / static_cast<double>(whole_batches) : 0;
  f.empty_polls_per_batch = static_cast<double>(empty_polls) / (static_cast<double>(received) / kBatch);
  return f;
}

const std::vector<rill::event>& rill_pool() {
  static const std::vector<rill::event> pool = [] {
    std::vector<rill::event> v;
    for (std::size_t i = 0; i < kPool + kBatch; ++i) {
      v.push_back(rill::event::text_delta(static_cast<std::uint16_t>(i & (kPool - 1)), "token"));
    }
    return v;
  }();
  return pool;
}

const std::vector<item>& item_pool() {
  static const std::vector<item> pool = [] {
    std::vector<item> v(kPool + kBatch);
    for (std::size_t i = 0; i < v.size(); ++i) v[i].index = i & (kPool - 1);
    return v;
  }();
  return pool;
}

rill::stream_options ring_options() {
  rill::stream_options o;
  o.capacity = kCapacity;
  o.allocate_on_first_send = false;
  return o;
}

// The pools hold kBatch entries past kPool, so a batch starting at any pool position reads contiguously.
run_figures rill_run(std::chrono::milliseconds budget, bool copy_out) {
  auto s = std::make_unique<rill::stream>(ring_options());
  rill::received_batch batch(kBatch);
  const auto& pool = rill_pool();
  auto push = [&](std::uint64_t first, std::size_t n) {
    return s->try_send_batch(std::span<const rill::event>(&pool[first], n));
  };
  if (copy_out) {
    return timed_run(budget, push, [&](auto& check) -> std::size_t {
      if (s->try_receive_batch(batch) != rill::status::ok) return 0;
      for (const rill::event& e : batch) check(e.index());
      return batch.size();
    });
  }
  return timed_run(budget, push, [&](auto& check) {
    return s->try_drain([&](const rill::event& e, bool) { check(e.index()); }, kBatch);
  });
}

run_figures boost_run(std::chrono::milliseconds budget, bool copy_out) {
  auto q = std::make_unique<boost::lockfree::spsc_queue<item>>(kCapacity);
  struct alignas(rill::detail::kFalseSharingRange) out_buffer {
    item items[kBatch];
  };
  auto buffer = std::make_unique<out_buffer>();  // consumer-written: off the producer's lines
  const auto& pool = item_pool();
  auto push = [&](std::uint64_t first, std::size_t n) { return q->push(&pool[first], n); };
  if (copy_out) {
    return timed_run(budget, push, [&](auto& check) {
      const std::size_t n = q->pop(buffer->items, kBatch);
      for (std::size_t i = 0; i < n; ++i) check(buffer->items[i].index);
      return n;
    });
  }
  return timed_run(budget, push,
                   [&](auto& check) { return q->consume_all([&](const item& e) { check(e.index); }); });
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
  std::uint64_t rounds = 12;
  std::chrono::milliseconds budget{250};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--rounds" && i + 1 < argc) {
      rounds = rill_perf::parse_count(kProgram, "--rounds", argv[++i]);
    } else if (arg == "--run-ms" && i + 1 < argc) {
      budget = std::chrono::milliseconds(rill_perf::parse_count(kProgram, "--run-ms", argv[++i]));
    } else {
      std::fprintf(stderr, "usage: batch_regime_perf [--rounds N] [--run-ms MS]\n");
      return 2;
    }
  }
  std::vector<row> rows;
  rows.emplace_back("rill copy_out", [](auto b) { return rill_run(b, true); });
  rows.emplace_back("rill in_place", [](auto b) { return rill_run(b, false); });
  rows.emplace_back("boost range", [](auto b) { return boost_run(b, true); });
  rows.emplace_back("boost in_place", [](auto b) { return boost_run(b, false); });

  const double ns_per_tick = rill::clock::tsc_calibration().ns_per_tick;
  std::printf("batch_regime_perf: %llu rounds, %lld ms a run, 64 per call, capacity %zu, cpu0 -> cpu1\n",
              static_cast<unsigned long long>(rounds), static_cast<long long>(budget.count()), kCapacity);
  std::printf("per run: M events/s / producer ns per whole batch / consumer empty polls per batch\n");
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
      std::printf(" | %s %3.0f/%4.0f/%4.1f", rows[i].name.c_str(), round[i].events_per_sec / 1e6,
                  round[i].producer_ticks_per_batch * ns_per_tick, round[i].empty_polls_per_batch);
    }
    std::printf("%s\n", same_placement ? "" : "  (placement changed: left out)");
    if (!same_placement) {
      ++skipped;
      continue;
    }
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i].runs.push_back(round[i]);
  }
  std::printf("\n%-16s %10s %26s %26s\n", "", "backlog", "caught up (M/s, producer",
              "backlog (M/s, producer");
  std::printf("%-16s %10s %26s %26s\n", "row", "runs", "ns per batch; medians)", "ns per batch; medians)");
  for (const row& x : rows) {
    std::vector<double> rate[2], cost[2];
    for (const run_figures& f : x.runs) {
      const int backlog = f.empty_polls_per_batch < kBacklogEmptyPolls ? 1 : 0;
      rate[backlog].push_back(f.events_per_sec / 1e6);
      cost[backlog].push_back(f.producer_ticks_per_batch * ns_per_tick);
    }
    auto cell = [&](int k) {
      char buf[64];
      if (rate[k].empty()) return std::string("-");
      std::snprintf(buf, sizeof buf, "%.0f M/s, %.0f ns", median_of(rate[k]), median_of(cost[k]));
      return std::string(buf);
    };
    std::printf("%-16s %6zu/%-3zu %26s %26s\n", x.name.c_str(), rate[1].size(), x.runs.size(),
                cell(0).c_str(), cell(1).c_str());
  }
  std::printf("(%llu round(s) left out for a placement change; backlog = under %.0f empty poll per batch)\n",
              static_cast<unsigned long long>(skipped), kBacklogEmptyPolls);
  return 0;  // exit status 1 is kept for elements out of order
}
