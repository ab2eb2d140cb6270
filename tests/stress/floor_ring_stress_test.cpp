// Stress: rill-bench's floor_ring (tools/bench/workload.hpp), the bare ring that spsc_throughput and
// oneway_regime_perf run as the floor under rill's row. One producer and one consumer thread; small rings so
// the ring wraps and fills thousands of times. The consumer checks order and every carried byte, and the
// counts must match: a benchmark floor that lost or tore elements would flatter itself.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "stress_scale.hpp"
#include "workload.hpp"

namespace {

using rill_bench::floor_ring;

// 64 bytes, of which the ring carries the first 56: a position and six words derived from it.
struct alignas(64) element {
  std::uint64_t position = 0;
  std::uint64_t words[6] = {};
  std::uint64_t not_carried = 0;
};
static_assert(sizeof(element) == 64);

std::uint64_t word(std::uint64_t position, int k) {
  return rill::test::mix(position * 8 + static_cast<std::uint64_t>(k));
}

struct tally {
  std::uint64_t received = 0;
  std::uint64_t order_errors = 0;
  std::uint64_t content_errors = 0;
  std::uint64_t untouched_errors = 0;  // try_pop wrote past the 56 bytes it carries
  std::uint64_t depth_after = 0;
};

// A broken ring must fail the test, not hang it: the producer gives up at a deadline, and the consumer stops
// at the first empty pop after the producer is done.
constexpr std::chrono::seconds kGiveUpAfter{120};

tally run_pair(std::size_t capacity, rill::slot_layout layout, std::uint64_t count) {
  floor_ring<element> ring(capacity, layout);
  tally t;
  std::atomic<bool> producer_done{false};
  const auto deadline = std::chrono::steady_clock::now() + kGiveUpAfter;
  std::thread producer([&] {
    rill::test::pin_to_cpu(0);
    for (std::uint64_t i = 0; i < count; ++i) {
      element e;
      e.position = i;
      for (int k = 0; k < 6; ++k) e.words[k] = word(i, k);
      e.not_carried = ~i;
      while (!ring.try_push(e)) {
        if (std::chrono::steady_clock::now() > deadline) break;  // the count check reports it
        std::this_thread::yield();                               // more threads than cores must still finish
      }
    }
    producer_done.store(true, std::memory_order_release);  // after the last push; pairs with the consumer
  });
  std::thread consumer([&] {
    rill::test::pin_to_cpu(1);
    element e;
    while (t.received < count) {
      // Read before the pop: once every push happened before it, an empty pop means an element was lost.
      const bool done = producer_done.load(std::memory_order_acquire);
      if (!ring.try_pop(e)) {
        if (done) break;
        std::this_thread::yield();
        continue;
      }
      if (e.position != t.received) ++t.order_errors;
      if (e.not_carried != 0) ++t.untouched_errors;
      for (int k = 0; k < 6; ++k) {
        if (e.words[k] != word(e.position, k)) ++t.content_errors;
      }
      ++t.received;
    }
  });
  producer.join();
  consumer.join();
  t.depth_after = ring.depth();
  return t;
}

TEST(FloorRingStress, EveryElementArrivesOnceInOrderWithItsBytes) {
  for (const rill::slot_layout layout : {rill::slot_layout::packed, rill::slot_layout::padded}) {
    for (std::size_t capacity : {std::size_t{2}, std::size_t{64}, std::size_t{4096}}) {
      SCOPED_TRACE(std::string(rill::to_string(layout)) + " " + std::to_string(capacity));
      const std::uint64_t count = rill::test::scaled(1'000'000, 20'000);
      const tally t = run_pair(capacity, layout, count);
      EXPECT_EQ(t.received, count);
      EXPECT_EQ(t.order_errors, 0u);
      EXPECT_EQ(t.content_errors, 0u);
      EXPECT_EQ(t.untouched_errors, 0u);
      EXPECT_EQ(t.depth_after, 0u);
    }
  }
}

}  // namespace
