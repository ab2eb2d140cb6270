// Stress: per-stream metrics of a stream_manager (track_metrics) while consumers observe, another thread
// takes info() / list_info() snapshots, and a third creates and closes other metric-carrying streams.
// Work scales with RILL_STRESS_SCALE (stress_scale.hpp). TSan checks that snapshots read the metrics only
// through their atomics; ASan that a snapshot never touches a removed stream's freed metrics.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "rill/manager.hpp"
#include "rill/metrics.hpp"
#include "scope_exit.hpp"
#include "stamped_events.hpp"
#include "stream_ids.hpp"
#include "stress_scale.hpp"

namespace {

using rill::test::at;
using rill::test::kMs;
using rill::test::numbered;
using rill::event_kind;
using rill::status;
using rill::stream_manager;
using rill::stream_ref;

TEST(ManagerMetricsStress, SnapshotsWhileConsumersObserveAndStreamsChurn) {
  rill::aggregator totals;
  constexpr std::size_t kStreams = 8;
  const std::uint64_t deltas = rill::test::scaled(100'000, 2000);  // text deltas per stream
  std::uint64_t churn_created = 0;
  std::uint64_t snapshots_taken = 0;
  {
    rill::manager_options options;
    options.shards = 4;  // few shards: info, list_info and the churn writer share locks
    options.stream_defaults.capacity = 64;
    options.stream_defaults.stamping = rill::clock_kind::none;  // the producer's stamps reach the consumer
    options.track_metrics = true;
    options.metrics_totals = &totals;
    stream_manager m(options);

    std::vector<stream_ref> producers(kStreams);
    for (std::size_t i = 0; i < kStreams; ++i) ASSERT_EQ(m.create(numbered("s", i), producers[i]), status::ok);

    std::atomic<bool> consumed{false};
    // Set after the observer's first round of snapshots; the producer starts only then, so snapshots race
    // with the writers in every run (with scaled-down counts, a late observer could otherwise start after
    // everything was consumed and take none).
    std::atomic<bool> observing{false};
    // The consumer: one thread takes every stream's events and observes them, through its own refs.
    std::thread consumer([&] {
      // However the consumer returns (a failed ASSERT, or giving up), the observer and churn threads stop.
      const rill::test::on_scope_exit stop_others([&] {
        consumed.store(true, std::memory_order_release);  // test flag: the snapshots below may stop
      });
      std::vector<stream_ref> refs(kStreams);
      for (std::size_t i = 0; i < kStreams; ++i) ASSERT_EQ(m.get(numbered("s", i), refs[i]), status::ok);
      std::vector<bool> finished(kStreams, false);
      std::size_t open = kStreams;
      rill::received r;
      // A stream that never closes (a lost close) fails the test here rather than hanging it.
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(2);
      while (open != 0) {
        bool took_any = false;
        for (std::size_t i = 0; i < kStreams; ++i) {
          if (finished[i]) continue;
          for (int n = 0; n < 64; ++n) {
            const status s = refs[i]->try_receive(r);
            if (s == status::ok) {
              refs[i].metrics()->observe(*r);
              took_any = true;
              continue;
            }
            if (s == status::closed) {
              refs[i].metrics()->finish();
              finished[i] = true;
              --open;
            }
            break;
          }
        }
        if (took_any) continue;
        ASSERT_LT(std::chrono::steady_clock::now(), give_up) << open << " stream(s) never closed";
        std::this_thread::yield();  // more threads than cores: let the producer run
      }
    });

    // The producer: per stream, stream_start, message_start, `deltas` text deltas, usage, message_stop,
    // stamped 1 ms apart from 1 s on, then close.
    std::thread producer([&] {
      const rill::test::on_scope_exit close_all([&] {  // a failed ASSERT must not leave the consumer waiting
        for (stream_ref& p : producers) p->close();
      });
      // Acquire pairs with the observer's release; a test handshake, it orders no stream data.
      while (!observing.load(std::memory_order_acquire)) std::this_thread::yield();
      for (std::uint64_t d = 0; d < deltas + 5; ++d) {
        for (std::size_t i = 0; i < kStreams; ++i) {
          const std::uint64_t t = (1000 + d) * kMs;
          rill::event e;
          if (d == 0) {
            e = rill::event::stream_start("openai", "gpt-x");
          } else if (d == 1) {
            e = rill::event::message_start("m", "gpt-x");
          } else if (d < deltas + 2) {
            e = rill::event::text_delta(0, "tok");
          } else if (d == deltas + 2) {
            rill::usage_counts u;
            u.input_tokens = 10;
            u.output_tokens = static_cast<std::uint32_t>(deltas);
            e = rill::event::usage(u);
          } else if (d == deltas + 3) {
            e = rill::event::message_stop(rill::stop_reason::end_turn);
          } else {
            producers[i]->close();
            continue;
          }
          ASSERT_EQ(producers[i]->send(at(e, t)), status::ok);
        }
      }
    });

    // Snapshots: info() and list_info() while the consumer writes; each counter only grows.
    std::thread observer([&] {
      struct release_producer_on_exit {  // a failed ASSERT returns early; the producer must not wait forever
        std::atomic<bool>& flag;
        ~release_producer_on_exit() { flag.store(true, std::memory_order_release); }  // as below
      } on_exit{observing};
      std::map<std::string, std::uint64_t> last_total;
      while (!consumed.load(std::memory_order_acquire)) {
        for (const auto& info : m.list_info()) {
          ASSERT_NE(info.metrics, nullptr) << info.id;
          std::uint64_t& last = last_total[info.id];
          if (info.id[0] == 's') {
            EXPECT_GE(info.metrics->total_events, last) << info.id;
            last = info.metrics->total_events;
            EXPECT_LE(info.metrics->chunks, deltas);
          }
          ++snapshots_taken;
        }
        rill::stream_info one;
        if (m.info("s0", one) == status::ok) {
          ASSERT_NE(one.metrics, nullptr);
          ++snapshots_taken;
        }
        observing.store(true, std::memory_order_release);  // pairs with the producer's acquire
      }
    });

    // Churn: other streams with metrics are created, observed once and removed (by id, or closed through
    // the ref and later replaced), so snapshots race with metrics being built and torn down.
    std::thread churn([&] {
      std::uint64_t n = 0;
      while (!consumed.load(std::memory_order_acquire)) {
        stream_ref ref;
        const std::string id = numbered("c", n % 32);
        if (m.create(id, ref) == status::ok) {
          ++churn_created;
          ref.metrics()->observe(rill::event::keep_alive());
          if (n % 3 == 0) {
            (void)m.close(id);
          } else if (n % 3 == 1) {
            ref->close();  // stays indexed until a create replaces it
          }  // else it stays live: the next create of this id gets already_exists
        } else {
          (void)m.close(id);
        }
        ++n;
      }
      for (std::uint64_t i = 0; i < 32; ++i) (void)m.close(numbered("c", i));
    });

    producer.join();
    consumer.join();
    observer.join();
    churn.join();

    // Exact per-stream metrics once every writer has stopped.
    const auto all = m.list_info();
    ASSERT_EQ(all.size(), kStreams);
    for (const auto& info : all) {
      ASSERT_NE(info.metrics, nullptr);
      const auto& s = *info.metrics;
      EXPECT_EQ(s.total_events, deltas + 4) << info.id;
      EXPECT_EQ(s.chunks, deltas) << info.id;
      EXPECT_EQ(s.events[static_cast<std::size_t>(event_kind::text_delta)], deltas);
      EXPECT_EQ(s.ttft_ns, static_cast<std::int64_t>(1 * kMs));  // message_start at +1 ms, first token at +2 ms
      EXPECT_EQ(s.duration_ns, (deltas + 3) * kMs);
      EXPECT_EQ(s.tokens.output, deltas);
      EXPECT_EQ(s.gaps.count, deltas + 3);
      EXPECT_EQ(info.received, deltas + 4);
    }
    const auto t = totals.snapshot();
    EXPECT_EQ(t.streams_started, kStreams + churn_created);
    EXPECT_EQ(t.events[static_cast<std::size_t>(event_kind::text_delta)], kStreams * deltas);
    EXPECT_EQ(t.ttft.count, kStreams);
    producers.clear();
  }
  // Manager and refs gone: every stream, churned ones included, has ended exactly once.
  const auto t = totals.snapshot();
  EXPECT_EQ(t.streams_ended, kStreams + churn_created);
  EXPECT_EQ(t.active_streams, 0u);
  EXPECT_EQ(t.streams_failed, 0u);
  EXPECT_GT(snapshots_taken, 0u);
}

}  // namespace
