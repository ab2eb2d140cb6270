// Multi-threaded stream runs that check order, loss, duplication and payload checksums. Work scales with
// RILL_STRESS_SCALE (sanitizer presets run a few percent of it). Threads may outnumber the two cores:
// every wait is a blocking call or a bounded retry loop that yields, so nothing spins forever. Producers
// close (or count themselves out) from a scope guard, so a failed ASSERT in one fails the test instead of
// leaving its consumers waiting.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "rill/stream.hpp"
#include "scope_exit.hpp"
#include "stress_scale.hpp"

namespace {

using namespace std::chrono_literals;
using rill::backpressure;
using rill::event;
using rill::flavour;
using rill::received;
using rill::received_batch;
using rill::status;
using rill::stream;
using rill::stream_options;
using rill::test::mix;
using rill::test::scaled;

// Deterministic payload for event number i: mostly short inline text, every 16th a long arena text whose
// length varies from 41 to 1064 bytes. The consumer regenerates it to check content.
struct payload_source {
  std::string pool;
  payload_source() {
    pool.resize(4096);
    for (std::size_t i = 0; i < pool.size(); ++i) pool[i] = static_cast<char>('!' + mix(i) % 90);
  }
  std::string_view text_for(std::uint64_t i) const {
    const std::uint64_t h = mix(i);
    const std::size_t len = (i % 16 == 15) ? 41 + h % 1024 : h % 41;
    return std::string_view(pool).substr(h % 2048, len);
  }
};

std::uint64_t checksum(std::string_view text, std::uint64_t seq) {
  std::uint64_t h = seq * 0x100000001b3ull;
  for (char c : text) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

// The SPSC stresses run on both slot layouts: packed, and padded (each slot on its own 128-byte line pair).
class SpscStress : public testing::TestWithParam<rill::slot_layout> {};
INSTANTIATE_TEST_SUITE_P(Layouts, SpscStress,
                         testing::Values(rill::slot_layout::packed, rill::slot_layout::padded),
                         [](const testing::TestParamInfo<rill::slot_layout>& test) {
                           return std::string(rill::to_string(test.param));
                         });

TEST_P(SpscStress, DeliversFiftyMillionEventsInOrderWithMatchingContent) {
  const std::uint64_t total = scaled(50'000'000, 20'000);
  stream_options o;
  o.capacity = 4096;
  o.layout = GetParam();
  o.arena_bytes = 1 << 20;
  o.stamping = rill::clock_kind::none;
  stream s(o);
  const payload_source payloads;
  std::uint64_t producer_sum = 0;
  std::thread producer([&] {
    const rill::test::on_scope_exit close_stream([&] { s.close(); });
    rill::test::pin_to_cpu(0);
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::string_view text = payloads.text_for(i);
      producer_sum += checksum(text, i);
      ASSERT_EQ(s.send(event::text_delta(static_cast<std::uint16_t>(i), text)), status::ok);
    }
  });
  rill::test::pin_to_cpu(1);
  std::uint64_t expected = 0, consumer_sum = 0, mismatches = 0;
  received r;
  while (s.receive(r) == status::ok) {
    if (r->seq() != expected || r->index() != static_cast<std::uint16_t>(expected) ||
        r->text() != payloads.text_for(expected)) {
      ++mismatches;
    }
    consumer_sum += checksum(r->text(), r->seq());
    ++expected;
  }
  producer.join();
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(expected, total);
  EXPECT_EQ(consumer_sum, producer_sum);
  const auto c = s.counters();
  EXPECT_EQ(c.sent, total);
  EXPECT_EQ(c.received, total);
  EXPECT_EQ(c.dropped, 0u);
  std::printf("spsc: %llu events, %llu send waits\n", static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(c.send_waits));
}

// An SPSC stream fed by a producer thread in batches of 64 (send_batch), then closed. Events carry
// payloads.text_for(i); `sum` gets the checksum of everything sent.
struct batched_spsc_feed {
  batched_spsc_feed(std::uint64_t event_count, rill::slot_layout layout)
      : total(event_count), s(options(layout)) {
    producer = std::thread([this] {
      const rill::test::on_scope_exit close_stream([this] { s.close(); });
      std::vector<event> batch;
      for (std::uint64_t i = 0; i < this->total;) {
        batch.clear();
        for (std::uint64_t k = 0; k < 64 && i < this->total; ++k, ++i) {
          batch.push_back(event::text_delta(static_cast<std::uint16_t>(i), payloads.text_for(i)));
          sum += checksum(payloads.text_for(i), i);
        }
        ASSERT_EQ(s.send_batch(batch), status::ok);
      }
    });
  }
  static stream_options options(rill::slot_layout layout) {
    stream_options o;
    o.capacity = 1024;
    o.arena_bytes = 1 << 18;
    o.layout = layout;
    return o;
  }
  const std::uint64_t total;
  const payload_source payloads;
  stream s;
  std::uint64_t sum = 0;  // read after producer.join()
  std::thread producer;
};

TEST_P(SpscStress, BatchedSendAndDrainKeepOrder) {
  batched_spsc_feed feed(scaled(20'000'000, 20'000), GetParam());
  stream& s = feed.s;
  const std::uint64_t total = feed.total;
  const payload_source& payloads = feed.payloads;
  std::uint64_t expected = 0, mismatches = 0, batches = 0, ends = 0;
  std::size_t handled = 0;
  while (s.drain_until(
             [&](const event& e, bool end_of_batch) {
               if (e.seq() != expected || e.text() != payloads.text_for(expected)) ++mismatches;
               ++expected;
               ends += end_of_batch;
             },
             64, stream::time_point::max(), &handled) == status::ok) {
    ++batches;
  }
  feed.producer.join();
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(expected, total);
  EXPECT_EQ(ends, batches) << "exactly one end-of-batch per drain call";
}

// The copy-out consumer: batches of 48 (so they straddle the producer's batches of 64) hold their arena
// text while the producer refills the freed slots; every event arrives once, in order, with its content.
TEST_P(SpscStress, BatchedSendAndReceiveBatchKeepOrder) {
  batched_spsc_feed feed(scaled(20'000'000, 20'000), GetParam());
  stream& s = feed.s;
  const std::uint64_t total = feed.total;
  const payload_source& payloads = feed.payloads;
  std::uint64_t expected = 0, mismatches = 0, consumer_sum = 0, oversized = 0;
  received_batch batch(48);
  while (s.receive_batch(batch) == status::ok) {
    if (batch.empty() || batch.size() > batch.capacity()) ++oversized;
    for (const event& e : batch) {
      if (e.seq() != expected || e.text() != payloads.text_for(expected)) ++mismatches;
      consumer_sum += checksum(e.text(), e.seq());
      ++expected;
    }
  }
  feed.producer.join();
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(oversized, 0u);
  EXPECT_EQ(expected, total);
  EXPECT_EQ(consumer_sum, feed.sum);
  batch.reset();
  EXPECT_EQ(s.approx_arena_used(), 0u) << "every record was released";
  const auto c = s.counters();
  EXPECT_EQ(c.received, total);
  EXPECT_EQ(c.dropped, 0u);
}

// Per-producer order and exactly-once delivery across 4 producers and 2 consumers (6 threads, 2 cores).
// Each event is a user event: code = producer, data = its 8-byte event number followed by the payload.
// With lanes, producers share lanes (lanes 2) or own one each (lanes 4), and consumers cross lanes.
// Consumers take one event per call (receive) or copy out up to 32 at a time (receive_batch).
enum class consumer_kind { one_at_a_time, batches };
// How producers send: send() one at a time; try_claim() with arena text written in place, then commit();
// send_batch() of 16. The last two are used under block only (their refusals are not counted as drops).
enum class producer_kind { send, claim, batches };

void run_mpmc(backpressure policy, std::uint64_t per_producer, std::uint32_t lanes = 1,
              consumer_kind consumers = consumer_kind::one_at_a_time,
              producer_kind producers = producer_kind::send) {
  constexpr int kProducers = 4, kConsumers = 2;
  stream_options o;
  o.kind = flavour::mpmc;
  o.policy = policy;
  o.lanes = lanes;
  o.capacity = 1024;
  o.arena_bytes = 1 << 18;
  stream s(o);
  const payload_source payloads;
  std::atomic<std::uint64_t> sent_sum{0};  // relaxed: read after join()
  std::atomic<std::uint64_t> claims_refused{0};  // relaxed: read after join(); counted dropped, then retried
  std::atomic<int> producers_left{kProducers};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      const rill::test::on_scope_exit count_out([&] {
        // acq_rel: the last producer out closes the stream after every producer's sends.
        if (producers_left.fetch_sub(1, std::memory_order_acq_rel) == 1) s.close();
      });
      std::uint64_t local_sum = 0;
      std::string data;
      constexpr std::size_t kBatch = 16;
      std::vector<std::string> batch_texts(kBatch);  // the batch's events borrow these until send_batch
      std::vector<event> batch;
      std::uint64_t batch_sum = 0;
      for (std::uint64_t i = 0; i < per_producer; ++i) {
        const std::string_view text = payloads.text_for((static_cast<std::uint64_t>(p) << 40) | i);
        data.assign(reinterpret_cast<const char*>(&i), sizeof i);
        data.append(text);
        if (producers == producer_kind::claim) {
          rill::send_claim claim;
          status claimed;
          while ((claimed = s.try_claim(claim, data.size())) == status::full) {
            claims_refused.fetch_add(1,
                                     std::memory_order_relaxed);  // relaxed: a statistic, read after join()
            std::this_thread::yield();
          }
          ASSERT_EQ(claimed, status::ok);
          std::memcpy(claim.text(), data.data(), data.size());
          ::new (&claim.slot())
              event(event::user(static_cast<std::uint16_t>(p), {claim.text(), data.size()}));
          ASSERT_EQ(s.commit(claim), status::ok);
          local_sum += checksum(text, i);
          continue;
        }
        if (producers == producer_kind::batches) {
          batch_texts[batch.size()] = data;
          batch.push_back(event::user(static_cast<std::uint16_t>(p), batch_texts[batch.size()]));
          batch_sum += checksum(text, i);
          if (batch.size() == kBatch || i + 1 == per_producer) {
            ASSERT_EQ(s.send_batch(batch), status::ok);
            local_sum += batch_sum;
            batch_sum = 0;
            batch.clear();
          }
          continue;
        }
        const status st = s.send(event::user(static_cast<std::uint16_t>(p), data));
        if (st == status::ok) {
          local_sum += checksum(text, i);
        } else {
          // drop refuses when the ring is full; drop_oldest only when the arena's oldest text is held by
          // a consumer or by another lane's event (or after its bounded back-off). Either way the refusal
          // is counted as dropped.
          ASSERT_NE(policy, backpressure::block) << rill::to_string(st);
          ASSERT_EQ(st, status::full);
        }
      }
      sent_sum.fetch_add(local_sum, std::memory_order_relaxed);  // relaxed: read after join()
    });
  }
  std::vector<std::vector<std::atomic<std::uint8_t>>> seen;
  for (int p = 0; p < kProducers; ++p) seen.emplace_back(per_producer);
  // Relaxed statistics: adds on the consumers, reads after join().
  std::atomic<std::uint64_t> received_sum{0}, received_count{0}, order_errors{0}, duplicates{0},
      content_errors{0};
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      std::vector<std::int64_t> last(kProducers, -1);
      std::uint64_t local_sum = 0, local_count = 0;
      auto check = [&](const event& e) {
        const int p = e.user_code();
        const std::string_view data = e.text();
        std::uint64_t i = 0;
        if (p >= kProducers || data.size() < sizeof i) {
          content_errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
          return;
        }
        std::memcpy(&i, data.data(), sizeof i);
        const std::string_view text = data.substr(sizeof i);
        if (i >= per_producer || text != payloads.text_for((static_cast<std::uint64_t>(p) << 40) | i)) {
          content_errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
          return;
        }
        if (static_cast<std::int64_t>(i) <= last[p]) {           // this consumer saw p's events out of order
          order_errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
        }
        last[p] = static_cast<std::int64_t>(i);
        // relaxed: the RMW alone finds a second receipt; it orders nothing.
        if (seen[p][i].exchange(1, std::memory_order_relaxed) != 0) {
          duplicates.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
        }
        local_sum += checksum(text, i);
        ++local_count;
      };
      if (consumers == consumer_kind::batches) {
        received_batch batch(32);
        while (s.receive_batch(batch) == status::ok) {
          for (const event& e : batch) check(e);
        }
      } else {
        received r;
        while (s.receive(r) == status::ok) check(*r);
      }
      received_sum.fetch_add(local_sum, std::memory_order_relaxed);  // relaxed: statistics, read after join()
      received_count.fetch_add(local_count, std::memory_order_relaxed);
    });
  }
  for (auto& t : threads) t.join();
  const auto c = s.counters();
  // Relaxed: join() ordered every add (here and below).
  EXPECT_EQ(order_errors.load(std::memory_order_relaxed), 0u);
  EXPECT_EQ(duplicates.load(std::memory_order_relaxed), 0u);
  EXPECT_EQ(content_errors.load(std::memory_order_relaxed), 0u);
  // A refused claim counts as dropped under a dropping policy; these producers then claim again.
  const std::uint64_t refused =
      policy == backpressure::block ? 0 : claims_refused.load(std::memory_order_relaxed);
  EXPECT_EQ(received_count.load(std::memory_order_relaxed) + c.dropped, kProducers * per_producer + refused);
  EXPECT_EQ(c.received, received_count.load(std::memory_order_relaxed));
  EXPECT_EQ(c.sent, c.received + c.dropped + c.buffered);
  if (policy == backpressure::block) {
    EXPECT_EQ(received_count.load(std::memory_order_relaxed), kProducers * per_producer);
    EXPECT_EQ(received_sum.load(std::memory_order_relaxed), sent_sum.load(std::memory_order_relaxed));
  }
}

TEST(StreamStress, MpmcFourProducersTwoConsumersBlock) { run_mpmc(backpressure::block, scaled(2'000'000, 5'000)); }
TEST(StreamStress, MpmcFourProducersTwoConsumersDrop) { run_mpmc(backpressure::drop, scaled(1'000'000, 5'000)); }
TEST(StreamStress, MpmcFourProducersTwoConsumersDropOldest) {
  run_mpmc(backpressure::drop_oldest, scaled(1'000'000, 5'000));
}
TEST(StreamStress, MpmcFourLanesFourProducersTwoConsumersBlock) {
  run_mpmc(backpressure::block, scaled(2'000'000, 5'000), 4);
}
TEST(StreamStress, MpmcTwoLanesFourProducersTwoConsumersDrop) {
  run_mpmc(backpressure::drop, scaled(1'000'000, 5'000), 2);
}
TEST(StreamStress, MpmcFourLanesFourProducersTwoConsumersDropOldest) {
  run_mpmc(backpressure::drop_oldest, scaled(1'000'000, 5'000), 4);
}
TEST(StreamStress, MpmcFourProducersTwoBatchConsumersBlock) {
  run_mpmc(backpressure::block, scaled(2'000'000, 5'000), 1, consumer_kind::batches);
}
TEST(StreamStress, MpmcFourClaimingProducersTwoConsumersBlock) {
  run_mpmc(backpressure::block, scaled(1'000'000, 5'000), 1, consumer_kind::one_at_a_time,
           producer_kind::claim);
}
TEST(StreamStress, MpmcFourLanesFourClaimingProducersTwoBatchConsumersBlock) {
  run_mpmc(backpressure::block, scaled(1'000'000, 5'000), 4, consumer_kind::batches, producer_kind::claim);
}
TEST(StreamStress, MpmcFourBatchingProducersTwoConsumersBlock) {
  run_mpmc(backpressure::block, scaled(1'000'000, 5'000), 1, consumer_kind::one_at_a_time,
           producer_kind::batches);
}
// One ring: the producers' run claims contend on one tail, the consumers' run takes on one head.
TEST(StreamStress, MpmcFourBatchingProducersTwoBatchConsumersBlock) {
  run_mpmc(backpressure::block, scaled(1'000'000, 5'000), 1, consumer_kind::batches, producer_kind::batches);
}
TEST(StreamStress, MpmcFourLanesFourBatchingProducersTwoBatchConsumersBlock) {
  run_mpmc(backpressure::block, scaled(1'000'000, 5'000), 4, consumer_kind::batches, producer_kind::batches);
}
TEST(StreamStress, MpmcFourLanesFourClaimingProducersTwoConsumersDropOldest) {
  run_mpmc(backpressure::drop_oldest, scaled(1'000'000, 5'000), 4, consumer_kind::one_at_a_time,
           producer_kind::claim);
}
TEST(StreamStress, MpmcFourLanesFourProducersTwoBatchConsumersDropOldest) {
  run_mpmc(backpressure::drop_oldest, scaled(1'000'000, 5'000), 4, consumer_kind::batches);
}

// drop_oldest, two lanes, a consumer holding the arena's oldest record: no eviction can make room, so the
// two producers racing with long text must evict nothing, however their looks at the arena's oldest record
// collide (one finds the other advancing the head and must wait, not evict). Exactly one more record fits.
TEST(StreamStress, DropOldestProducersRacingForAPinnedArenaEvictNothing) {
  const std::uint64_t per_producer = scaled(200'000, 5'000);
  stream_options o;
  o.kind = flavour::mpmc;
  o.lanes = 2;
  o.capacity = 64;
  o.arena_bytes = 1024;  // four 208-byte records
  o.policy = backpressure::drop_oldest;
  stream s(o);
  const std::string pinned(200, 'a');
  ASSERT_EQ(s.try_send(event::text_delta(0, pinned)), status::ok);
  received held;
  ASSERT_EQ(s.try_receive(held), status::ok);
  auto fill = [&](char c) {  // a short event ahead of a long one, in this thread's lane
    ASSERT_EQ(s.try_send(event::text_delta(0, std::string(1, c))), status::ok);
    ASSERT_EQ(s.try_send(event::text_delta(0, std::string(200, c))), status::ok);
  };
  std::thread(fill, 'b').join();
  std::thread(fill, 'c').join();
  std::atomic<std::uint64_t> accepted{0};  // relaxed: read after join()
  std::vector<std::thread> producers;
  for (char c : {'x', 'y'}) {  // two fresh threads: consecutive ordinals, so both lanes
    producers.emplace_back([&, c] {
      const std::string text(200, c);
      for (std::uint64_t i = 0; i < per_producer; ++i) {
        const status st = s.try_send(event::text_delta(0, text));
        ASSERT_TRUE(st == status::ok || st == status::full) << rill::to_string(st);
        if (st == status::ok) accepted.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count
      }
    });
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(accepted.load(std::memory_order_relaxed), 1u) << "room for one more record";
  const auto c = s.counters();
  EXPECT_EQ(c.dropped, 2 * per_producer - 1) << "refusals only: nothing evicted";
  EXPECT_EQ(c.buffered, 5u);
  std::string firsts;
  received r;
  while (s.try_receive(r) == status::ok) firsts += r->text().front();
  std::sort(firsts.begin(), firsts.end());
  EXPECT_TRUE(firsts == "bbccx" || firsts == "bbccy") << firsts;
  EXPECT_EQ(held->text(), pinned);
}

// drop_oldest on SPSC: the producer never waits; the consumer sees strictly increasing sequence numbers,
// the right content for every event it gets, and the counters add up. Refusals (a consumer holding the
// oldest arena text) use up no sequence number, so each event carries its own number: data = 8-byte
// event number, then the payload.
TEST(StreamStress, SpscDropOldestNeverBlocksAndAccountsForEveryEvent) {
  const std::uint64_t total = scaled(10'000'000, 20'000);
  stream_options o;
  o.capacity = 256;
  o.arena_bytes = 1 << 16;
  o.policy = backpressure::drop_oldest;
  stream s(o);
  const payload_source payloads;
  std::thread producer([&] {
    const rill::test::on_scope_exit close_stream([&] { s.close(); });
    std::string data;
    for (std::uint64_t i = 0; i < total; ++i) {
      data.assign(reinterpret_cast<const char*>(&i), sizeof i);
      data.append(payloads.text_for(i));
      const status st = s.try_send(event::user(0, data));
      ASSERT_TRUE(st == status::ok || st == status::full) << rill::to_string(st);
    }
  });
  std::uint64_t count = 0, errors = 0;
  std::int64_t last_seq = -1, last_number = -1;
  received r;
  while (s.receive(r) == status::ok) {
    const std::string_view data = r->text();
    std::uint64_t number = 0;
    if (data.size() < sizeof number) {
      ++errors;
      continue;
    }
    std::memcpy(&number, data.data(), sizeof number);
    if (static_cast<std::int64_t>(r->seq()) <= last_seq || static_cast<std::int64_t>(number) <= last_number ||
        data.substr(sizeof number) != payloads.text_for(number)) {
      ++errors;
    }
    last_seq = static_cast<std::int64_t>(r->seq());
    last_number = static_cast<std::int64_t>(number);
    ++count;
  }
  producer.join();
  const auto c = s.counters();
  EXPECT_EQ(errors, 0u);
  EXPECT_EQ(count + c.dropped, total);
  EXPECT_EQ(c.received, count);
  std::printf("spsc drop_oldest: %llu received, %llu dropped\n", static_cast<unsigned long long>(count),
              static_cast<unsigned long long>(c.dropped));
}

// Blocking senders and receivers with random timeouts on a small MPMC ring, with more threads than cores.
// Every send that returned ok is received exactly once after close.
TEST(StreamStress, BlockingCallsWithRandomTimeoutsLoseNothing) {
  constexpr int kProducers = 3, kConsumers = 3;
  const std::uint64_t per_producer = scaled(200'000, 2'000);
  stream_options o;
  o.kind = flavour::mpmc;
  o.capacity = 8;
  o.spin_iterations = 16;  // park often
  stream s(o);
  // Relaxed statistics: adds on the workers, reads after join().
  std::atomic<std::uint64_t> sent_ok{0}, sent_sum{0}, timeouts{0}, received_count{0}, received_sum{0};
  std::atomic<int> producers_left{kProducers};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      const rill::test::on_scope_exit count_out([&] {
        // acq_rel: the last producer out closes the stream after every producer's sends.
        if (producers_left.fetch_sub(1, std::memory_order_acq_rel) == 1) s.close();
      });
      std::mt19937_64 rng(static_cast<std::uint64_t>(p) + 1);
      for (std::uint64_t i = 0; i < per_producer; ++i) {
        const std::uint64_t value = mix((static_cast<std::uint64_t>(p) << 32) | i);
        const event e = event::stream_complete(value, static_cast<std::uint64_t>(p));
        const auto timeout = std::chrono::microseconds(rng() % 200);
        const status st = s.send_for(e, timeout);
        if (st == status::ok) {
          sent_ok.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
          sent_sum.fetch_add(value, std::memory_order_relaxed);
        } else {
          ASSERT_EQ(st, status::timeout);
          timeouts.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
        }
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(c) + 100);
      received r;
      while (true) {
        const status st = s.receive_for(r, std::chrono::microseconds(rng() % 300));
        if (st == status::closed) break;
        if (st == status::timeout) continue;
        ASSERT_EQ(st, status::ok);
        received_count.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
        received_sum.fetch_add(r->total_chunks(), std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : threads) t.join();
  // Relaxed: join() ordered every add (here and below).
  EXPECT_EQ(received_count.load(std::memory_order_relaxed), sent_ok.load(std::memory_order_relaxed));
  EXPECT_EQ(received_sum.load(std::memory_order_relaxed), sent_sum.load(std::memory_order_relaxed));
  EXPECT_EQ(sent_ok.load(std::memory_order_relaxed) + timeouts.load(std::memory_order_relaxed),
            kProducers * per_producer);
  std::printf("blocking: %llu sent, %llu timed out\n",
              static_cast<unsigned long long>(sent_ok.load(std::memory_order_relaxed)),
              static_cast<unsigned long long>(timeouts.load(std::memory_order_relaxed)));
}

// An SPSC ring of 16 slots that makes a refused producer wait for 4 free (stream_options::resume_room),
// with blocking calls that time out at random, single sends and batches, single receives and batches: the
// producer parks and is woken for its resume room again and again. Every event that was sent arrives once,
// in order, and nothing else does.
TEST(StreamStress, SpscResumeRoomWithRandomTimeoutsLosesNothing) {
  const std::uint64_t rounds = scaled(400'000, 4'000);
  stream_options o;
  o.capacity = 16;
  o.resume_room = 4;
  o.spin_iterations = 16;  // park often
  stream s(o);
  ASSERT_EQ(s.resume_room(), 4u);
  std::uint64_t sent = 0, sent_sum = 0, timeouts = 0;  // the producer's; read after join()
  std::thread producer([&] {
    const rill::test::on_scope_exit close_stream([&] { s.close(); });
    std::mt19937_64 rng(7);
    std::vector<event> batch;
    for (std::uint64_t round = 0; round < rounds; ++round) {
      if (round % 4 == 3) {
        batch.clear();
        for (std::uint64_t k = 0; k < 1 + rng() % 6; ++k)
          batch.push_back(event::stream_complete(mix(sent + k), 0));
        const std::size_t taken = s.try_send_batch(batch);
        for (std::size_t k = 0; k < taken; ++k) sent_sum += mix(sent + k);
        sent += taken;
        continue;
      }
      const status st =
          s.send_for(event::stream_complete(mix(sent), 0), std::chrono::microseconds(rng() % 100));
      if (st == status::ok) {
        sent_sum += mix(sent);
        ++sent;
      } else {
        ASSERT_EQ(st, status::timeout);
        ++timeouts;
      }
    }
  });
  std::mt19937_64 rng(11);
  std::uint64_t received_count = 0, received_sum = 0, mismatches = 0;
  received r;
  received_batch batch(5);
  auto take = [&](const event& e) {
    if (e.total_chunks() != mix(received_count) || e.seq() != received_count) ++mismatches;
    received_sum += e.total_chunks();
    ++received_count;
  };
  while (true) {
    if (rng() % 5 == 0) {
      const status st = s.try_receive_batch(batch);
      if (st == status::closed) break;
      for (const event& e : batch) take(e);
      continue;
    }
    const status st = s.receive_for(r, std::chrono::microseconds(rng() % 150));
    if (st == status::closed) break;
    if (st == status::timeout || st == status::empty) continue;
    ASSERT_EQ(st, status::ok);
    take(*r);
  }
  producer.join();
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(received_count, sent);
  EXPECT_EQ(received_sum, sent_sum);
  std::printf("resume room: %llu sent, %llu timed out, %llu send waits\n",
              static_cast<unsigned long long>(sent), static_cast<unsigned long long>(timeouts),
              static_cast<unsigned long long>(s.counters().send_waits));
}

// Eight blocking producers fan in through an MPMC stream of capacity 2: far more threads than cores, so
// nearly every call parks; parking must let every thread finish.
TEST(StreamStress, OversubscribedBlockingThreadsAllFinish) {
  constexpr int kProducers = 8;
  const std::uint64_t per_producer = scaled(10'000, 500);
  stream_options o;
  o.kind = flavour::mpmc;
  o.capacity = 2;
  stream s(o);
  std::vector<std::thread> producers;
  std::atomic<int> left{kProducers};
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&] {
      const rill::test::on_scope_exit count_out([&] {
        // acq_rel: the last producer out closes the stream after every producer's sends.
        if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) s.close();
      });
      for (std::uint64_t i = 0; i < per_producer; ++i) ASSERT_EQ(s.send(event::keep_alive()), status::ok);
    });
  }
  std::uint64_t count = 0;
  for (const event& e : s.events()) {
    (void)e;
    ++count;
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(count, kProducers * per_producer);
}

}  // namespace
