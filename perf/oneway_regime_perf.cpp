// oneway_regime_perf: why spsc_throughput moves two- to three-fold between runs of one queue.
//
//   oneway_regime_perf [--rounds N] [--run-ms MS] [--capacity N] [--work N]
//
// The spsc_throughput workload (64-byte elements, one per call, producer on cpu0, consumer on cpu1),
// instrumented: the consumer counts the polls that found the ring empty, the producer counts the pushes
// that found it full and samples the ring's depth every 4096 elements. The rows, interleaved round by round,
// each on a queue built for the run:
//   rill      rill::stream (SPSC) try_send + try_receive, packed slots (the default)
//   rill_pad  the same with slot_layout::padded (each slot on its own 128-byte line pair)
//   rill_rr1  rill with stream_options::resume_room 1: a refused producer takes each slot as soon as it is
//             freed (the default waits for capacity / 16 of them)
//   boost     boost::lockfree::spsc_queue push + pop
//   rwq       moodycamel::ReaderWriterQueue try_enqueue + try_dequeue (blocks of slots; it never allocates
//             after construction here)
//   bare      rill_bench::floor_ring: the ring rill's SPSC stream is built on (slots published by their own
//             sequence words) and nothing else, packed: the floor under rill's row
//   bare_pad  the same, padded: the floor under rill_pad
// Per run it prints the rate, empty polls and full pushes per 1000 elements and the mean depth; per row, the
// median, minimum and maximum rate over the rounds kept. Rounds whose core-to-core probes differ by more
// than 1.5x are left out. `--work N` makes the consumer do N dependent multiply-adds per element, so that
// it is the slower side and every queue runs full. docs/benchmarking.md ("One-way regimes", "Resume room")
// has what it showed.
#include <readerwriterqueue/readerwriterqueue.h>

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
#include "workload.hpp"

namespace {

using rill_bench::median_of;
constexpr const char* kProgram = "oneway_regime_perf";

constexpr std::size_t kPool = 1024;  // element k is pool entry k mod 1024
constexpr std::uint64_t kDepthSampleEvery = 4096;

std::uint64_t g_consumer_work = 0;  // --work; set before any run

// The consumer's work per element (--work): a chain of dependent multiply-adds, carried from element to
// element in a thread_local (never a shared line: a static the consumer stored to on every element could
// share a line with the pools the producer reads). The empty asm keeps the compiler from folding the chain.
thread_local std::uint64_t t_work_chain = 1;
void consumer_work(std::uint64_t index) {
  std::uint64_t chain = t_work_chain;
  for (std::uint64_t i = 0; i < g_consumer_work; ++i) {
    chain = chain * 6364136223846793005ull + index;
    asm volatile("" : "+r"(chain));
  }
  t_work_chain = chain;
}

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

// One timed run (rill_perf::run_pinned_pair). `push(k)` sends pool entry k mod kPool and says whether there
// was room; `pop(check)` takes at most one element and calls check(index) for it, returning whether it took
// one; `depth()` is the producer's view of how many elements are in the ring.
template <class Push, class Pop, class Depth>
run_figures timed_run(std::chrono::milliseconds budget, Push push, Pop pop, Depth depth) {
  std::uint64_t full_pushes = 0, depth_samples = 0;  // written by the producer, read after the run
  double depth_sum = 0;
  const rill_perf::pinned_pair_result run = rill_perf::run_pinned_pair(
      kProgram, budget, kPool - 1,
      [&](const std::atomic<bool>& stop) {
        std::uint64_t sent = 0;
        while (!stop.load(std::memory_order_relaxed)) {  // a time signal only: it orders no data
          depth_sum += static_cast<double>(depth());
          ++depth_samples;
          for (std::uint64_t k = 0; k < kDepthSampleEvery; ++k, ++sent) {
            while (!push(sent)) {
              ++full_pushes;
              rill::detail::cpu_relax();
            }
          }
        }
        return sent;
      },
      [&](auto& check) -> std::size_t {
        auto check_and_work = [&](std::uint64_t index) {
          check(index);
          if (g_consumer_work != 0) consumer_work(index);
        };
        return pop(check_and_work) ? 1 : 0;
      });
  const double thousands = static_cast<double>(run.received) / 1000.0;
  run_figures f;
  f.events_per_sec = static_cast<double>(run.received) / run.seconds;
  f.empty_polls_per_k = static_cast<double>(run.empty_polls) / thousands;
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

run_figures rill_run(std::chrono::milliseconds budget, std::size_t capacity, rill::slot_layout layout,
                     std::size_t resume_room = 0) {
  rill::stream_options o;
  o.capacity = capacity;
  o.layout = layout;
  o.resume_room = resume_room;
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

// One timed run of a queue of `item`s; `push(e)`, `pop(e)` and `depth()` call the queue.
template <class Push, class Pop, class Depth>
run_figures item_queue_run(std::chrono::milliseconds budget, Push push, Pop pop, Depth depth) {
  struct alignas(rill::detail::kFalseSharingRange) consumer_slot {
    item e;
  };
  auto slot = std::make_unique<consumer_slot>();  // consumer-written: off the producer's lines
  const auto& pool = item_pool();
  return timed_run(
      budget, [&](std::uint64_t k) { return push(pool[k & (kPool - 1)]); },
      [&](auto& check) {
        if (!pop(slot->e)) return false;
        check(slot->e.index);
        return true;
      },
      depth);
}

run_figures boost_run(std::chrono::milliseconds budget, std::size_t capacity) {
  auto q = std::make_unique<boost::lockfree::spsc_queue<item>>(capacity);
  item scratch{};
  rill_bench::prefault([&] { return q->push(scratch); }, [&] { return q->pop(scratch); });
  return item_queue_run(
      budget, [&](const item& e) { return q->push(e); }, [&](item& e) { return q->pop(e); },
      [&] { return capacity - q->write_available(); });
}

run_figures rwq_run(std::chrono::milliseconds budget, std::size_t capacity) {
  auto q = std::make_unique<moodycamel::ReaderWriterQueue<item>>(capacity);
  item scratch{};
  rill_bench::prefault([&] { return q->try_enqueue(scratch); }, [&] { return q->try_dequeue(scratch); });
  return item_queue_run(
      budget, [&](const item& e) { return q->try_enqueue(e); }, [&](item& e) { return q->try_dequeue(e); },
      [&] { return q->size_approx(); });
}

run_figures bare_run(std::chrono::milliseconds budget, std::size_t capacity, rill::slot_layout layout) {
  auto q = std::make_unique<rill_bench::floor_ring<item>>(capacity, layout);
  return item_queue_run(
      budget, [&](const item& e) { return q->try_push(e); }, [&](item& e) { return q->try_pop(e); },
      [&] { return q->depth(); });
}

using row = rill_perf::measured_row<run_figures>;

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t rounds = 10, run_ms = 250;
  std::uint64_t capacity = 65536;  // rill-bench's spsc_throughput capacity
  rill_perf::parse_count_flags(
      kProgram, "oneway_regime_perf [--rounds N] [--run-ms MS] [--capacity N] [--work N]", argc, argv,
      {{"--rounds", &rounds},
       {"--run-ms", &run_ms},
       {"--capacity", &capacity},
       {"--work", &g_consumer_work}});
  const std::chrono::milliseconds budget{run_ms};
  if ((capacity & (capacity - 1)) != 0 || capacity < 2 || capacity > (std::size_t{1} << 24)) {
    std::fprintf(stderr, "%s: --capacity must be a power of two from 2 to 2^24\n", kProgram);
    return 2;
  }
  std::vector<row> rows;
  using rill::slot_layout;
  rows.emplace_back("rill", [capacity](auto b) { return rill_run(b, capacity, slot_layout::packed); });
  rows.emplace_back("rill_pad", [capacity](auto b) { return rill_run(b, capacity, slot_layout::padded); });
  rows.emplace_back("rill_rr1", [capacity](auto b) { return rill_run(b, capacity, slot_layout::packed, 1); });
  rows.emplace_back("boost", [capacity](auto b) { return boost_run(b, capacity); });
  rows.emplace_back("rwq", [capacity](auto b) { return rwq_run(b, capacity); });
  rows.emplace_back("bare", [capacity](auto b) { return bare_run(b, capacity, slot_layout::packed); });
  rows.emplace_back("bare_pad", [capacity](auto b) { return bare_run(b, capacity, slot_layout::padded); });

  std::printf(
      "oneway_regime_perf: %llu rounds, %lld ms a run, one per call, capacity %zu, consumer work %llu, "
      "cpu0 -> cpu1\n",
      static_cast<unsigned long long>(rounds), static_cast<long long>(budget.count()), capacity,
      static_cast<unsigned long long>(g_consumer_work));
  std::printf("per run: M events/s / empty polls per 1k / full pushes per 1k / mean depth\n");
  const std::uint64_t skipped = rill_perf::run_rows(rows, rounds, budget, [&](const run_figures& f) {
    std::printf("%5.1f/%5.1f/%5.2f/%6.0f", f.events_per_sec / 1e6, f.empty_polls_per_k, f.full_pushes_per_k,
                f.mean_depth);
  });
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
