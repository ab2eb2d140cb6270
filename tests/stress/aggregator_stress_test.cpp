// Stress: one aggregator fed by several threads at once, each observing its own streams through a
// stream_metrics, over more provider/model pairs than the aggregator's table holds, so inserts race with
// lookups ([G1]/[G2], checked by TSan) and late pairs land in "other". Once the threads are joined every
// total is exact: per-kind counts, streams started and ended, TTFT samples and tokens. Work scales with
// RILL_STRESS_SCALE (stress_scale.hpp).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "rill/metrics.hpp"
#include "stamped_events.hpp"
#include "stress_scale.hpp"

namespace {

using rill::event;
using rill::event_kind;
using rill::test::at;
using rill::test::kMs;

TEST(AggregatorStress, ThreadsObservingMoreModelsThanTheTableHoldsGiveExactTotals) {
  constexpr int kThreads = 4;
  constexpr std::size_t kPairs = rill::aggregator::kMaxModels + 16;
  const std::uint64_t streams_per_thread = rill::test::scaled(200'000, 400);
  rill::aggregator totals;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t n = 0; n < streams_per_thread; ++n) {
        const std::size_t pair =
            (n * kThreads + static_cast<std::size_t>(t)) % kPairs;  // every thread, every pair
        std::string provider = "p", model = "m";  // appended, not "p" + ...: g++ 12 warns (-Wrestrict) there
        provider += std::to_string(pair % 8);
        model += std::to_string(pair);
        rill::stream_metrics m(&totals);
        const std::uint64_t t0 = 1000 * kMs;
        m.observe(at(event::stream_start(provider, model), t0));
        m.observe(at(event::message_start("msg", model), t0 + 1 * kMs));
        m.observe(at(event::text_delta(0, "a"), t0 + 2 * kMs));
        m.observe(at(event::text_delta(0, "b"), t0 + 3 * kMs));
        m.observe(at(event::usage(rill::test::usage(10, 2)), t0 + 4 * kMs));
        m.observe(at(event::message_stop(rill::stop_reason::end_turn), t0 + 5 * kMs));
        m.finish();
      }
    });
  }
  for (auto& th : threads) th.join();

  const std::uint64_t streams = kThreads * streams_per_thread;
  const auto s = totals.snapshot();
  EXPECT_EQ(s.streams_started, streams);
  EXPECT_EQ(s.streams_ended, streams);
  EXPECT_EQ(s.active_streams, 0u);
  EXPECT_EQ(s.streams_failed, 0u);
  const auto count_of = [&](event_kind k) { return s.events[static_cast<std::size_t>(k)]; };
  EXPECT_EQ(count_of(event_kind::stream_start), streams);
  EXPECT_EQ(count_of(event_kind::message_start), streams);
  EXPECT_EQ(count_of(event_kind::text_delta), 2 * streams);
  EXPECT_EQ(count_of(event_kind::usage), streams);
  EXPECT_EQ(count_of(event_kind::message_stop), streams);
  EXPECT_EQ(s.ttft.count, streams);

  // Exactly kMaxModels pairs got a slot of their own (which ones depends on the race), each with whole
  // streams' tokens; the rest are in "other"; nothing is lost or counted twice.
  std::size_t named = 0;
  bool other_seen = false;
  rill::token_totals sum;
  for (const auto& m : s.models) {
    if (m.provider == "other" && m.model == "other") {
      other_seen = true;
    } else {
      ++named;
    }
    EXPECT_EQ(m.tokens.input % 10, 0u) << m.provider << "/" << m.model;
    EXPECT_EQ(m.tokens.input / 10, m.tokens.output / 2) << m.provider << "/" << m.model;
    sum.input += m.tokens.input;
    sum.output += m.tokens.output;
  }
  EXPECT_EQ(named, rill::aggregator::kMaxModels);
  EXPECT_TRUE(other_seen);
  EXPECT_EQ(sum.input, 10 * streams);
  EXPECT_EQ(sum.output, 2 * streams);
}

}  // namespace
