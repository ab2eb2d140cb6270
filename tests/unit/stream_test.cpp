#include "rill/stream.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "scope_exit.hpp"

namespace {

using namespace std::chrono_literals;
using rill::backpressure;
using rill::event;
using rill::event_kind;
using rill::flavour;
using rill::received;
using rill::received_batch;
using rill::status;
using rill::stream;
using rill::stream_options;

struct variant {
  flavour kind;
  backpressure policy;
  std::uint32_t lanes = 1;
  rill::slot_layout layout = rill::slot_layout::packed;
};

std::string variant_name(const testing::TestParamInfo<variant>& info) {
  std::string name =
      std::string(rill::to_string(info.param.kind)) + "_" + std::string(rill::to_string(info.param.policy));
  if (info.param.lanes != 1) name += "_lanes" + std::to_string(info.param.lanes);
  if (info.param.layout != rill::slot_layout::packed)
    name += "_" + std::string(rill::to_string(info.param.layout));
  return name;
}

// Every contract test runs on each flavour and policy, on MPMC split into lanes, and on SPSC rings with
// padded slots. Each test has one
// thread sending at a time, which always lands in a single lane, so a laned stream gets `lanes` times the
// capacity: the room one producer sees is then the same in every variant.
class StreamContract : public testing::TestWithParam<variant> {
 protected:
  stream_options options(std::size_t capacity = 8, std::size_t arena = 4096) const {
    stream_options o;
    o.capacity = capacity * GetParam().lanes;
    o.lanes = GetParam().lanes;
    o.arena_bytes = arena;
    o.kind = GetParam().kind;
    o.policy = GetParam().policy;
    o.layout = GetParam().layout;
    return o;
  }
  static std::string long_text(std::size_t n, char seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (seed + i) % 26);
    return s;
  }
};

INSTANTIATE_TEST_SUITE_P(
    AllVariants, StreamContract,
    testing::Values(variant{flavour::spsc, backpressure::block}, variant{flavour::spsc, backpressure::drop},
                    variant{flavour::spsc, backpressure::drop_oldest},
                    variant{flavour::mpmc, backpressure::block}, variant{flavour::mpmc, backpressure::drop},
                    variant{flavour::mpmc, backpressure::drop_oldest},
                    variant{flavour::mpmc, backpressure::block, 4},
                    variant{flavour::mpmc, backpressure::drop, 4},
                    variant{flavour::mpmc, backpressure::drop_oldest, 4},
                    variant{flavour::spsc, backpressure::block, 1, rill::slot_layout::padded},
                    variant{flavour::spsc, backpressure::drop, 1, rill::slot_layout::padded}),
    variant_name);

// Streams are packed unless padded is asked for; MPMC rings (MPMC streams, and drop_oldest streams, whose
// ring is MPMC) are packed whatever the option says.
TEST(StreamLayout, PaddedOnlyWhenAskedAndOnlyForSpscRings) {
  auto layout_of = [](flavour kind, backpressure policy, std::size_t capacity,
                      std::optional<rill::slot_layout> asked) {
    stream_options o;
    o.kind = kind;
    o.policy = policy;
    o.capacity = capacity;
    if (asked) o.layout = *asked;
    return stream(o).layout();
  };
  using rill::slot_layout;
  EXPECT_EQ(layout_of(flavour::spsc, backpressure::block, 65536, std::nullopt), slot_layout::packed);
  EXPECT_EQ(layout_of(flavour::spsc, backpressure::block, 2, slot_layout::padded), slot_layout::padded);
  EXPECT_EQ(layout_of(flavour::spsc, backpressure::drop, 65536, slot_layout::padded), slot_layout::padded);
  EXPECT_EQ(layout_of(flavour::spsc, backpressure::block, 65536, slot_layout::packed), slot_layout::packed);
  EXPECT_EQ(layout_of(flavour::mpmc, backpressure::drop, 8, slot_layout::padded), slot_layout::packed);
  EXPECT_EQ(layout_of(flavour::spsc, backpressure::drop_oldest, 8, slot_layout::padded), slot_layout::packed);
  stream_options bad;
  bad.layout = static_cast<rill::slot_layout>(7);
  EXPECT_THROW(stream{bad}, std::invalid_argument);
}

// A padded ring of more slots than the contract tests use, filled and drained across its end several times
// with every receive path, eagerly allocated.
TEST(StreamLayout, LargePaddedRingDeliversEveryPathInOrder) {
  stream_options o;
  o.capacity = 16384;
  o.layout = rill::slot_layout::padded;
  o.allocate_on_first_send = false;
  stream s(o);
  ASSERT_EQ(s.layout(), rill::slot_layout::padded);
  std::uint64_t sent = 0, got = 0;
  received one;
  received_batch batch(100);
  std::vector<event> burst;
  for (int round = 0; round < 5; ++round) {
    burst.clear();
    for (int i = 0; i < 7000; ++i)
      burst.push_back(event::text_delta(static_cast<std::uint16_t>(sent + i), "t"));
    ASSERT_EQ(s.try_send_batch(burst), burst.size());
    for (int i = 0; i < 3000; ++i)
      ASSERT_EQ(s.try_send(event::text_delta(static_cast<std::uint16_t>(sent + 7000 + i), "u")), status::ok);
    sent += 10000;
    auto check = [&](const event& e) {
      EXPECT_EQ(e.seq(), got);
      EXPECT_EQ(e.index(), static_cast<std::uint16_t>(got));
      ++got;
    };
    for (int i = 0; i < 2500; ++i) {
      ASSERT_EQ(s.try_receive(one), status::ok);
      check(*one);
    }
    for (int i = 0; i < 25; ++i) {
      ASSERT_EQ(s.try_receive_batch(batch), status::ok);
      for (const event& e : batch) check(e);
    }
    while (got < sent) ASSERT_NE(s.try_drain([&](const event& e, bool) { check(e); }, 999), 0u);
  }
  EXPECT_EQ(got, 50000u);
  EXPECT_EQ(s.try_receive(one), status::empty);
}

// Waits (10 s at most) until `s` counts `waits` sends that had to wait, so a test that then cancels, closes
// or makes room exercises the wake-up of a waiting sender, not a send that had not started waiting. The
// count comes just before the sender parks; the caller's short sleep after this makes the park itself most
// likely. False (and a failure recorded) if the count never came.
bool wait_for_a_waiting_send(const stream& s, std::uint64_t waits = 1) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.counters().send_waits < waits && std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
  EXPECT_GE(s.counters().send_waits, waits) << "the sender never waited";
  return s.counters().send_waits >= waits;
}

// Waits (10 s at most) for a producer thread to store the result of its blocking send in `result` (with
// release; status::empty until then), and returns it: status::empty if the send never returned.
status wait_for_send_result(const std::atomic<status>& result) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // Acquire: pairs with the producer's release, a test handshake.
  while (result.load(std::memory_order_acquire) == status::empty &&
         std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
  return result.load(std::memory_order_acquire);  // acquire: as above
}

// Waits (up to 10 s) until receivers have parked `parks` times. A receiver counted has announced itself,
// so a close or a stop from then on must wake it (with one receiver per expected park, all almost surely
// have: a receiver parks again only after a spurious wake-up).
void wait_for_parked_receives(const stream& s, std::uint64_t parks) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.counters().receive_parks < parks && std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
  EXPECT_GE(s.counters().receive_parks, parks) << "the receivers never parked";
}

void expect_quiescent_invariant(const stream& s) {
  const rill::stream_counters c = s.counters();
  EXPECT_EQ(c.sent, c.received + c.dropped + c.buffered)
      << "sent " << c.sent << " received " << c.received << " dropped " << c.dropped << " buffered " << c.buffered;
}

// The end of a test that delivered one event and refused or voided the rest: counted so, no text left.
void expect_one_event_delivered_and_nothing_held(const stream& s) {
  EXPECT_EQ(s.approx_arena_used(), 0u);
  const rill::stream_counters c = s.counters();
  EXPECT_EQ(c.sent, 1u);
  EXPECT_EQ(c.received, 1u);
  expect_quiescent_invariant(s);
}

TEST_P(StreamContract, DeliversInOrderWithSequenceNumbers) {
  stream s(options(16));
  for (int i = 0; i < 10; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, std::to_string(i))), status::ok);
  EXPECT_EQ(s.approx_size(), 10u);
  received r;
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->text(), std::to_string(i));
    EXPECT_EQ(r->seq(), static_cast<std::uint64_t>(i));
  }
  EXPECT_EQ(s.try_receive(r), status::empty);
  const auto c = s.counters();
  EXPECT_EQ(c.sent, 10u);
  EXPECT_EQ(c.received, 10u);
  EXPECT_EQ(c.dropped, 0u);
  expect_quiescent_invariant(s);
}

TEST_P(StreamContract, CapacityAndArenaRoundUpToPowersOfTwo) {
  const std::size_t lanes = GetParam().lanes;
  EXPECT_EQ(stream(options(3, 300)).capacity(), lanes == 1 ? 4u : 16u);  // 3 * 4 lanes = 12 -> 16
  EXPECT_EQ(stream(options(1000, 300)).arena_capacity(), 512u);
  EXPECT_EQ(stream(options(0, 1)).capacity(), 2 * lanes);  // at least 2 slots a lane
  EXPECT_EQ(stream(options(8, 1)).lanes(), lanes);
  EXPECT_EQ(stream(options(8, 1)).arena_capacity(), rill::detail::record_arena::kMinBytes);
  EXPECT_EQ(stream(options(8, 0)).arena_capacity(), 0u);
  EXPECT_THROW(stream(options((std::size_t{1} << 30) + 1)), std::invalid_argument);
}

TEST_P(StreamContract, AllocatesTheRingOnFirstSendUnlessEager) {
  stream lazy(options());
  EXPECT_FALSE(lazy.allocated());
  received r;
  EXPECT_EQ(lazy.try_receive(r), status::empty);
  EXPECT_FALSE(lazy.allocated()) << "receiving does not allocate";
  ASSERT_EQ(lazy.try_send(event::keep_alive()), status::ok);
  EXPECT_TRUE(lazy.allocated());

  stream_options eager_options = options();
  eager_options.allocate_on_first_send = false;
  stream eager(eager_options);
  EXPECT_TRUE(eager.allocated());
}

TEST_P(StreamContract, FullRingFollowsThePolicyExactly) {
  stream s(options(4));
  for (int i = 0; i < 4; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, std::to_string(i))), status::ok);
  const status fifth = s.try_send(event::text_delta(0, "4"));
  const status sixth = s.try_send(event::text_delta(0, "5"));
  received r;
  std::vector<std::string> got;
  std::vector<std::uint64_t> seqs;
  while (s.try_receive(r) == status::ok) {
    got.emplace_back(r->text());
    seqs.push_back(r->seq());
  }
  const auto c = s.counters();
  switch (GetParam().policy) {
    case backpressure::block:
      EXPECT_EQ(fifth, status::full);
      EXPECT_EQ(sixth, status::full);
      EXPECT_EQ(got, (std::vector<std::string>{"0", "1", "2", "3"}));
      EXPECT_EQ(c.dropped, 0u) << "try_send under block refuses without dropping";
      EXPECT_EQ(c.sent, 4u);
      break;
    case backpressure::drop:
      EXPECT_EQ(fifth, status::full);
      EXPECT_EQ(sixth, status::full);
      EXPECT_EQ(got, (std::vector<std::string>{"0", "1", "2", "3"}));
      EXPECT_EQ(c.dropped, 2u);
      EXPECT_EQ(c.sent, 6u);
      break;
    case backpressure::drop_oldest:
      EXPECT_EQ(fifth, status::ok);
      EXPECT_EQ(sixth, status::ok);
      EXPECT_EQ(got, (std::vector<std::string>{"2", "3", "4", "5"}));
      EXPECT_EQ(seqs.front(), 2u) << "the gap in seq tells the consumer it lagged by two";
      EXPECT_EQ(c.dropped, 2u);
      EXPECT_EQ(c.sent, 6u);
      break;
  }
  expect_quiescent_invariant(s);
}

// After a refusal for a full ring, an SPSC stream under block takes sends again only once its resume room
// is free (single sends and batches alike); every other stream refills at once. Nothing is lost or
// reordered either way.
TEST_P(StreamContract, RefusedProducerWaitsForItsResumeRoom) {
  if (GetParam().policy == backpressure::drop_oldest) GTEST_SKIP() << "evicts instead of refusing";
  stream_options o = options(64);
  o.resume_room = 8;
  stream s(o);
  const bool waits = GetParam().kind == flavour::spsc && GetParam().policy == backpressure::block;
  EXPECT_EQ(s.resume_room(), waits ? 8u : 1u);
  int sent = 0, received_count = 0;
  auto send_next = [&] {
    const status st = s.try_send(event::text_delta(0, std::to_string(sent)));
    if (st == status::ok) ++sent;
    return st;
  };
  received r;
  auto receive_next = [&] {
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->text(), std::to_string(received_count++));
  };
  while (send_next() == status::ok) ASSERT_LE(sent, 64);
  ASSERT_EQ(sent, 64);
  for (int i = 0; i < 7; ++i) receive_next();
  if (waits) {
    EXPECT_EQ(send_next(), status::full) << "7 slots free, the resume room is 8";
    const event one = event::text_delta(0, std::to_string(sent));
    status why = status::ok;
    EXPECT_EQ(s.try_send_batch(std::span<const event>(&one, 1), &why), 0u);
    EXPECT_EQ(why, status::full);
    receive_next();
    for (int i = 0; i < 8; ++i) EXPECT_EQ(send_next(), status::ok) << "the freed room, " << i;
  } else {
    for (int i = 0; i < 7; ++i) EXPECT_EQ(send_next(), status::ok) << "refills at once, " << i;
  }
  EXPECT_EQ(send_next(), status::full);
  while (s.try_receive(r) == status::ok) EXPECT_EQ(r->text(), std::to_string(received_count++));
  EXPECT_EQ(received_count, sent);
  EXPECT_EQ(s.counters().dropped, GetParam().policy == backpressure::drop ? 2u : 0u);  // the two refused
  expect_quiescent_invariant(s);
}

// A send blocked on a full ring is not let through by fewer receives than its resume room, and is woken
// (out of its park) once the room is free.
TEST_P(StreamContract, BlockedSendGoesOnOnceItsResumeRoomIsFree) {
  if (GetParam().kind != flavour::spsc || GetParam().policy != backpressure::block) {
    GTEST_SKIP() << "only SPSC streams under block wait for a resume room";
  }
  stream_options o = options(64);
  o.resume_room = 8;
  o.spin_iterations = 1;  // park at once: the wake-up under test is the futex's
  stream s(o);
  for (int i = 0; i < 64; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, std::to_string(i))), status::ok);
  ASSERT_EQ(s.try_send(event::text_delta(0, "64")), status::full);  // the refusal that starts the wait
  received r;
  for (int i = 0; i < 7; ++i) ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(s.send_for(event::text_delta(0, "64"), 20ms), status::timeout) << "7 free, the room is 8";
  std::atomic<status> late_send{status::empty};
  std::thread producer([&] {
    // Release: pairs with the acquires below; a test handshake.
    late_send.store(s.send(event::text_delta(0, "64")), std::memory_order_release);
  });
  if (wait_for_a_waiting_send(s, 2)) {  // the timed-out send_for, then the producer's
    std::this_thread::sleep_for(20ms);  // most likely parked by now; if not, the test passes without testing
    ASSERT_EQ(s.try_receive(r), status::ok);  // the 8th free slot
    EXPECT_EQ(wait_for_send_result(late_send), status::ok) << "the waiting producer was not woken";
  }
  s.close();  // releases a producer that was never woken (its send returns closed)
  producer.join();
  int next = 8;
  while (s.try_receive(r) == status::ok) EXPECT_EQ(r->text(), std::to_string(next++));
  EXPECT_EQ(next, 65);
}

TEST_P(StreamContract, CloseRefusesSendsAndEndsAfterDrain) {
  stream s(options());
  ASSERT_EQ(s.try_send(event::text_delta(0, "a")), status::ok);
  ASSERT_EQ(s.try_send(event::text_delta(0, "b")), status::ok);
  EXPECT_FALSE(s.is_closed());
  s.close();
  s.close();  // idempotent
  EXPECT_TRUE(s.is_closed());
  EXPECT_EQ(s.try_send(event::text_delta(0, "c")), status::closed);
  EXPECT_EQ(s.send(event::text_delta(0, "c")), status::closed);
  const event batch[] = {event::keep_alive()};
  status why = status::ok;
  EXPECT_EQ(s.try_send_batch(batch, &why), 0u);
  EXPECT_EQ(why, status::closed);
  rill::send_claim claim;
  EXPECT_EQ(s.try_claim(claim), status::closed);
  received r;
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "a");
  ASSERT_EQ(s.receive(r), status::ok);
  EXPECT_EQ(r->text(), "b");
  EXPECT_EQ(s.try_receive(r), status::closed);
  EXPECT_EQ(s.receive(r), status::closed);
  EXPECT_EQ(s.receive_for(r, 1ms), status::closed);
}

TEST_P(StreamContract, RangeForEndsAfterCloseAndDrain) {
  stream s(options(4));
  std::thread producer([&] {
    const rill::test::on_scope_exit close_stream(
        [&] { s.close(); });  // a failed ASSERT ends the loop below too
    for (int i = 0; i < 100; ++i) {
      // block waits; drop may refuse (counted); drop_oldest always succeeds.
      const status st = s.send(event::text_delta(0, std::to_string(i)));
      ASSERT_TRUE(st == status::ok || (st == status::full && GetParam().policy == backpressure::drop));
    }
  });
  std::uint64_t count = 0;
  std::uint64_t last_seq = 0;
  for (const event& e : s.events()) {
    if (count != 0) {
      EXPECT_GT(e.seq(), last_seq);
    }
    last_seq = e.seq();
    ++count;
  }
  producer.join();
  const auto c = s.counters();
  EXPECT_EQ(count, c.received);
  EXPECT_EQ(c.received + c.dropped, 100u);
  if (GetParam().policy == backpressure::block) {
    EXPECT_EQ(count, 100u);
  }
  expect_quiescent_invariant(s);
}

TEST_P(StreamContract, TimedCallsTimeOutWithNothingChanged) {
  stream s(options(2));
  received r;
  EXPECT_EQ(s.receive_for(r, 5ms), status::timeout);
  EXPECT_EQ(s.receive_until(r, std::chrono::steady_clock::now() - 1s), status::timeout);
  ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
  ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
  const status timed = s.send_for(event::keep_alive(), 5ms);
  if (GetParam().policy == backpressure::block) {
    EXPECT_EQ(timed, status::timeout);
    EXPECT_EQ(s.approx_size(), 2u);
    EXPECT_GE(s.counters().send_waits, 1u);
  } else if (GetParam().policy == backpressure::drop) {
    EXPECT_EQ(timed, status::full);
  } else {
    EXPECT_EQ(timed, status::ok);
  }
}

TEST_P(StreamContract, ReceiveParksCountOnlyBlockingCallsThatSlept) {
  stream_options o = options(4);
  o.allocate_on_first_send = false;  // parks are counted once the ring exists
  stream s(o);
  received r;
  received_batch batch(4);
  EXPECT_EQ(s.try_receive(r), status::empty);
  EXPECT_EQ(s.counters().receive_parks, 0u) << "a try_ call never parks";
  // Each timed call spins, then parks at least once before its deadline (more after a spurious wake-up).
  EXPECT_EQ(s.receive_for(r, 20ms), status::timeout);
  const std::uint64_t after_receive = s.counters().receive_parks;
  EXPECT_GE(after_receive, 1u);
  EXPECT_EQ(s.receive_batch_for(batch, 20ms), status::timeout);
  const std::uint64_t after_batch = s.counters().receive_parks;
  EXPECT_GT(after_batch, after_receive);
  std::size_t handled = 0;
  EXPECT_EQ(s.drain_until([](const event&, bool) {}, 4, std::chrono::steady_clock::now() + 20ms, &handled),
            status::timeout);
  const std::uint64_t after_drain = s.counters().receive_parks;
  EXPECT_GT(after_drain, after_batch);
  EXPECT_EQ(s.receive_for(r, 0ms), status::timeout);
  EXPECT_EQ(s.counters().receive_parks, after_drain) << "a deadline already passed: no park";
  ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
  EXPECT_EQ(s.receive_for(r, 10s), status::ok);
  EXPECT_EQ(s.counters().receive_parks, after_drain) << "an event was ready: no park";
  EXPECT_EQ(s.counters().send_waits, 0u);

  stream lazy(options(4));  // no ring before the first send: nothing to count in
  EXPECT_EQ(lazy.receive_for(r, 5ms), status::timeout);
  EXPECT_EQ(lazy.counters().receive_parks, 0u);
}

TEST_P(StreamContract, StopTokenCancelsBlockedCalls) {
  stream_options o = options(2);
  o.allocate_on_first_send = false;  // the receiver's park is counted
  stream s(o);
  std::stop_source stop_receive;
  std::atomic<status> receive_result{status::ok};
  std::thread receiver([&] {
    received r;
    // relaxed: read after join().
    receive_result.store(s.receive(r, stop_receive.get_token()), std::memory_order_relaxed);
  });
  wait_for_parked_receives(s, 1);
  stop_receive.request_stop();
  receiver.join();
  EXPECT_EQ(receive_result.load(std::memory_order_relaxed), status::cancelled);  // relaxed: join() ordered it

  if (GetParam().policy != backpressure::block) return;
  // The sender fills the ring itself: on a laned stream, the room a thread sees is its own lane's.
  std::stop_source stop_send;
  std::atomic<status> send_result{status::ok};
  std::atomic<bool> filling_done{false};
  std::thread sender([&] {
    const bool filled = s.try_send(event::keep_alive()) == status::ok && s.try_send(event::keep_alive()) == status::ok;
    filling_done.store(true, std::memory_order_release);  // release: the ring is full before main cancels
    if (filled) {
      const status sent = s.send(event::keep_alive(), stop_send.get_token());
      send_result.store(sent, std::memory_order_relaxed);  // relaxed: read after join()
    }
  });
  while (!filling_done.load(std::memory_order_acquire)) std::this_thread::yield();  // pairs with the release
  wait_for_a_waiting_send(s);
  std::this_thread::sleep_for(20ms);
  stop_send.request_stop();
  sender.join();
  EXPECT_EQ(send_result.load(std::memory_order_relaxed), status::cancelled);  // relaxed: join() ordered it
  EXPECT_EQ(s.approx_size(), 2u);

  std::stop_source already;
  already.request_stop();
  for (int sent = 0; s.try_send(event::keep_alive()) == status::ok; ++sent) {  // fills this thread's lane
    ASSERT_LT(sent, 64) << "a stream of capacity 2 never refused a send";
  }
  EXPECT_EQ(s.send(event::keep_alive(), already.get_token()), status::cancelled);
}

TEST_P(StreamContract, CloseWakesBlockedReceiversAndSenders) {
  stream_options o = options(2);
  o.allocate_on_first_send = false;  // the receivers' parks are counted
  stream s(o);
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  const int receivers = GetParam().kind == flavour::mpmc ? 3 : 1;
  for (int i = 0; i < receivers; ++i) {
    threads.emplace_back([&] {
      received r;
      if (s.receive(r) == status::closed) woken.fetch_add(1, std::memory_order_relaxed);  // read after join()
    });
  }
  wait_for_parked_receives(s, static_cast<std::uint64_t>(receivers));
  s.close();
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken.load(std::memory_order_relaxed), receivers);  // relaxed: join() ordered the adds

  if (GetParam().policy != backpressure::block) return;
  stream full(options(2));
  std::atomic<status> result{status::ok};
  std::atomic<bool> filling_done{false};
  std::thread sender([&] {  // fills the ring itself, as in StopTokenCancelsBlockedCalls
    const bool filled =
        full.try_send(event::keep_alive()) == status::ok && full.try_send(event::keep_alive()) == status::ok;
    filling_done.store(true, std::memory_order_release);  // release: the ring is full before main closes it
    if (filled) result.store(full.send(event::keep_alive()), std::memory_order_relaxed);  // read after join()
  });
  while (!filling_done.load(std::memory_order_acquire)) std::this_thread::yield();  // pairs with the release
  wait_for_a_waiting_send(full);
  std::this_thread::sleep_for(20ms);
  full.close();
  sender.join();
  EXPECT_EQ(result.load(std::memory_order_relaxed), status::closed);  // relaxed: join() ordered it
}

TEST_P(StreamContract, LongTextTravelsThroughTheArena) {
  stream s(options(8, 1024));
  const std::string text = long_text(300, 1);
  ASSERT_EQ(s.try_send(event::text_delta(0, text)), status::ok);
  EXPECT_GT(s.approx_arena_used(), 300u);
  received r;
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_TRUE(r->text_is_in_arena());
  EXPECT_TRUE(r.holds_arena_text());
  EXPECT_NE(r->text().data(), text.data());
  EXPECT_EQ(r->text(), text);
  r.reset();
  EXPECT_EQ(s.approx_arena_used(), 0u) << "releasing the only record frees the arena";
}

TEST_P(StreamContract, MultiFieldLongTextKeepsItsFields) {
  stream s(options(8, 4096));
  const std::string provider = long_text(50, 2), model = long_text(60, 3), request = long_text(70, 4);
  ASSERT_EQ(s.try_send(event::stream_start(provider, model, request)), status::ok);
  received r;
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->provider(), provider);
  EXPECT_EQ(r->model(), model);
  EXPECT_EQ(r->request_id(), request);
}

TEST_P(StreamContract, TooLargeTextIsRefusedWithNothingWritten) {
  stream s(options(8, 512));
  EXPECT_EQ(s.try_send(event::text_delta(0, std::string(505, 'x'))), status::too_large);
  EXPECT_EQ(s.try_send(event::text_delta(0, std::string(504, 'x'))), status::ok) << "arena minus an 8-byte header";
  stream no_arena(options(8, 0));
  EXPECT_EQ(no_arena.try_send(event::text_delta(0, std::string(41, 'x'))), status::too_large);
  EXPECT_EQ(no_arena.try_send(event::text_delta(0, std::string(40, 'x'))), status::ok);
  EXPECT_EQ(no_arena.approx_size(), 1u);
  EXPECT_EQ(no_arena.counters().dropped, 0u);
}

// A record never wraps: one that would cross the arena's end is placed at its start, behind a filler. Once
// the arena is empty, text of any size up to max_text fits wherever the last record left the arena's tail
// (sends that would not fit filler and record together used to fail with full forever).
TEST_P(StreamContract, LargestTextFitsAnEmptyArenaWhereverItsTailIs) {
  for (std::size_t first : {41u, 100u, 250u, 300u, 480u}) {
    stream s(options(8, 512));
    received r;
    ASSERT_EQ(s.try_send(event::text_delta(0, long_text(first, 1))), status::ok) << first;
    ASSERT_EQ(s.try_receive(r), status::ok);
    r.reset();  // the arena is empty again, its tail `first` bytes (rounded) in
    const std::string largest = long_text(504, 2);
    ASSERT_EQ(s.try_send(event::text_delta(1, largest)), status::ok) << "after " << first << " bytes";
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->text(), largest);
    r.reset();
    // The same through a claim with arena text, and through a blocking send.
    rill::send_claim claim;
    ASSERT_EQ(s.try_send(event::text_delta(2, long_text(first, 3))), status::ok);
    ASSERT_EQ(s.try_receive(r), status::ok);
    r.reset();
    ASSERT_EQ(s.try_claim(claim, largest.size()), status::ok) << "after " << first << " bytes";
    std::memcpy(claim.text(), largest.data(), largest.size());
    ::new (&claim.slot()) event(event::tool_args_delta(3, std::string_view(claim.text(), largest.size())));
    ASSERT_EQ(s.commit(claim), status::ok);
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->text(), largest);
    r.reset();
    ASSERT_EQ(s.try_send(event::text_delta(4, long_text(first, 5))), status::ok);
    ASSERT_EQ(s.try_receive(r), status::ok);
    r.reset();
    ASSERT_EQ(s.send_for(event::text_delta(5, largest), 1s), status::ok) << "after " << first << " bytes";
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->text(), largest);
    r.reset();
    EXPECT_EQ(s.approx_arena_used(), 0u);
    expect_quiescent_invariant(s);
  }
}

TEST_P(StreamContract, InvalidEventsAreRefused) {
  stream s(options());
  EXPECT_EQ(s.try_send(event{}), status::invalid);
  EXPECT_EQ(s.try_send(event::tool_call_start(0, "id", "")), status::invalid);
  EXPECT_EQ(s.try_send(event::lifecycle(event_kind::state_updated, std::string(70000, 'k'))), status::too_large);
  // An enum out of range in aux: refused by every send path, not only validate().
  const event bad_stop = event::message_stop(static_cast<rill::stop_reason>(200));
  const event bad_block = event::content_block_start(0, static_cast<rill::block_type>(99));
  EXPECT_EQ(s.try_send(bad_stop), status::invalid);
  EXPECT_EQ(s.send(bad_block), status::invalid);
  const event batch[] = {event::keep_alive(), bad_stop};
  status why = status::ok;
  EXPECT_EQ(s.try_send_batch(batch, &why), 1u);
  EXPECT_EQ(why, status::invalid);
  received first;
  ASSERT_EQ(s.try_receive(first), status::ok);
  EXPECT_EQ(first->kind(), event_kind::keep_alive);

  // Arena text from another stream is not this stream's to send.
  stream other(options());
  ASSERT_EQ(other.try_send(event::text_delta(0, std::string(100, 'o'))), status::ok);
  received r;
  ASSERT_EQ(other.try_receive(r), status::ok);
  ASSERT_TRUE(r->text_is_in_arena());
  EXPECT_EQ(s.try_send(*r), status::invalid);
  EXPECT_EQ(s.approx_size(), 0u);
}

TEST_P(StreamContract, FullArenaIsBackpressure) {
  stream s(options(64, 1024));
  const std::string text = long_text(200, 5);  // 208-byte records: four fit in 1024 bytes
  int accepted = 0;
  status last = status::ok;
  for (int i = 0; i < 10 && (last = s.try_send(event::text_delta(0, text))) == status::ok; ++i) ++accepted;
  if (GetParam().policy == backpressure::drop_oldest) {
    // Evicting the oldest frees its text, so sends keep succeeding.
    EXPECT_EQ(accepted, 10);
    EXPECT_EQ(s.counters().dropped, 10u - s.approx_size());
  } else {
    EXPECT_EQ(accepted, 4);
    EXPECT_EQ(last, status::full);
    received r;
    ASSERT_EQ(s.try_receive(r), status::ok);
    r.reset();
    EXPECT_EQ(s.try_send(event::text_delta(0, text)), status::ok) << "released text makes room";
  }
  expect_quiescent_invariant(s);
}

TEST_P(StreamContract, HeldTextStaysIntactWhileTheProducerKeepsSending) {
  stream s(options(64, 1024));
  const std::string first = long_text(200, 6);
  ASSERT_EQ(s.try_send(event::text_delta(0, first)), status::ok);
  received held;
  ASSERT_EQ(s.try_receive(held), status::ok);
  received other;
  for (int round = 0; round < 20; ++round) {
    const status st = s.try_send(event::text_delta(0, long_text(150, static_cast<char>(round))));
    ASSERT_TRUE(st == status::ok || st == status::full) << rill::to_string(st);
    if (s.try_receive(other) == status::ok) other.reset();
  }
  EXPECT_EQ(held->text(), first) << "text held by a consumer is never overwritten";
}

TEST_P(StreamContract, OutOfOrderReleaseFreesTheArenaOnlyPastTheOldestHolder) {
  stream s(options(8, 1024));
  ASSERT_EQ(s.try_send(event::text_delta(0, long_text(100, 1))), status::ok);
  ASSERT_EQ(s.try_send(event::text_delta(0, long_text(100, 2))), status::ok);
  received a, b;
  ASSERT_EQ(s.try_receive(a), status::ok);
  ASSERT_EQ(s.try_receive(b), status::ok);
  const std::size_t both = s.approx_arena_used();
  b.reset();
  EXPECT_EQ(s.approx_arena_used(), both) << "the older record still holds the release point";
  a.reset();
  EXPECT_EQ(s.approx_arena_used(), 0u);
}

TEST_P(StreamContract, RingAndArenaWrapAroundManyTimes) {
  stream s(options(4, 512));
  received r;
  std::uint64_t received_count = 0;
  std::int64_t last_index = -1;
  auto text_for = [](std::uint16_t i) { return long_text(41 + (i * 37u) % 150, static_cast<char>(i)); };
  auto drain = [&] {
    while (s.try_receive(r) == status::ok) {
      // block delivers every event; drop skips refused ones (no sequence number is used up); drop_oldest
      // leaves gaps in the sequence where it evicted.
      EXPECT_GT(static_cast<std::int64_t>(r->index()), last_index);
      if (GetParam().policy == backpressure::block) {
        EXPECT_EQ(r->index(), last_index + 1);
      }
      if (GetParam().policy != backpressure::drop_oldest) {
        EXPECT_EQ(r->seq(), received_count);
      }
      last_index = r->index();
      EXPECT_EQ(r->text(), text_for(r->index()));
      ++received_count;
    }
    r.reset();
  };
  // Sizes chosen so records straddle the arena's end and need filler records; the ring (4 slots) wraps
  // a hundred times.
  for (std::uint16_t i = 0; i < 400; ++i) {
    status st;
    while ((st = s.try_send(event::text_delta(i, text_for(i)))) == status::full &&
           GetParam().policy == backpressure::block) {
      drain();
    }
    if (GetParam().policy == backpressure::drop && st == status::full) {
      drain();  // the refused event is gone (counted); the next one gets room
      continue;
    }
    ASSERT_EQ(st, status::ok) << i;
    if (i % 3 == 2) drain();
  }
  drain();
  const auto c = s.counters();
  EXPECT_EQ(received_count + c.dropped, 400u);
  EXPECT_EQ(c.received, received_count);
  if (GetParam().policy == backpressure::block) {
    EXPECT_EQ(received_count, 400u);
  }
  EXPECT_EQ(s.approx_arena_used(), 0u);
}

TEST_P(StreamContract, BatchSendCountsAndOrder) {
  stream s(options(8));
  std::vector<event> batch;
  for (int i = 0; i < 12; ++i) batch.push_back(event::text_delta(0, std::to_string(i)));
  status why = status::ok;
  const std::size_t n = s.try_send_batch(batch, &why);
  const auto c = s.counters();
  switch (GetParam().policy) {
    case backpressure::block:
      EXPECT_EQ(n, 8u);
      EXPECT_EQ(why, status::full);
      break;
    case backpressure::drop:
      EXPECT_EQ(n, 12u) << "dropped events count as handled";
      EXPECT_EQ(why, status::full) << "the batch lost events";
      EXPECT_EQ(c.dropped, 4u);
      break;
    case backpressure::drop_oldest:
      EXPECT_EQ(n, 12u);
      EXPECT_EQ(why, status::ok);
      EXPECT_EQ(c.dropped, 4u);
      break;
  }
  received r;
  std::string first;
  ASSERT_EQ(s.try_receive(r), status::ok);
  first = r->text();
  EXPECT_EQ(first, GetParam().policy == backpressure::drop_oldest ? "4" : "0");
  expect_quiescent_invariant(s);
}

TEST_P(StreamContract, BlockingBatchSendDeliversEverything) {
  if (GetParam().policy != backpressure::block) GTEST_SKIP() << "send_batch only waits under block";
  stream s(options(4));
  std::vector<event> batch;
  for (int i = 0; i < 100; ++i) batch.push_back(event::text_delta(0, std::to_string(i)));
  std::thread consumer([&] {
    int taken = 0;
    // A consumer that stops early closes the stream, so the sender below fails instead of waiting forever.
    const rill::test::on_scope_exit release_sender([&] {
      if (taken != 100) s.close();
    });
    received r;
    for (; taken < 100; ++taken) {
      ASSERT_EQ(s.receive(r), status::ok);
      EXPECT_EQ(r->text(), std::to_string(taken));
    }
  });
  std::size_t sent = 0;
  EXPECT_EQ(s.send_batch(batch, &sent), status::ok);
  EXPECT_EQ(sent, 100u);
  consumer.join();
}

TEST_P(StreamContract, DrainHandsOverInPlaceWithEndOfBatchOnTheLast) {
  stream s(options(16, 2048));
  for (int i = 0; i < 5; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, long_text(60, static_cast<char>(i)))), status::ok);
  std::vector<bool> ends;
  std::vector<std::string> texts;
  const std::size_t n = s.try_drain(
      [&](const event& e, bool end_of_batch) {
        texts.emplace_back(e.text());
        ends.push_back(end_of_batch);
      },
      3);
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(ends, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(texts[2], long_text(60, 2));
  ends.clear();
  EXPECT_EQ(s.try_drain([&](const event&, bool end) { ends.push_back(end); }, 100), 2u);
  EXPECT_EQ(ends, (std::vector<bool>{false, true}));
  EXPECT_EQ(s.try_drain([](const event&, bool) {}, 100), 0u);
  EXPECT_EQ(s.approx_arena_used(), 0u);
  expect_quiescent_invariant(s);
}

// Fills a ring of `capacity` slots to the brim with text deltas "0", "1", ... (drop_oldest would evict past
// it) and empties it through `take(limit, next)`, which takes at most `limit` events, checks each against
// `next` (the count taken so far, which it advances) and returns how many it took: 5 of a full ring (more
// is waiting than it may take), then `rest_limit` for the rest; three laps that wrap the ring, 3 then the
// rest; a whole ring; then nothing.
template <class Take>
void take_exact_limits_across_the_wrap(stream& s, std::size_t capacity, std::size_t rest_limit, Take take) {
  std::uint64_t sent = 0, next = 0;
  auto fill = [&] {
    while (sent - next < capacity)
      ASSERT_EQ(s.try_send(event::text_delta(0, std::to_string(sent++))), status::ok);
  };
  fill();
  EXPECT_EQ(take(5, next), 5u);
  EXPECT_EQ(take(rest_limit, next), capacity - 5);
  for (int lap = 0; lap < 3; ++lap) {
    fill();  // the ring wraps
    EXPECT_EQ(take(3, next), 3u);
    EXPECT_EQ(take(capacity, next), capacity - 3);
  }
  fill();
  EXPECT_EQ(take(capacity, next), capacity);
  EXPECT_EQ(take(1, next), 0u);
  EXPECT_EQ(next, sent);
  expect_quiescent_invariant(s);
}

// A drain with more waiting than it may take (it then loads the next batch's slots ahead), one that
// takes the whole ring, and one with no limit: exact counts, order and end-of-batch marks across the wrap.
TEST_P(StreamContract, DrainTakesExactlyItsLimitFromAFullRingAcrossTheWrap) {
  constexpr std::size_t capacity = 16;  // one producer's room (a laned stream has `lanes` times this)
  stream s(options(capacity));
  take_exact_limits_across_the_wrap(s, capacity, std::numeric_limits<std::size_t>::max(),
                                    [&](std::size_t limit, std::uint64_t& next) {
                                      std::vector<bool> ends;
                                      const std::size_t n = s.try_drain(
                                          [&](const event& e, bool end_of_batch) {
                                            EXPECT_EQ(e.text(), std::to_string(next));
                                            ++next;
                                            ends.push_back(end_of_batch);
                                          },
                                          limit);
                                      EXPECT_EQ(ends.size(), n);
                                      for (std::size_t i = 0; i < ends.size(); ++i)
                                        EXPECT_EQ(ends[i], i + 1 == ends.size()) << i;
                                      return n;
                                    });
}

TEST_P(StreamContract, DrainConsumesWhatWasHandledWhenTheHandlerThrows) {
  stream s(options(16));
  for (int i = 0; i < 5; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, std::to_string(i))), status::ok);
  int calls = 0;
  EXPECT_THROW(s.try_drain(
                   [&](const event&, bool) {
                     if (++calls == 2) throw std::runtime_error("handler failed");
                   },
                   10),
               std::runtime_error);
  received r;
  ASSERT_EQ(s.try_receive(r), status::ok);
  // SPSC resumes right after the event that threw; MPMC also loses the event it had taken ahead (counted).
  const bool looks_ahead = GetParam().kind == flavour::mpmc || GetParam().policy == backpressure::drop_oldest;
  EXPECT_EQ(r->text(), looks_ahead ? "3" : "2");
  while (s.try_receive(r) == status::ok) {
  }
  expect_quiescent_invariant(s);
}

// The drain frees ring slots as it takes events; a handler that throws must still wake a producer that
// waits for one of them (MPMC used to wake producers only after a drain that returned).
TEST_P(StreamContract, DrainThatThrowsStillWakesABlockedProducer) {
  if (GetParam().policy != backpressure::block) GTEST_SKIP() << "only block makes a producer wait";
  stream_options o = options(2);
  o.spin_iterations = 1;  // park at once: the wake-up under test is the futex's
  stream s(o);
  std::atomic<status> last_send{status::empty};
  std::thread producer([&] {
    // Fills the ring itself (a laned stream's room is per thread), then waits for room.
    for (int n = 0; s.try_send(event::text_delta(0, std::to_string(n))) == status::ok; ++n) {
      ASSERT_LT(n, 64) << "a stream of capacity 2 never refused a send";
    }
    // Release: pairs with the acquires below; a test handshake.
    last_send.store(s.send(event::text_delta(0, "last")), std::memory_order_release);
  });
  if (wait_for_a_waiting_send(s)) {
    std::this_thread::sleep_for(20ms);  // most likely parked by now; if not, the test passes without testing
    EXPECT_THROW(s.try_drain([](const event&, bool) { throw std::runtime_error("handler failed"); }, 8),
                 std::runtime_error);
    EXPECT_EQ(wait_for_send_result(last_send), status::ok) << "the waiting producer was not woken";
  }
  s.close();  // releases a producer that was never woken (its send returns closed)
  producer.join();
}

TEST_P(StreamContract, BlockingDrainWaitsForDataAndEndsOnClose) {
  stream s(options(8));
  std::thread producer([&] {
    const rill::test::on_scope_exit close_stream([&] { s.close(); });  // the drain below ends either way
    std::this_thread::sleep_for(10ms);
    ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
    std::this_thread::sleep_for(10ms);
  });
  std::size_t handled = 0, total = 0;
  status st;
  while ((st = s.drain_until([](const event&, bool) {}, 8, stream::time_point::max(), &handled)) == status::ok) {
    total += handled;
  }
  producer.join();
  EXPECT_EQ(st, status::closed);
  EXPECT_EQ(total, 1u);
  EXPECT_EQ(s.drain_until([](const event&, bool) {}, 8, std::chrono::steady_clock::now() + 1ms), status::closed);
}

TEST_P(StreamContract, BatchReceiveCopiesOutInOrderAndFreesTheSlotsAtOnce) {
  stream s(options(8));
  for (int i = 0; i < 8; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, std::to_string(i))), status::ok);
  received_batch batch(3);
  ASSERT_EQ(s.try_receive_batch(batch), status::ok);
  ASSERT_EQ(batch.size(), 3u);
  // The three slots are free while the batch still holds its copies: the producer refills them.
  for (int i = 8; i < 11; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, std::to_string(i))), status::ok);
  std::vector<std::string> texts;
  std::vector<std::uint64_t> seqs;
  std::vector<std::size_t> sizes;
  do {
    sizes.push_back(batch.size());
    for (const event& e : batch) {
      texts.emplace_back(e.text());
      seqs.push_back(e.seq());
    }
  } while (s.try_receive_batch(batch) == status::ok);
  EXPECT_TRUE(batch.empty()) << "a receive that finds nothing leaves the batch empty";
  EXPECT_EQ(sizes, (std::vector<std::size_t>{3, 3, 3, 2}));
  ASSERT_EQ(texts.size(), 11u);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(texts[i], std::to_string(i));
    EXPECT_EQ(seqs[i], i);
  }
  const auto c = s.counters();
  EXPECT_EQ(c.received, 11u);
  expect_quiescent_invariant(s);
}

// The same for batch receives: a batch takes its capacity when more is waiting (and then loads the next
// batch's slots ahead), exact counts and order across the wrap.
TEST_P(StreamContract, BatchReceiveTakesExactlyItsCapacityFromAFullRingAcrossTheWrap) {
  constexpr std::size_t capacity = 16;  // one producer's room (a laned stream has `lanes` times this)
  stream s(options(capacity));
  take_exact_limits_across_the_wrap(s, capacity, capacity, [&](std::size_t limit, std::uint64_t& next) {
    received_batch batch(limit);
    if (s.try_receive_batch(batch) != status::ok) return std::size_t{0};
    for (const event& e : batch) EXPECT_EQ(e.text(), std::to_string(next++));
    return batch.size();
  });
}

TEST_P(StreamContract, BatchReceiveHoldsArenaTextUntilReleased) {
  stream s(options(8, 2048));
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(s.try_send(event::text_delta(0, long_text(300, static_cast<char>(i)))), status::ok);
  }
  received_batch batch(8);
  ASSERT_EQ(s.try_receive_batch(batch), status::ok);
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_TRUE(batch.holds_arena_text());
  const std::size_t held = s.approx_arena_used();
  EXPECT_GT(held, 900u);
  // The producer sends more long text while the batch holds its three records: they stay intact.
  constexpr int extra = 2;
  for (int i = 0; i < extra; ++i) {
    ASSERT_EQ(s.try_send(event::text_delta(0, long_text(300, static_cast<char>(10 + i)))), status::ok);
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(batch[i].text_is_in_arena());
    EXPECT_EQ(batch[i].text(), long_text(300, static_cast<char>(i)));
  }
  // The next receive releases what the batch held before it copies the next events out.
  ASSERT_EQ(s.try_receive_batch(batch), status::ok);
  ASSERT_EQ(batch.size(), static_cast<std::size_t>(extra));
  for (int i = 0; i < extra; ++i) EXPECT_EQ(batch[i].text(), long_text(300, static_cast<char>(10 + i)));
  batch.reset();
  EXPECT_TRUE(batch.empty());
  EXPECT_FALSE(batch.holds_arena_text());
  EXPECT_EQ(s.approx_arena_used(), 0u) << "every record released";
  expect_quiescent_invariant(s);
}

TEST_P(StreamContract, BatchWithInlineTextOnlyHoldsNoArenaText) {
  stream s(options(8));
  ASSERT_EQ(s.try_send(event::text_delta(0, "short")), status::ok);
  received_batch batch(4);
  ASSERT_EQ(s.try_receive_batch(batch), status::ok);
  EXPECT_FALSE(batch.holds_arena_text());
  EXPECT_EQ(batch.events().size(), 1u);
  EXPECT_EQ(batch.events()[0].text(), "short");
}

TEST_P(StreamContract, BatchWhoseLastEventAloneHasArenaTextHoldsIt) {
  stream s(options(8, 2048));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, "short")), status::ok);
  ASSERT_EQ(s.try_send(event::text_delta(0, long_text(300, 'z'))), status::ok);
  received_batch batch(4);
  ASSERT_EQ(s.try_receive_batch(batch), status::ok);
  ASSERT_EQ(batch.size(), 4u);
  EXPECT_TRUE(batch.holds_arena_text()) << "the one arena record is found wherever it sits in the batch";
  EXPECT_EQ(batch[3].text(), long_text(300, 'z'));
  EXPECT_GT(s.approx_arena_used(), 300u);
  batch.reset();
  EXPECT_EQ(s.approx_arena_used(), 0u) << "reset released the record";
  expect_quiescent_invariant(s);
}

TEST_P(StreamContract, MovedBatchKeepsItsTextAndTheSourceIsRefused) {
  stream s(options(8, 2048));
  ASSERT_EQ(s.try_send(event::text_delta(0, long_text(200, 3))), status::ok);
  ASSERT_EQ(s.try_send(event::text_delta(0, "after")), status::ok);
  received_batch first(1);
  ASSERT_EQ(s.try_receive_batch(first), status::ok);
  received_batch moved(std::move(first));
  EXPECT_EQ(moved.capacity(), 1u);
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].text(), long_text(200, 3));
  EXPECT_TRUE(moved.holds_arena_text());
  EXPECT_EQ(first.capacity(), 0u);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_TRUE(first.empty());
  EXPECT_EQ(s.try_receive_batch(first), status::invalid) << "a moved-from batch has no room";
  EXPECT_EQ(s.approx_size(), 1u) << "nothing was taken for it";
  received_batch other(4);
  other = std::move(moved);
  EXPECT_EQ(other[0].text(), long_text(200, 3));
  other.reset();
  EXPECT_EQ(s.approx_arena_used(), 0u);
  ASSERT_EQ(s.try_receive_batch(other), status::ok);
  EXPECT_EQ(other[0].text(), "after");
}

TEST_P(StreamContract, BatchReceiveEndsAfterCloseAndDrain) {
  stream s(options(8));
  ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
  ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
  s.close();
  received_batch batch(8);
  ASSERT_EQ(s.receive_batch(batch), status::ok);
  EXPECT_EQ(batch.size(), 2u);
  EXPECT_EQ(s.receive_batch(batch), status::closed);
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(s.try_receive_batch(batch), status::closed);
}

TEST_P(StreamContract, BlockingBatchReceiveWaitsTimesOutAndCancels) {
  stream s(options(8));
  received_batch batch(8);
  EXPECT_EQ(s.receive_batch_for(batch, 5ms), status::timeout);
  EXPECT_TRUE(batch.empty());
  std::thread producer([&] {
    std::this_thread::sleep_for(10ms);
    const status sent = s.try_send(event::keep_alive());
    EXPECT_EQ(sent, status::ok);
    if (sent != status::ok) s.close();  // the receive below must not wait forever
  });
  EXPECT_EQ(s.receive_batch(batch), status::ok);
  EXPECT_EQ(batch.size(), 1u);
  producer.join();
  std::stop_source stop;
  std::thread canceller([&] {
    std::this_thread::sleep_for(10ms);
    stop.request_stop();
  });
  EXPECT_EQ(s.receive_batch(batch, stop.get_token()), status::cancelled);
  canceller.join();
  std::thread closer([&] {
    std::this_thread::sleep_for(10ms);
    s.close();
  });
  EXPECT_EQ(s.receive_batch_until(batch, stream::time_point::max()), status::closed);
  closer.join();
}

TEST_P(StreamContract, BatchReceiveWakesABlockedProducer) {
  if (GetParam().policy != backpressure::block) GTEST_SKIP() << "only block makes a producer wait";
  stream s(options(4));
  constexpr int kEvents = 200;
  std::thread producer([&] {
    const rill::test::on_scope_exit close_stream([&] { s.close(); });  // the receive loop ends either way
    for (int i = 0; i < kEvents; ++i) ASSERT_EQ(s.send(event::text_delta(0, std::to_string(i))), status::ok);
  });
  // Receive only once the producer waits for room, so the batch receive is what must wake it.
  wait_for_a_waiting_send(s);
  received_batch batch(3);
  int next = 0;
  while (s.receive_batch(batch) == status::ok) {
    for (const event& e : batch) EXPECT_EQ(e.text(), std::to_string(next++));
  }
  producer.join();
  EXPECT_EQ(next, kEvents);
}

TEST(ReceivedBatch, ZeroCapacityIsRefused) { EXPECT_THROW(received_batch(0), std::invalid_argument); }

TEST_P(StreamContract, ClaimBuildsInPlaceAndCommitPublishes) {
  stream s(options(8, 2048));
  rill::send_claim claim;
  ASSERT_EQ(s.try_claim(claim), status::ok);
  ::new (&claim.slot()) event(event::text_delta(1, "in place"));
  ASSERT_EQ(s.commit(claim), status::ok);
  EXPECT_FALSE(claim.active());

  // Text written straight into the reserved arena bytes, then referred to.
  const std::string text = long_text(300, 7);
  ASSERT_EQ(s.try_claim(claim, text.size()), status::ok);
  ASSERT_NE(claim.text(), nullptr);
  std::memcpy(claim.text(), text.data(), text.size());
  ::new (&claim.slot()) event(event::tool_args_delta(2, std::string_view(claim.text(), text.size())));
  ASSERT_EQ(s.commit(claim), status::ok);

  // Borrowed text from elsewhere is copied at commit.
  ASSERT_EQ(s.try_claim(claim), status::ok);
  ::new (&claim.slot()) event(event::text_delta(3, text));
  ASSERT_EQ(s.commit(claim), status::ok);

  received r;
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "in place");
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), text);
  EXPECT_EQ(r->index(), 2);
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), text);
  EXPECT_EQ(r->seq(), 2u);
  r.reset();
  EXPECT_EQ(s.approx_arena_used(), 0u);
}

TEST_P(StreamContract, ClaimStagesTheEventInTheClaimUntilCommit) {
  stream s(options(4));
  rill::send_claim claim;
  ASSERT_EQ(s.try_claim(claim), status::ok);
  // slot() is the claim's own staging event, never ring memory a consumer may be polling.
  const auto* slot_bytes = reinterpret_cast<const char*>(&claim.slot());
  const auto* claim_bytes = reinterpret_cast<const char*>(&claim);
  EXPECT_GE(slot_bytes, claim_bytes);
  EXPECT_LE(slot_bytes + sizeof(event), claim_bytes + sizeof(claim));
  ::new (&claim.slot()) event(event::text_delta(5, "staged"));
  received r;
  EXPECT_EQ(s.try_receive(r), status::empty) << "a built but uncommitted event is invisible";
  ASSERT_EQ(s.commit(claim), status::ok);
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "staged");
  EXPECT_EQ(r->index(), 5);
  EXPECT_EQ(r->seq(), 0u);

  if (GetParam().policy == backpressure::drop_oldest) return;  // a claim on a full ring evicts there
  // A full ring refuses the claim; a claim holds the last free slot until commit or abort.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
  ASSERT_EQ(s.try_claim(claim), status::ok);
  ::new (&claim.slot()) event(event::text_delta(6, "last"));
  ASSERT_EQ(s.commit(claim), status::ok);
  rill::send_claim refused;
  EXPECT_EQ(s.try_claim(refused), status::full);
  EXPECT_FALSE(refused.active());
  for (std::uint64_t k = 1; k <= 4; ++k) {
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->seq(), k);
  }
  EXPECT_EQ(r->text(), "last");
  EXPECT_EQ(s.try_receive(r), status::empty);
}

TEST_P(StreamContract, RefusedEventInABatchLeavesNothingVisibleBehindIt) {
  stream s(options(8));
  // Wrap the ring first, so the slots behind the failure hold an older lap's published events.
  received r;
  for (int i = 0; i < 11; ++i) {
    ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
    ASSERT_EQ(s.try_receive(r), status::ok);
  }
  const event batch[] = {event::text_delta(0, "a"), event::text_delta(1, "b"), event(),  // invalid
                         event::text_delta(3, "d")};
  status why = status::ok;
  EXPECT_EQ(s.try_send_batch(batch, &why), 2u);
  EXPECT_EQ(why, status::invalid);
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "a");
  EXPECT_EQ(r->seq(), 11u);
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "b");
  std::size_t drained = 0;
  EXPECT_EQ(s.try_drain([&](const event&, bool) { ++drained; }, 8), 0u);
  EXPECT_EQ(s.try_receive(r), status::empty);
  ASSERT_EQ(s.try_send(event::text_delta(9, "next")), status::ok);
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "next");
  EXPECT_EQ(r->seq(), 13u);
}

TEST_P(StreamContract, BatchReceiveSkipsAbortedAndFailedClaimsBetweenEvents) {
  stream s(options(8, 2048));
  rill::send_claim claim;
  ASSERT_EQ(s.try_send(event::text_delta(0, "a")), status::ok);
  ASSERT_EQ(s.try_claim(claim), status::ok);
  s.abort(claim);
  ASSERT_EQ(s.try_send(event::text_delta(1, "b")), status::ok);
  ASSERT_EQ(s.try_claim(claim, 100), status::ok);
  ::new (&claim.slot()) event();  // kind none: invalid
  EXPECT_EQ(s.commit(claim), status::invalid);
  ASSERT_EQ(s.try_send(event::text_delta(2, "c")), status::ok);
  received_batch batch(8);
  ASSERT_EQ(s.try_receive_batch(batch), status::ok);
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[0].text(), "a");
  EXPECT_EQ(batch[1].text(), "b");
  EXPECT_EQ(batch[2].text(), "c");
  batch.reset();
  EXPECT_EQ(s.try_receive_batch(batch), status::empty);
  EXPECT_EQ(s.approx_arena_used(), 0u);
  expect_quiescent_invariant(s);
}

TEST_P(StreamContract, FailedCommitAndAbortDeliverNothing) {
  stream s(options(8, 2048));
  rill::send_claim claim;
  ASSERT_EQ(s.try_claim(claim, 100), status::ok);
  ::new (&claim.slot()) event();  // kind none: invalid
  EXPECT_EQ(s.commit(claim), status::invalid);
  ASSERT_EQ(s.try_claim(claim), status::ok);
  s.abort(claim);
  EXPECT_FALSE(claim.active());
  ASSERT_EQ(s.try_send(event::text_delta(0, "after")), status::ok);
  received r;
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "after");
  EXPECT_EQ(s.try_receive(r), status::empty);
  expect_one_event_delivered_and_nothing_held(s);
}

// A claim taken before close() and committed after it is a send after close: closed, nothing delivered,
// its reserved text freed, and consumers see the stream end.
TEST_P(StreamContract, CommitAfterCloseIsRefused) {
  stream s(options(8, 2048));
  ASSERT_EQ(s.try_send(event::text_delta(0, "before")), status::ok);
  rill::send_claim claim;
  ASSERT_EQ(s.try_claim(claim, 100), status::ok);
  std::memcpy(claim.text(), long_text(100, 1).data(), 100);
  ::new (&claim.slot()) event(event::text_delta(0, std::string_view(claim.text(), 100)));
  s.close();
  EXPECT_EQ(s.commit(claim), status::closed);
  EXPECT_FALSE(claim.active());
  received r;
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "before");
  EXPECT_EQ(s.try_receive(r), status::closed);
  expect_one_event_delivered_and_nothing_held(s);
}

// A void slot (an aborted claim or a refused commit) still in the ring is neither an event sent nor one
// buffered, and the events received around it count as received while it waits there.
TEST_P(StreamContract, CountersSkipVoidSlotsStillBuffered) {
  stream s(options(8, 2048));
  ASSERT_EQ(s.try_send(event::text_delta(0, "first")), status::ok);
  rill::send_claim claim;
  ASSERT_EQ(s.try_claim(claim), status::ok);
  s.abort(claim);
  ASSERT_EQ(s.try_claim(claim, 100), status::ok);
  ::new (&claim.slot()) event();  // kind none: invalid
  EXPECT_EQ(s.commit(claim), status::invalid);
  ASSERT_EQ(s.try_send(event::text_delta(0, "last")), status::ok);
  rill::stream_counters c = s.counters();
  EXPECT_EQ(c.sent, 2u);
  EXPECT_EQ(c.buffered, 2u);
  EXPECT_EQ(c.received, 0u);
  received r;
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "first");
  c = s.counters();
  EXPECT_EQ(c.received, 1u);
  EXPECT_EQ(c.buffered, 1u);
  expect_quiescent_invariant(s);
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "last");
  c = s.counters();
  EXPECT_EQ(c.sent, 2u);
  EXPECT_EQ(c.received, 2u);
  EXPECT_EQ(c.buffered, 0u);
  expect_quiescent_invariant(s);
}

// A claim staged with arena text the caller does not own (a received event forwarded as is) is refused,
// and the refusal must leave that text alone: its owner still holds it.
TEST_P(StreamContract, RefusedCommitLeavesArenaTextItDoesNotOwn) {
  stream s(options(8, 1024));
  const std::string text = long_text(200, 3);
  ASSERT_EQ(s.try_send(event::text_delta(0, text)), status::ok);
  received held;
  ASSERT_EQ(s.try_receive(held), status::ok);
  ASSERT_TRUE(held->text_is_in_arena());
  rill::send_claim claim;
  ASSERT_EQ(s.try_claim(claim), status::ok);
  ::new (&claim.slot()) event(*held);
  EXPECT_EQ(s.commit(claim), status::invalid);
  // Churn the arena: text freed by mistake gets overwritten once the arena wraps; text still held stops
  // the wrap (full) instead.
  received r;
  int sent = 0;
  for (; sent < 16; ++sent) {
    const status st = s.try_send(event::text_delta(0, long_text(200, static_cast<char>(sent))));
    if (st != status::ok) {
      EXPECT_EQ(st, status::full);
      break;
    }
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->text(), long_text(200, static_cast<char>(sent)));
  }
  EXPECT_LT(sent, 16) << "the arena wrapped past the held text";
  EXPECT_EQ(held->text(), text) << "the refused commit released text it did not own";
}

// When the arena's oldest record is text a consumer still holds, evicting buffered events frees no room
// for long text: drop_oldest refuses the send (full, counted dropped) and must evict nothing on the way.
TEST_P(StreamContract, DropOldestEvictsNothingWhileAReceiverPinsTheArena) {
  if (GetParam().policy != backpressure::drop_oldest) GTEST_SKIP();
  stream s(options(16, 1024));  // 1024 arena bytes: four 208-byte records
  ASSERT_EQ(s.try_send(event::text_delta(0, long_text(200, 0))), status::ok);
  received held;
  ASSERT_EQ(s.try_receive(held), status::ok);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, std::to_string(i))), status::ok);
  for (char i = 1; i <= 3; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, long_text(200, i))), status::ok);
  EXPECT_EQ(s.try_send(event::text_delta(0, long_text(200, 4))), status::full);
  rill::stream_counters c = s.counters();
  EXPECT_EQ(c.dropped, 1u) << "only the refused send";
  EXPECT_EQ(c.buffered, 8u);
  received r;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->text(), std::to_string(i));
  }
  for (char i = 1; i <= 3; ++i) {
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->text(), long_text(200, i));
  }
  EXPECT_EQ(held->text(), long_text(200, 0));
  held.reset();
  r.reset();
  EXPECT_EQ(s.try_send(event::text_delta(0, long_text(200, 5))), status::ok) << "room once nothing is held";
  expect_quiescent_invariant(s);
}

// A claim that asks for arena text makes room as a send does under drop_oldest: it evicts the oldest events
// whose text blocks the arena, and when a consumer holds the oldest record it refuses (full, counted
// dropped) without evicting.
TEST_P(StreamContract, DropOldestClaimEvictsForTextRoomUnlessAReceiverPinsIt) {
  if (GetParam().policy != backpressure::drop_oldest) GTEST_SKIP();
  stream s(options(16, 1024));  // four 208-byte records
  for (char i = 0; i < 4; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, long_text(200, i))), status::ok);
  rill::send_claim claim;
  ASSERT_EQ(s.try_claim(claim, 200), status::ok);
  std::memcpy(claim.text(), long_text(200, 9).data(), 200);
  ::new (&claim.slot()) event(event::text_delta(0, std::string_view(claim.text(), 200)));
  ASSERT_EQ(s.commit(claim), status::ok);
  EXPECT_EQ(s.counters().dropped, 1u) << "the oldest event, evicted for the claim's text";
  received held;
  ASSERT_EQ(s.try_receive(held), status::ok);
  EXPECT_EQ(held->text(), long_text(200, 1));
  EXPECT_EQ(held->seq(), 1u) << "a gap of one";
  // `held` pins the arena's oldest record now: no eviction can free room.
  EXPECT_EQ(s.try_claim(claim, 200), status::full);
  rill::stream_counters c = s.counters();
  EXPECT_EQ(c.dropped, 2u);
  EXPECT_EQ(c.buffered, 3u);
  received r;
  for (int i : {2, 3, 9}) {
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->text(), long_text(200, static_cast<char>(i)));
  }
  expect_quiescent_invariant(s);
}

// Text an open claim reserved cannot be freed by evicting: a send that finds it the arena's oldest record
// refuses (full, counted dropped) without evicting the events ahead of the claim's slot.
TEST_P(StreamContract, DropOldestEvictsNothingBehindAnOpenClaimsText) {
  if (GetParam().policy != backpressure::drop_oldest) GTEST_SKIP();
  stream s(options(16, 1024));  // four 208-byte records
  for (int i = 0; i < 5; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, std::to_string(i))), status::ok);
  rill::send_claim claim;
  ASSERT_EQ(s.try_claim(claim, 200), status::ok);
  for (char i = 1; i <= 3; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, long_text(200, i))), status::ok);
  EXPECT_EQ(s.try_send(event::text_delta(0, long_text(200, 4))), status::full);
  EXPECT_EQ(s.counters().dropped, 1u) << "only the refused send";
  std::memcpy(claim.text(), long_text(200, 9).data(), 200);
  ::new (&claim.slot()) event(event::text_delta(0, std::string_view(claim.text(), 200)));
  ASSERT_EQ(s.commit(claim), status::ok);
  // Committed, the claim's text is its lane's: evicting reaches it now, behind the five events ahead of it.
  ASSERT_EQ(s.try_send(event::text_delta(0, long_text(200, 5))), status::ok);
  EXPECT_EQ(s.counters().dropped, 7u) << "the refused send, then five short events and the claim's";
  received r;
  for (int i : {1, 2, 3, 5}) {
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->text(), long_text(200, static_cast<char>(i)));
  }
  expect_quiescent_invariant(s);
}

// On MPMC a thread may send while it has a claim open. Under drop_oldest, when that claim is the oldest
// slot of a full lane, no eviction can succeed: try_send must give up (full, counted dropped), not spin.
TEST_P(StreamContract, DropOldestSendGivesUpBehindItsOwnOpenClaim) {
  if (GetParam().kind != flavour::mpmc || GetParam().policy != backpressure::drop_oldest) GTEST_SKIP();
  stream s(options(4));
  rill::send_claim claim;
  ASSERT_EQ(s.try_claim(claim), status::ok);
  status last = status::ok;
  int sent = 0;
  for (; sent < 64 && (last = s.try_send(event::keep_alive())) == status::ok; ++sent) {
  }
  EXPECT_EQ(last, status::full) << "a full lane behind this thread's own claim";
  ::new (&claim.slot()) event(event::text_delta(0, "claimed"));
  EXPECT_EQ(s.commit(claim), status::ok);
  received r;
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "claimed");
  EXPECT_GE(s.counters().dropped, 1u);
}

TEST_P(StreamContract, StampsEventsWithTheChosenClock) {
  event e = event::keep_alive();
  e.set_timestamp(rill::clock_kind::steady, 42);
  received r;
  // Each clock, through try_send (its inline path takes coarse and tsc) and through a batch.
  for (const rill::clock_kind clock : {rill::clock_kind::coarse, rill::clock_kind::tsc, rill::clock_kind::steady}) {
    stream_options o = options();
    o.stamping = clock;
    stream s(o);
    ASSERT_EQ(s.try_send(e), status::ok);
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->timestamp_clock(), clock);
    EXPECT_GT(r->timestamp(), 0u);
    EXPECT_NE(r->timestamp(), 42u);
    ASSERT_EQ(s.try_send_batch(std::span<const event>(&e, 1)), 1u);
    ASSERT_EQ(s.try_receive(r), status::ok);
    EXPECT_EQ(r->timestamp_clock(), clock);
    EXPECT_GT(r->timestamp(), 0u);
  }

  // The default is no stamping: the producer's own stamp travels unchanged.
  EXPECT_EQ(stream_options{}.stamping, rill::clock_kind::none);
  stream own(options());
  ASSERT_EQ(own.try_send(e), status::ok);
  ASSERT_EQ(own.try_receive(r), status::ok);
  EXPECT_EQ(r->timestamp_clock(), rill::clock_kind::steady);
  EXPECT_EQ(r->timestamp(), 42u) << "stamping none keeps the producer's stamp";
}

// A batch delivers each event as try_send would: the same bytes, its own sequence number, the stream's stamp.
// The batch crosses the ring's end; it mixes kinds, inline text of every length, long (arena) text and a
// numeric payload; and every event carries a stale sequence number (the position of the slot after its own,
// the one a consumer polls next) and a stale stamp, which the send must overwrite.
TEST_P(StreamContract, BatchDeliversEveryByteWithItsSequenceAndStamp) {
  constexpr std::uint64_t kStart = 11;  // 16 slots: the batch's events 5-15 go round the end
  for (const rill::clock_kind clock :
       {rill::clock_kind::none, rill::clock_kind::coarse, rill::clock_kind::tsc, rill::clock_kind::steady}) {
    SCOPED_TRACE(static_cast<int>(clock));
    stream_options o = options(16, 8192);
    o.stamping = clock;
    stream s(o);
    received r;
    for (std::uint64_t i = 0; i < kStart; ++i) {
      ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
      ASSERT_EQ(s.try_receive(r), status::ok);
    }
    const std::string borrowed = long_text(300, 'q');  // outlives the send, which copies it into the arena
    std::vector<event> batch;
    for (std::uint16_t i = 0; i < 16; ++i) {
      event e;
      switch (i % 4) {
        case 0:
          e = event::text_delta(i, long_text(i * 40u / 15u, static_cast<char>(i)));
          break;  // 0-40 bytes
        case 1:
          e = event::tool_args_delta(i, long_text(40 - i, static_cast<char>(i)), 3);
          break;
        case 2:
          e = i == 6 ? event::text_delta(i, borrowed) : event::usage({i, 2u * i, 3u * i});
          break;
        default:
          e = event::keep_alive();
          break;
      }
      e.set_seq(kStart + i + 1);
      e.set_timestamp(rill::clock_kind::steady, 1000 + i);
      batch.push_back(e);
    }
    ASSERT_EQ(s.try_send_batch(batch), batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      SCOPED_TRACE(i);
      ASSERT_EQ(s.try_receive(r), status::ok);
      EXPECT_EQ(r->seq(), kStart + i);
      EXPECT_TRUE(r->same_content(batch[i]));
      if (clock == rill::clock_kind::none) {
        EXPECT_EQ(r->timestamp_clock(), rill::clock_kind::steady);
        EXPECT_EQ(r->timestamp(), 1000 + i);
      } else {
        EXPECT_EQ(r->timestamp_clock(), clock);
        EXPECT_GT(r->timestamp(), 0u);
      }
      if (batch[i].text_is_inline()) {
        event expected = batch[i];
        expected.set_seq(kStart + i);
        expected.set_timestamp(r->timestamp_clock(), r->timestamp());
        EXPECT_EQ(std::memcmp(&*r, &expected, sizeof(event)), 0) << "every other byte as sent";
      }
    }
    EXPECT_EQ(s.try_receive(r), status::empty);
    EXPECT_EQ(s.approx_arena_used(), 0u);
  }
}

TEST(Stream, ResumeRoomDefaultsToASixteenthOfTheRingAndIsValidated) {
  auto resume_room_of = [](std::size_t capacity, std::size_t resume_room, flavour kind = flavour::spsc,
                           backpressure policy = backpressure::block) {
    stream_options o;
    o.capacity = capacity;
    o.resume_room = resume_room;
    o.kind = kind;
    o.policy = policy;
    return stream(o).resume_room();
  };
  EXPECT_EQ(resume_room_of(1024, 0), 64u);
  EXPECT_EQ(resume_room_of(65536, 0), 4096u);
  EXPECT_EQ(resume_room_of(1000, 0), 64u) << "a sixteenth of the rounded capacity";
  EXPECT_EQ(resume_room_of(8, 0), 1u) << "at least one slot";
  EXPECT_EQ(resume_room_of(1024, 100), 64u) << "rounded down to a power of two";
  EXPECT_EQ(resume_room_of(1024, 1), 1u);
  EXPECT_EQ(resume_room_of(1024, 1024), 1024u);
  EXPECT_EQ(resume_room_of(1024, 0, flavour::spsc, backpressure::drop), 1u);
  EXPECT_EQ(resume_room_of(1024, 0, flavour::spsc, backpressure::drop_oldest), 1u);
  EXPECT_EQ(resume_room_of(1024, 0, flavour::mpmc, backpressure::block), 1u);
  EXPECT_THROW(resume_room_of(1024, 1025), std::invalid_argument);
  EXPECT_THROW(resume_room_of(1024, 1025, flavour::mpmc), std::invalid_argument)
      << "checked for every stream";
}

TEST(Stream, RejectsUnknownOptions) {
  stream_options o;
  o.kind = static_cast<flavour>(9);
  EXPECT_THROW(stream{o}, std::invalid_argument);
  o = {};
  o.policy = static_cast<backpressure>(9);
  EXPECT_THROW(stream{o}, std::invalid_argument);
  o = {};
  o.stamping = static_cast<rill::clock_kind>(9);
  EXPECT_THROW(stream{o}, std::invalid_argument);
}

TEST(Stream, ControlBlockIsOneCacheLineOfItsOwn) {
  // The manager's memory budget (256 bytes per idle stream, index entry included) depends on the size; the
  // alignment keeps whatever a user puts next to a stream off the line every send and receive reads.
  EXPECT_EQ(sizeof(stream), 64u);
  EXPECT_EQ(alignof(stream), 64u);
  struct embedded {
    char before;
    stream s;
    char after;
  };
  embedded e;
  const auto line = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) / 64; };
  EXPECT_NE(line(&e.before), line(&e.s));
  EXPECT_NE(line(&e.after), line(&e.s));
  EXPECT_EQ(line(&e.s), line(reinterpret_cast<const char*>(&e.s) + sizeof(stream) - 1));
}

TEST(RecordArena, FillerRecordsPadTheEndAndReleaseWithTheNextRecord) {
  alignas(8) static char memory[256];
  std::memset(memory, 0, sizeof memory);
  rill::detail::record_arena arena;
  arena.init(memory, sizeof memory, nullptr);
  char* a = arena.try_claim<false>(100);  // record 0..112
  char* b = arena.try_claim<false>(100);  // record 112..224
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(arena.try_claim<false>(100), nullptr) << "only 32 bytes left before the end";
  arena.release(a);
  EXPECT_EQ(arena.head_position(), 112u);
  char* c = arena.try_claim<false>(80);  // needs 88 bytes: 32-byte filler at 224, then 0..88
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c, memory + 8) << "wrapped to the start";
  EXPECT_EQ(arena.tail_position(), 256u + 88u);
  arena.release(b);
  EXPECT_EQ(arena.head_position(), 256u) << "the filler after b is released with it";
  arena.release(c);
  EXPECT_EQ(arena.head_position(), arena.tail_position());
  for (char byte : memory) ASSERT_EQ(byte, 0) << "released space is zeroed";
}

TEST(RecordArena, PeekOldestReportsWhoHoldsTheRecordTheHeadWaitsOn) {
  using arena_t = rill::detail::record_arena;
  alignas(8) static char memory[256];
  std::memset(memory, 0, sizeof memory);
  arena_t arena;
  arena.init(memory, sizeof memory, nullptr);
  std::uint32_t state = 12345;
  EXPECT_EQ(arena.peek_oldest(state), arena_t::oldest::none);
  EXPECT_EQ(state, 12345u);
  char* a = arena.try_claim<true>(40, 3);
  char* b = arena.try_claim<true>(40);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(arena.peek_oldest(state), arena_t::oldest::read);
  EXPECT_EQ(state, 3u << arena_t::kTagShift) << "held, with its claimer's tag";
  arena.retag(a, 5);
  ASSERT_EQ(arena.peek_oldest(state), arena_t::oldest::read);
  EXPECT_EQ(state, 5u << arena_t::kTagShift);
  arena.mark_delivered(a);
  ASSERT_EQ(arena.peek_oldest(state), arena_t::oldest::read);
  EXPECT_EQ(state, arena_t::kDelivered);
  arena.release(a);
  ASSERT_EQ(arena.peek_oldest(state), arena_t::oldest::read);
  EXPECT_EQ(state, arena_t::kHeld) << "the untagged record behind it";
  arena.mark_delivered(b);
  arena.release(b);  // a delivered record releases and advances like any other
  EXPECT_EQ(arena.peek_oldest(state), arena_t::oldest::none);
  EXPECT_EQ(arena.head_position(), arena.tail_position());
  EXPECT_EQ(arena.try_claim<true>(40, arena_t::kMaxTag), memory + 96 + 8);
  ASSERT_EQ(arena.peek_oldest(state), arena_t::oldest::read);
  EXPECT_EQ(state >> arena_t::kTagShift, arena_t::kMaxTag);
}

}  // namespace

// The MPMC ring keeps its turns remapped so that consecutive tickets sit on different cache lines; every
// capacity must still map each ticket to its own turn (a collision would lose or repeat events).
TEST(MpmcStream, EveryCapacityDeliversThreeLapsInOrder) {
  for (const std::size_t capacity : {2u, 16u, 32u, 64u, 256u, 4096u}) {
    rill::stream_options o;
    o.kind = rill::flavour::mpmc;
    o.capacity = capacity;
    o.stamping = rill::clock_kind::none;
    rill::stream s(o);
    rill::received r;
    std::uint64_t next = 0;
    for (std::uint64_t sent = 0; sent < 3 * capacity;) {
      const std::uint64_t progress = sent + next;
      while (sent < 3 * capacity && s.try_send(rill::event::keep_alive()) == rill::status::ok) ++sent;
      while (s.try_receive(r) == rill::status::ok) ASSERT_EQ(r->seq(), next++) << "capacity " << capacity;
      ASSERT_NE(sent + next, progress) << "stuck at capacity " << capacity;  // a lost turn stalls the ring
    }
    EXPECT_EQ(next, 3 * capacity) << "capacity " << capacity;
  }
}

// ---- lanes: an MPMC stream's capacity split over one ring per producer ----
namespace {

rill::stream_options laned(std::uint32_t lanes, std::size_t capacity, rill::backpressure policy) {
  rill::stream_options o;
  o.kind = rill::flavour::mpmc;
  o.lanes = lanes;
  o.capacity = capacity;
  o.policy = policy;
  return o;
}

// A user event carrying its producer (the code) and its number among that producer's sends (8 data bytes).
rill::event numbered_event(std::uint16_t producer, std::uint64_t n) {
  char bytes[sizeof n];
  std::memcpy(bytes, &n, sizeof n);
  return rill::event::user(producer, {bytes, sizeof bytes});
}
std::uint64_t number_of(const rill::event& e) {
  std::uint64_t n = 0;
  std::memcpy(&n, e.text().data(), sizeof n);
  return n;
}

// Sends numbered events from `producer` until the stream refuses one; returns how many went. Gives up
// (a failure) past 4x the capacity, so a stream that never says full cannot hang the test.
std::uint64_t send_until_refused(rill::stream& s, std::uint16_t producer) {
  std::uint64_t n = 0;
  while (s.try_send(numbered_event(producer, n)) == rill::status::ok) {
    if (++n > 4 * s.capacity()) {
      ADD_FAILURE() << "the stream never refused a send";
      break;
    }
  }
  return n;
}

}  // namespace

TEST(MpmcLanes, OptionIsValidatedAndRounded) {
  using rill::backpressure;
  EXPECT_EQ(rill::stream{}.lanes(), 1u);
  EXPECT_EQ(rill::stream(laned(3, 64, backpressure::block)).lanes(), 4u);
  EXPECT_EQ(rill::stream(laned(64, 64, backpressure::block)).lanes(), 64u);
  EXPECT_EQ(rill::stream(laned(4, 2, backpressure::block)).capacity(), 8u) << "at least 2 slots a lane";
  EXPECT_THROW(rill::stream(laned(0, 64, backpressure::block)), std::invalid_argument);
  EXPECT_THROW(rill::stream(laned(65, 64, backpressure::block)), std::invalid_argument);
  rill::stream_options spsc = laned(2, 64, backpressure::drop_oldest);
  spsc.kind = rill::flavour::spsc;
  EXPECT_THROW(rill::stream{spsc}, std::invalid_argument) << "lanes need flavour::mpmc";
}

// Threads that start sending one after another take consecutive ordinals (so the tests send from fresh
// threads, never from the test's own, which may hold an ordinal from an earlier test). Four of them fill
// the four lanes: each gets exactly capacity / lanes slots, and together they fill the stream. One consumer then
// gets every event, each producer's in order, and end-of-stream only after all lanes are drained.
TEST(MpmcLanes, EachProducerFillsItsOwnLaneAndConsumersDrainThemAll) {
  rill::stream s(laned(4, 64, rill::backpressure::drop));
  std::vector<std::uint64_t> sent(4, 0);
  for (std::uint16_t p = 0; p < 4; ++p) {
    std::thread([&, p] { sent[p] = send_until_refused(s, p); }).join();
  }
  for (std::uint16_t p = 0; p < 4; ++p) EXPECT_EQ(sent[p], 16u) << "producer " << p;
  EXPECT_EQ(s.approx_size(), 64u);
  s.close();
  std::vector<std::uint64_t> next(4, 0);
  rill::received r;
  rill::status st;
  while ((st = s.try_receive(r)) == rill::status::ok) {
    const std::uint16_t p = r->user_code();
    ASSERT_LT(p, 4u);
    EXPECT_EQ(number_of(*r), next[p]++) << "producer " << p << " out of order";
  }
  EXPECT_EQ(st, rill::status::closed);
  EXPECT_EQ(next, sent);
  const rill::stream_counters c = s.counters();
  EXPECT_EQ(c.sent, 64u + 4u);  // one refusal per producer, counted dropped
  EXPECT_EQ(c.dropped, 4u);
  EXPECT_EQ(c.received, 64u);
  EXPECT_EQ(c.buffered, 0u);
}

// A consumer moves to the next lane every 4096 events the stream hands out, so one full lane cannot keep
// it from another: the first 8192 events must include both producers', though each lane holds 8192.
TEST(MpmcLanes, AConsumerTurnsToEveryLane) {
  constexpr std::uint64_t kPerLane = 8192;
  rill::stream s(laned(2, 2 * kPerLane, rill::backpressure::block));
  for (std::uint16_t p = 0; p < 2; ++p) {
    std::thread([&, p] { EXPECT_EQ(send_until_refused(s, p), kPerLane); }).join();
  }
  std::vector<std::uint64_t> next(2, 0);
  rill::received r;
  for (std::uint64_t i = 0; i < 2 * kPerLane; ++i) {
    ASSERT_EQ(s.try_receive(r), rill::status::ok) << i;
    const std::uint16_t p = r->user_code();
    ASSERT_LT(p, 2u);
    ASSERT_EQ(number_of(*r), next[p]++) << "producer " << p << " out of order";
    if (i + 1 == kPerLane) {
      EXPECT_GT(next[0], 0u) << "the first " << kPerLane << " events all came from producer 1";
      EXPECT_GT(next[1], 0u) << "the first " << kPerLane << " events all came from producer 0";
    }
  }
  EXPECT_EQ(s.try_receive(r), rill::status::empty);
}

// drop_oldest evicts the oldest event of the sender's own lane; other producers' events stay.
// The arena is shared by the lanes: when its oldest record is another lane's buffered event, evicting the
// sender's own lane frees nothing, so a send with long text refuses (full) and leaves that lane alone.
// `pin_arena(s, text)` puts lane 0's event with that text first in the arena; then a fresh thread (the next
// ordinal, lane 1) fills the arena and sends once more.
template <class PinArena>
void expect_the_other_lane_refused_and_kept(PinArena pin_arena) {
  rill::stream_options o = laned(2, 32, rill::backpressure::drop_oldest);
  o.arena_bytes = 1024;  // four 208-byte records
  rill::stream s(o);
  auto text = [](char c) { return std::string(200, c); };
  std::thread([&] { pin_arena(s, text('a')); }).join();
  rill::status refused = rill::status::ok;
  std::thread([&] {
    ASSERT_EQ(s.try_send(rill::event::text_delta(1, "inline")), rill::status::ok);
    for (char c : {'b', 'c', 'd'})
      ASSERT_EQ(s.try_send(rill::event::text_delta(1, text(c))), rill::status::ok);
    refused = s.try_send(rill::event::text_delta(1, text('e')));
  }).join();
  EXPECT_EQ(refused, rill::status::full);
  EXPECT_EQ(s.counters().dropped, 1u) << "only the refused send";
  std::vector<std::string> got;
  rill::received r;
  while (s.try_receive(r) == rill::status::ok) got.emplace_back(r->text().substr(0, 6));
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"aaaaaa", "bbbbbb", "cccccc", "dddddd", "inline"}));
}

TEST(MpmcLanes, DropOldestLeavesItsLaneWhenAnotherLanePinsTheArena) {
  expect_the_other_lane_refused_and_kept([](rill::stream& s, const std::string& text) {
    ASSERT_EQ(s.try_send(rill::event::text_delta(0, text)), rill::status::ok);
  });
}

// The same with the pinning record's text moved in by commit() (borrowed, not reserved): it is tagged with
// its lane as a send's is, so the other lane's send refuses instead of evicting its own events.
TEST(MpmcLanes, DropOldestLeavesItsLaneWhenACommitsBorrowedTextPinsTheArena) {
  expect_the_other_lane_refused_and_kept([](rill::stream& s, const std::string& text) {
    rill::send_claim claim;
    ASSERT_EQ(s.try_claim(claim), rill::status::ok);
    claim.slot() = rill::event::text_delta(0, text);  // borrowed: commit() copies it into the arena
    ASSERT_EQ(s.commit(claim), rill::status::ok);
  });
}

TEST(MpmcLanes, DropOldestEvictsFromTheSendersLane) {
  rill::stream s(laned(2, 4, rill::backpressure::drop_oldest));  // 2 slots a lane
  std::thread([&] {
    ASSERT_EQ(s.try_send(numbered_event(0, 0)), rill::status::ok);
    ASSERT_EQ(s.try_send(numbered_event(0, 1)), rill::status::ok);
  }).join();
  std::thread([&] {  // a fresh thread, so the next ordinal and the other lane (this thread may have one)
    for (std::uint64_t n = 0; n < 3; ++n) ASSERT_EQ(s.try_send(numbered_event(1, n)), rill::status::ok);
  }).join();
  std::vector<std::vector<std::uint64_t>> got(2);
  rill::received r;
  while (s.try_receive(r) == rill::status::ok) got[r->user_code()].push_back(number_of(*r));
  EXPECT_EQ(got[0], (std::vector<std::uint64_t>{0, 1}));
  EXPECT_EQ(got[1], (std::vector<std::uint64_t>{1, 2})) << "event 0 of producer 1 was the one evicted";
  EXPECT_EQ(s.counters().dropped, 1u);
}
