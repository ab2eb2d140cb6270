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
#include "workload.hpp"

namespace {

using rill_bench::median_of;
constexpr const char* kProgram = "batch_regime_perf";

constexpr std::size_t kCapacity = 65536;
constexpr std::size_t kBatch = 64;
constexpr std::size_t kPool = 1024;  // elements cycle through a pool; element k is pool entry k mod 1024

using rill_bench::kBacklogEmptyPolls;

struct alignas(64) item {
  std::uint64_t index;
  std::uint64_t payload[7];
};

struct run_figures {
  double events_per_sec = 0;
  double producer_ticks_per_batch = 0;  // rdtsc ticks per call that sent a whole batch
  double empty_polls_per_batch = 0;
};

// One timed run (rill_perf::run_pinned_pair). `push(first, n)` sends up to n elements from pool position
// `first` and returns how many it sent; `pop(check)` takes up to one batch, calls check(index) for each
// element in order, returns the count.
template <class Push, class Pop>
run_figures timed_run(std::chrono::milliseconds budget, Push push, Pop pop) {
  std::uint64_t ticks = 0, whole_batches = 0;  // written by the producer, read after the run
  const rill_perf::pinned_pair_result run = rill_perf::run_pinned_pair(
      kProgram, budget, kPool - 1,
      [&](const std::atomic<bool>& stop) {
        std::uint64_t sent = 0;
        while (!stop.load(std::memory_order_relaxed)) {  // a time signal only: it orders no data
          for (int k = 0; k < 16; ++k) {
            std::size_t done = 0;
            while (done < kBatch) {
              const std::uint64_t t0 = rill::clock::tsc_now();
              const std::size_t n = push((sent + done) & (kPool - 1), kBatch - done);
              const std::uint64_t t1 = rill::clock::tsc_now();
              if (n == kBatch) {
                ticks += t1 - t0;
                ++whole_batches;
              }
              if (n == 0) rill::detail::cpu_relax();
              done += n;
            }
            sent += kBatch;
          }
        }
        return sent;
      },
      pop);
  run_figures f;
  f.events_per_sec = static_cast<double>(run.received) / run.seconds;
  f.producer_ticks_per_batch =
      whole_batches != 0 ? static_cast<double>(ticks) / static_cast<double>(whole_batches) : 0;
  f.empty_polls_per_batch =
      static_cast<double>(run.empty_polls) / (static_cast<double>(run.received) / kBatch);
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
  rill_bench::prefault([&] { return q->push(item{}); }, [&] { return q->pop(buffer->items[0]); });
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

using row = rill_perf::measured_row<run_figures>;

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t rounds = 12, run_ms = 250;
  rill_perf::parse_count_flags(kProgram, "batch_regime_perf [--rounds N] [--run-ms MS]", argc, argv,
                               {{"--rounds", &rounds}, {"--run-ms", &run_ms}});
  const std::chrono::milliseconds budget{run_ms};
  std::vector<row> rows;
  rows.emplace_back("rill copy_out", [](auto b) { return rill_run(b, true); });
  rows.emplace_back("rill in_place", [](auto b) { return rill_run(b, false); });
  rows.emplace_back("boost range", [](auto b) { return boost_run(b, true); });
  rows.emplace_back("boost in_place", [](auto b) { return boost_run(b, false); });

  const double ns_per_tick = rill::clock::tsc_calibration().ns_per_tick;
  std::printf("batch_regime_perf: %llu rounds, %lld ms a run, 64 per call, capacity %zu, cpu0 -> cpu1\n",
              static_cast<unsigned long long>(rounds), static_cast<long long>(budget.count()), kCapacity);
  std::printf("per run: M events/s / producer ns per whole batch / consumer empty polls per batch\n");
  const std::uint64_t skipped = rill_perf::run_rows(rows, rounds, budget, [&](const run_figures& f) {
    std::printf("%3.0f/%4.0f/%4.1f", f.events_per_sec / 1e6, f.producer_ticks_per_batch * ns_per_tick,
                f.empty_polls_per_batch);
  });
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
