// rill/manager.hpp with manager_options::track_metrics: each managed stream carries a stream_metrics that its
// consumer feeds, and info() / list_info() show a snapshot of it.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "rill/manager.hpp"
#include "rill/metrics.hpp"
#include "stamped_events.hpp"

namespace {

using rill::test::at;
using rill::test::kMs;
using rill::test::small_stream;
using rill::test::usage;
using rill::event_kind;
using rill::status;
using rill::stream_manager;
using rill::stream_ref;

rill::manager_options metrics_manager(rill::aggregator* totals = nullptr) {
  rill::manager_options o;
  o.shards = 16;
  o.stream_defaults.capacity = 64;
  // The stream keeps the producer's stamps, so the test knows every event's time exactly.
  o.stream_defaults.stamping = rill::clock_kind::none;
  o.track_metrics = true;
  o.metrics_totals = totals;
  return o;
}

void drain_reclamation(stream_manager& m) {
  for (int i = 0; i < 4; ++i) m.reclaim();  // three advances cover the two-epoch grace period
}

// Sends `events`, then takes every buffered event and observes it: what a consumer of a managed stream does.
void send_and_consume(stream_ref& ref, const std::vector<rill::event>& events) {
  for (const auto& e : events) ASSERT_EQ(ref->try_send(e), status::ok);
  rill::stream_metrics* m = ref.metrics();
  ASSERT_NE(m, nullptr);
  rill::received r;
  while (ref->try_receive(r) == status::ok) m->observe(*r);
}

void expect_small_stream_metrics(const rill::stream_metrics_snapshot& s) {
  EXPECT_EQ(s.ttft_ns, static_cast<std::int64_t>(250 * kMs));
  EXPECT_EQ(s.duration_ns, 1251 * kMs);
  EXPECT_EQ(s.chunks, 2u);
  EXPECT_EQ(s.total_events, 7u);
  EXPECT_EQ(s.events[static_cast<std::size_t>(event_kind::stream_start)], 1u);
  EXPECT_EQ(s.events[static_cast<std::size_t>(event_kind::message_start)], 1u);
  EXPECT_EQ(s.events[static_cast<std::size_t>(event_kind::text_delta)], 2u);
  EXPECT_EQ(s.events[static_cast<std::size_t>(event_kind::usage)], 2u);
  EXPECT_EQ(s.events[static_cast<std::size_t>(event_kind::message_stop)], 1u);
  EXPECT_EQ(s.tokens.input, 100u);
  EXPECT_EQ(s.tokens.output, 50u);
  EXPECT_DOUBLE_EQ(s.output_tokens_per_sec, 50.0);  // 50 tokens from t0 + 251 ms to t0 + 1251 ms
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(s.gaps.count, 6u);  // 1, 250, 49, 151, 800 and 0 ms
  EXPECT_EQ(s.gaps.sum_ns, 1251 * kMs);
}

TEST(ManagerMetrics, OffByDefaultNoMetricsAnywhere) {
  stream_manager m;
  EXPECT_FALSE(m.tracks_metrics());
  EXPECT_EQ(m.metrics_totals(), nullptr);
  stream_ref ref;
  ASSERT_EQ(m.create("a", ref), status::ok);
  EXPECT_EQ(ref.metrics(), nullptr);
  EXPECT_EQ(stream_ref().metrics(), nullptr);
  ASSERT_EQ(ref->try_send(rill::event::text_delta(0, "x")), status::ok);
  rill::stream_info info;
  ASSERT_EQ(m.info("a", info), status::ok);
  EXPECT_EQ(info.sent, 1u);
  EXPECT_EQ(info.metrics, nullptr);
  const auto all = m.list_info();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].metrics, nullptr);
}

TEST(ManagerMetrics, AggregatorWithoutTrackMetricsIsRejected) {
  rill::aggregator totals;
  rill::manager_options o;
  o.metrics_totals = &totals;
  EXPECT_THROW(stream_manager{o}, std::invalid_argument);
}

TEST(ManagerMetrics, InfoShowsExactMetricsOfTheObservedEvents) {
  stream_manager m(metrics_manager());
  EXPECT_TRUE(m.tracks_metrics());
  stream_ref ref;
  ASSERT_EQ(m.create("req-1", ref), status::ok);
  ASSERT_NE(ref.metrics(), nullptr);

  rill::stream_info info;
  ASSERT_EQ(m.info("req-1", info), status::ok);
  ASSERT_NE(info.metrics, nullptr);  // tracked from creation: an empty snapshot before any event
  EXPECT_EQ(info.metrics->total_events, 0u);
  EXPECT_EQ(info.metrics->ttft_ns, -1);

  send_and_consume(ref, small_stream());
  ASSERT_EQ(m.info("req-1", info), status::ok);
  EXPECT_EQ(info.sent, 7u);
  EXPECT_EQ(info.received, 7u);
  ASSERT_NE(info.metrics, nullptr);
  expect_small_stream_metrics(*info.metrics);

  // list_info() carries the same snapshot; a second stream nobody consumed shows an empty one.
  stream_ref other;
  ASSERT_EQ(m.create("req-2", other), status::ok);
  const auto all = m.list_info();
  ASSERT_EQ(all.size(), 2u);
  for (const auto& i : all) {
    ASSERT_NE(i.metrics, nullptr) << i.id;
    if (i.id == "req-1") {
      expect_small_stream_metrics(*i.metrics);
    } else {
      EXPECT_EQ(i.metrics->total_events, 0u);
    }
  }
}

TEST(ManagerMetrics, EveryCreatePathGivesItsOwnMetrics) {
  stream_manager m(metrics_manager());
  stream_ref a, b, c, again;
  bool created = false;
  ASSERT_EQ(m.create("a", a), status::ok);
  ASSERT_EQ(m.get_or_create("b", b, &created), status::ok);
  EXPECT_TRUE(created);
  rill::stream_options custom;
  custom.capacity = 8;
  ASSERT_EQ(m.create("c", custom, c), status::ok);
  ASSERT_EQ(m.get_or_create("a", again, &created), status::ok);
  EXPECT_FALSE(created);
  ASSERT_NE(a.metrics(), nullptr);
  ASSERT_NE(b.metrics(), nullptr);
  ASSERT_NE(c.metrics(), nullptr);
  EXPECT_NE(a.metrics(), b.metrics());
  EXPECT_EQ(again.metrics(), a.metrics());  // the same stream, the same metrics
  stream_ref by_handle;
  ASSERT_EQ(m.get(c.handle(), by_handle), status::ok);
  EXPECT_EQ(by_handle.metrics(), c.metrics());
}

TEST(ManagerMetrics, MetricsAreAlignedForEveryIdLength) {
  stream_manager m(metrics_manager());
  for (std::size_t len = 1; len <= stream_manager::kMaxIdBytes; ++len) {
    stream_ref ref;
    ASSERT_EQ(m.create(std::string(len, 'x'), ref), status::ok);
    rill::stream_metrics* metrics = ref.metrics();
    ASSERT_NE(metrics, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(metrics) % alignof(rill::stream_metrics), 0u) << len;
    // The metrics sit after the id: writing them must not touch it.
    metrics->observe(rill::event::keep_alive());
    EXPECT_EQ(ref.id(), std::string(len, 'x'));
    EXPECT_EQ(metrics->snapshot().total_events, 1u);
  }
}

TEST(ManagerMetrics, AReplacedStreamStartsWithFreshMetrics) {
  stream_manager m(metrics_manager());
  stream_ref old_ref;
  ASSERT_EQ(m.create("a", old_ref), status::ok);
  send_and_consume(old_ref, small_stream());
  old_ref->close();  // closed through its ref: still indexed until replaced
  stream_ref fresh;
  ASSERT_EQ(m.create("a", fresh), status::ok);
  ASSERT_NE(fresh.metrics(), old_ref.metrics());
  rill::stream_info info;
  ASSERT_EQ(m.info("a", info), status::ok);
  ASSERT_NE(info.metrics, nullptr);
  EXPECT_EQ(info.metrics->total_events, 0u);
  // The replaced stream's metrics live on with its ref.
  expect_small_stream_metrics(old_ref.metrics()->snapshot());
}

TEST(ManagerMetrics, SnapshotsAndRefsOutliveRemovalAndTheManager) {
  std::shared_ptr<const rill::stream_metrics_snapshot> kept;
  stream_ref ref;
  {
    stream_manager m(metrics_manager());
    ASSERT_EQ(m.create("a", ref), status::ok);
    send_and_consume(ref, small_stream());
    rill::stream_info info;
    ASSERT_EQ(m.info("a", info), status::ok);
    kept = info.metrics;
    ASSERT_EQ(m.close("a"), status::ok);
    EXPECT_EQ(m.info("a", info), status::not_found);
    EXPECT_TRUE(m.list_info().empty());
    drain_reclamation(m);  // the index's reference is gone; `ref` holds the stream
    ASSERT_NE(ref.metrics(), nullptr);
    ref.metrics()->observe(at(rill::event::keep_alive(), 3000 * kMs));  // the consumer may still observe
  }
  ASSERT_NE(kept, nullptr);
  expect_small_stream_metrics(*kept);  // a snapshot is a copy: later events do not change it
  ASSERT_NE(ref.metrics(), nullptr);   // the manager is gone; the ref keeps stream and metrics alive
  EXPECT_EQ(ref.metrics()->snapshot().total_events, 8u);
}

TEST(ManagerMetrics, ForwardsToTheAggregator) {
  rill::aggregator totals;
  {
    stream_manager m(metrics_manager(&totals));
    EXPECT_EQ(m.metrics_totals(), &totals);
    stream_ref a, b, dup, found;
    ASSERT_EQ(m.create("a", a), status::ok);
    ASSERT_EQ(m.create("b", b), status::ok);
    // Creates that do not publish a stream count nothing.
    EXPECT_EQ(m.create("a", dup), status::already_exists);
    bool created = true;
    ASSERT_EQ(m.get_or_create("b", found, &created), status::ok);
    EXPECT_FALSE(created);
    auto t = totals.snapshot();
    EXPECT_EQ(t.streams_started, 2u);
    EXPECT_EQ(t.active_streams, 2u);

    send_and_consume(a, small_stream());
    a.metrics()->finish();  // the consumer saw the last event
    std::vector<rill::event> failing = {at(rill::event::stream_start("anthropic", "claude-x"), 5 * kMs),
                                        at(rill::event::message_start("msg_2", "claude-x"), 10 * kMs),
                                        at(rill::event::error("overloaded", "busy"), 20 * kMs)};
    send_and_consume(b, failing);
    b.metrics()->finish();
    t = totals.snapshot();
    EXPECT_EQ(t.streams_ended, 2u);
    EXPECT_EQ(t.streams_failed, 1u);
    EXPECT_EQ(t.active_streams, 0u);
    EXPECT_DOUBLE_EQ(t.error_rate, 0.5);
    EXPECT_EQ(t.events[static_cast<std::size_t>(event_kind::message_start)], 2u);
    EXPECT_EQ(t.events[static_cast<std::size_t>(event_kind::text_delta)], 2u);
    EXPECT_EQ(t.events[static_cast<std::size_t>(event_kind::error)], 1u);
    EXPECT_EQ(t.ttft.count, 1u);  // only stream "a" had a first token
    ASSERT_EQ(t.models.size(), 1u);
    EXPECT_EQ(t.models[0].provider, "anthropic");
    EXPECT_EQ(t.models[0].model, "claude-x");
    EXPECT_EQ(t.models[0].tokens.input, 100u);
    EXPECT_EQ(t.models[0].tokens.output, 50u);

    // A stream its consumer never finished counts as ended when its last reference goes: here, removal,
    // the ref's release and the index reference's reclamation.
    stream_ref c;
    ASSERT_EQ(m.create("c", c), status::ok);
    EXPECT_EQ(totals.snapshot().active_streams, 1u);
    ASSERT_EQ(m.close("c"), status::ok);
    c.reset();
    drain_reclamation(m);
    t = totals.snapshot();
    EXPECT_EQ(t.streams_started, 3u);
    EXPECT_EQ(t.streams_ended, 3u);

    // Streams still managed when the manager goes end with it (or with their last ref).
    stream_ref d;
    ASSERT_EQ(m.create("d", d), status::ok);
  }
  const auto t = totals.snapshot();
  EXPECT_EQ(t.streams_started, 4u);
  EXPECT_EQ(t.streams_ended, 4u);
  EXPECT_EQ(t.active_streams, 0u);
}

}  // namespace
