// Stress: several producers and streams (SPSC and MPMC) through one dispatcher with two workers; checks
// per-stream order, exact counts for each subscription, batch totals and isolated handler errors.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "rill/pipeline.hpp"
#include "scope_exit.hpp"
#include "stress_scale.hpp"

namespace {

constexpr std::size_t kStreams = 8;
constexpr std::uint64_t kThrowEvery = 997;

struct per_stream {
  // Written only by the one worker that consumes the stream; read after dispatcher::wait_idle().
  std::uint64_t next_seq = 0;
  std::uint64_t order_errors = 0;
  std::uint64_t seen = 0;
  std::uint64_t texts = 0;
  std::uint64_t batched = 0;
  std::uint64_t checksum = 0;
};

TEST(PipelineStress, ManyStreamsThroughTheDispatcher) {
  const std::uint64_t per_stream_events = rill::test::scaled(100000, 2000);
  std::array<per_stream, kStreams> state{};

  rill::pipeline p;
  p.add_transformer([](rill::enriched_event& en) { en.tags.tags = en.e.seq() & 1; });
  p.subscribe({"order"}, [&](const rill::enriched_event& en) {
    per_stream& s = state[en.tags.correlation_id];
    if (en.e.seq() != s.next_seq) ++s.order_errors;
    s.next_seq = en.e.seq() + 1;
    if (en.tags.tags != (en.e.seq() & 1)) ++s.order_errors;
    ++s.seen;
    s.checksum += en.e.index();
  });
  p.subscribe({"texts", {rill::event_kind::text_delta}},
              [&](const rill::enriched_event& en) { ++state[en.tags.correlation_id].texts; });
  const std::size_t thrower = p.subscribe({"thrower"}, [](const rill::enriched_event& en) {
    if (en.e.seq() % kThrowEvery == 0) throw std::runtime_error("every 997th");
  });
  p.subscribe_batch({"batch"}, {32, std::chrono::milliseconds(1)}, [&](std::span<const rill::enriched_event> batch) {
    for (const auto& en : batch) ++state[en.tags.correlation_id].batched;
  });

  std::vector<std::unique_ptr<rill::stream>> streams;
  for (std::size_t i = 0; i < kStreams; ++i) {
    rill::stream_options options;
    options.capacity = 256;
    options.kind = i % 2 == 0 ? rill::flavour::spsc : rill::flavour::mpmc;
    streams.push_back(std::make_unique<rill::stream>(options));
  }
  rill::dispatcher_options options;
  options.workers = 2;
  options.cpus = {0, 1};  // pinned workers (a missing CPU leaves a worker unpinned)
  rill::dispatcher d(p, options);
  for (std::size_t i = 0; i < kStreams; ++i) {
    rill::stream_context c;
    std::string id = "s";
    id += std::to_string(i);
    c.id.assign(id);
    c.correlation_id = i;
    d.attach(*streams[i], c);
  }

  std::vector<std::thread> producers;
  for (std::size_t t = 0; t < kStreams / 2; ++t) {
    producers.emplace_back([&, t] {
      rill::stream& a = *streams[2 * t];
      rill::stream& b = *streams[2 * t + 1];
      const rill::test::on_scope_exit close_streams([&] {  // a failed ASSERT must not stall wait_idle()
        a.close();
        b.close();
      });
      for (std::uint64_t i = 0; i < per_stream_events; ++i) {
        const auto index = static_cast<std::uint16_t>(i % 1000);
        const rill::event e = i % 10 == 9 ? rill::event::keep_alive() : rill::event::text_delta(index, "tok");
        ASSERT_EQ(a.send(e), rill::status::ok);
        ASSERT_EQ(b.send(e), rill::status::ok);
        if (t % 2 == 0 && i % 64 == 0) d.notify();
      }
    });
  }
  for (auto& th : producers) th.join();
  d.wait_idle();

  std::uint64_t expected_checksum = 0, expected_texts = 0;
  for (std::uint64_t i = 0; i < per_stream_events; ++i) {
    if (i % 10 == 9) continue;
    expected_checksum += i % 1000;
    ++expected_texts;
  }
  for (std::size_t i = 0; i < kStreams; ++i) {
    SCOPED_TRACE("stream " + std::to_string(i));
    EXPECT_EQ(state[i].seen, per_stream_events);
    EXPECT_EQ(state[i].order_errors, 0u);
    EXPECT_EQ(state[i].texts, expected_texts);
    EXPECT_EQ(state[i].batched, per_stream_events);
    EXPECT_EQ(state[i].checksum, expected_checksum);
  }
  const std::uint64_t throws_per_stream = (per_stream_events + kThrowEvery - 1) / kThrowEvery;
  EXPECT_EQ(p.errors(thrower), throws_per_stream * kStreams);
  EXPECT_EQ(d.events_dispatched(), per_stream_events * kStreams);
}

}  // namespace
