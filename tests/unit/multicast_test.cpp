// Contracts of rill::multicast_stream: per-subscriber cursors, slow-reader policies, retention and resume.
#include "rill/multicast.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "scope_exit.hpp"

namespace {

using rill::event;
using rill::multicast_options;
using rill::multicast_stream;
using rill::slow_reader;
using rill::start_at;
using rill::status;
using rill::subscribe_options;
using rill::subscription;

multicast_options small(std::size_t capacity, std::size_t text_bytes = 4096) {
  multicast_options o;
  o.capacity = capacity;
  o.text_bytes = text_bytes;
  o.stamping = rill::clock_kind::none;
  o.spin_iterations = 16;
  return o;
}

// A text long enough to live outside the event, unique per n.
std::string long_text(std::uint64_t n, std::size_t size = 100) {
  std::string s = "event-";
  s += std::to_string(n);
  s += '-';
  while (s.size() < size) s += static_cast<char>('a' + (s.size() + n) % 26);
  return s;
}

std::string short_text(std::uint64_t n) {
  std::string s = "t";  // (appending, not "t" + to_string(n): g++ 12 -Wrestrict false positive)
  s += std::to_string(n);
  return s;
}

// Waits (up to 10 s) until subscribers have parked `parks` times (a subscriber counted has announced
// itself: a send, close or stop from then on must wake it).
void wait_for_parked_subscribers(const multicast_stream& s, std::uint64_t parks) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.counters().receive_parks < parks && std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
  EXPECT_GE(s.counters().receive_parks, parks) << "the subscribers never parked";
}

// Sends events first..end-1 (text text_of(i)) with send() on a thread, and has `holder` read only once the
// producer has had to wait for it: a reader that kept pace from the start could let every send through
// without one (it did once, under ASan). The wait is counted before the producer sleeps, and the unread
// holder makes it certain; a broken hold fails the checks instead of hanging. The holder must get every
// event from its cursor to the end, in order, then closed.
template <class TextOf>
void send_past_a_holder(multicast_stream& s, subscription& holder, std::uint64_t first, std::uint64_t end,
                        TextOf text_of) {
  std::thread producer([&] {
    const rill::test::on_scope_exit close_stream([&] { s.close(); });  // the reader below ends either way
    for (std::uint64_t i = first; i < end; ++i)
      ASSERT_EQ(s.send(event::text_delta(0, text_of(i))), status::ok);
  });
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.counters().send_waits == 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
  EXPECT_GT(s.counters().send_waits, 0u) << "the producer never waited for the holder";
  event e;
  std::uint64_t expected = holder.next_seq();
  status st;
  while ((st = holder.receive(e)) == status::ok) {
    ASSERT_EQ(e.seq(), expected);
    ASSERT_EQ(e.text(), text_of(expected));
    ++expected;
  }
  producer.join();
  EXPECT_EQ(st, status::closed);
  EXPECT_EQ(expected, end);
  EXPECT_EQ(holder.missed_total(), 0u);
}

TEST(MulticastStream, SequenceNumberIsTheSecondWordOfAnEvent) {
  // The ring uses an event's sequence number as its slot version (kSeqWord == 1).
  event e = event::keep_alive();
  e.set_seq(0x0123456789abcdefull);
  std::uint64_t words[8];
  std::memcpy(words, &e, sizeof words);
  EXPECT_EQ(words[1], 0x0123456789abcdefull);
}

TEST(MulticastStream, RejectsBadOptions) {
  multicast_options o;
  o.capacity = 0;
  EXPECT_THROW(multicast_stream{o}, std::invalid_argument);
  o = {};
  o.policy = rill::backpressure::drop_oldest;
  EXPECT_THROW(multicast_stream{o}, std::invalid_argument);
  o = {};
  o.max_subscribers = 0;
  EXPECT_THROW(multicast_stream{o}, std::invalid_argument);
}

TEST(MulticastStream, CapacityRoundsUpAndRetainsAtLeastWhatWasAsked) {
  multicast_stream s(small(5));
  EXPECT_EQ(s.capacity(), 7u);  // 8 slots, one always in rewrite
  multicast_stream t(small(8));
  EXPECT_EQ(t.capacity(), 15u);
}

TEST(MulticastStream, EverySubscriberSeesEveryEventInOrder) {
  multicast_stream s(small(64));
  std::vector<subscription> subs(3);
  for (auto& sub : subs) ASSERT_EQ(s.subscribe(sub, {slow_reader::hold, start_at::newest}), status::ok);
  EXPECT_EQ(s.counters().subscribers, 3u);
  for (int i = 0; i < 40; ++i) {
    const std::string text = i % 3 == 0 ? long_text(i) : short_text(i);
    ASSERT_EQ(s.try_send(event::text_delta(0, text)), status::ok);
  }
  for (auto& sub : subs) {
    event e;
    for (std::uint64_t i = 0; i < 40; ++i) {
      ASSERT_EQ(sub.try_receive(e), status::ok);
      EXPECT_EQ(e.seq(), i);
      EXPECT_EQ(e.text(), i % 3 == 0 ? long_text(i) : short_text(i));
    }
    EXPECT_EQ(sub.try_receive(e), status::empty);
    EXPECT_EQ(sub.received(), 40u);
    EXPECT_EQ(sub.missed_total(), 0u);
  }
}

TEST(MulticastStream, NewestStartsAfterWhatWasSentOldestAtTheOldestRetained) {
  multicast_stream s(small(8));  // 15 retained
  for (int i = 0; i < 20; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, "x")), status::ok);
  EXPECT_EQ(s.oldest_retained(), 5u);
  subscription newest, oldest;
  ASSERT_EQ(s.subscribe(newest), status::ok);
  ASSERT_EQ(s.subscribe(oldest, {slow_reader::skip, start_at::oldest}), status::ok);
  EXPECT_EQ(newest.next_seq(), 20u);
  EXPECT_EQ(oldest.next_seq(), 5u);
  event e;
  EXPECT_EQ(newest.try_receive(e), status::empty);
  for (std::uint64_t i = 5; i < 20; ++i) {
    ASSERT_EQ(oldest.try_receive(e), status::ok);
    EXPECT_EQ(e.seq(), i);
  }
  EXPECT_EQ(oldest.try_receive(e), status::empty);
  ASSERT_EQ(s.try_send(event::text_delta(0, "y")), status::ok);
  ASSERT_EQ(newest.try_receive(e), status::ok);
  EXPECT_EQ(e.seq(), 20u);
  EXPECT_EQ(e.text(), "y");
}

TEST(MulticastStream, HoldSubscriberStopsTheProducerAndLosesNothing) {
  multicast_stream s(small(4));  // 8 slots: the producer may be 8 events ahead of a holder
  subscription holder;
  ASSERT_EQ(s.subscribe(holder, {slow_reader::hold, start_at::newest}), status::ok);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, "a")), status::ok);
  EXPECT_EQ(s.try_send(event::text_delta(0, "b")), status::full);
  EXPECT_EQ(s.counters().dropped, 0u);  // block policy: full is not a drop
  EXPECT_EQ(s.send_for(event::text_delta(0, "b"), std::chrono::milliseconds(5)), status::timeout);
  event e;
  ASSERT_EQ(holder.try_receive(e), status::ok);
  EXPECT_EQ(s.try_send(event::text_delta(0, "c")), status::ok);
  std::uint64_t expected = 1;
  while (holder.try_receive(e) == status::ok) EXPECT_EQ(e.seq(), expected++);
  EXPECT_EQ(expected, 9u);
  EXPECT_EQ(holder.missed_total(), 0u);
}

TEST(MulticastStream, AfterAFullRingTheProducerResumesOnceASixteenthIsFree) {
  multicast_stream s(small(64));  // 128 slots: refills of 8
  subscription holder;
  ASSERT_EQ(s.subscribe(holder, {slow_reader::hold, start_at::newest}), status::ok);
  for (int i = 0; i < 128; ++i) ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
  EXPECT_EQ(s.try_send(event::keep_alive()), status::full);
  event e;
  for (int i = 0; i < 7; ++i) ASSERT_EQ(holder.try_receive(e), status::ok);
  EXPECT_EQ(s.try_send(event::keep_alive()), status::full);  // 7 free: not a refill yet
  ASSERT_EQ(holder.try_receive(e), status::ok);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(s.try_send(event::keep_alive()), status::ok) << i;
  EXPECT_EQ(s.try_send(event::keep_alive()), status::full);
  std::uint64_t expected = 8;
  while (holder.try_receive(e) == status::ok) EXPECT_EQ(e.seq(), expected++);
  EXPECT_EQ(expected, 136u);
}

TEST(MulticastStream, DropPolicyCountsEventsRefusedForAHolder) {
  multicast_options o = small(2);  // 4 slots
  o.policy = rill::backpressure::drop;
  multicast_stream s(o);
  subscription holder;
  ASSERT_EQ(s.subscribe(holder, {slow_reader::hold, start_at::newest}), status::ok);
  int ok = 0;
  for (int i = 0; i < 10; ++i) ok += s.send(event::text_delta(0, "a")) == status::ok;
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(s.counters().dropped, 6u);
  EXPECT_EQ(s.counters().sent, 4u);
}

// Under drop, a send is refused only while a holder leaves no free slot: the refill a blocking producer
// waits for (1/16 of the ring) would drop events for every subscriber while the ring has room.
TEST(MulticastStream, DropPolicyDropsOnlyWhileTheRingIsFull) {
  multicast_options o = small(1023);  // 1024 slots
  o.policy = rill::backpressure::drop;
  multicast_stream s(o);
  subscription holder;
  ASSERT_EQ(s.subscribe(holder, {slow_reader::hold, start_at::newest}), status::ok);
  std::uint64_t sent = 0;
  while (s.try_send(event::keep_alive()) == status::ok) ++sent;
  EXPECT_EQ(s.counters().dropped, 1u);
  event e;
  for (int i = 0; i < 10; ++i) ASSERT_EQ(holder.try_receive(e), status::ok);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.try_send(event::keep_alive()), status::ok) << i;
  EXPECT_EQ(s.try_send(event::keep_alive()), status::full);
  EXPECT_EQ(s.counters().dropped, 2u);
  EXPECT_EQ(s.counters().sent, sent + 10);
}

TEST(MulticastStream, HoldSubscriberBlocksAWaitingProducerUntilItReads) {
  multicast_stream s(small(2));
  subscription holder;
  ASSERT_EQ(s.subscribe(holder, {slow_reader::hold, start_at::newest}), status::ok);
  send_past_a_holder(s, holder, 0, 100, [](std::uint64_t i) { return long_text(i, 60); });
}

// A holder that starts in the backlog holds the producer back from its first event on, although the
// producer's cached gate (from its last scan, with no holder) allowed a whole ring more.
TEST(MulticastStream, HolderStartingAtTheOldestIsNeverOverwritten) {
  multicast_stream s(small(8));  // 16 slots, 15 retained
  for (int i = 0; i < 20; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, short_text(i))), status::ok);
  subscription holder;
  ASSERT_EQ(s.subscribe(holder, {slow_reader::hold, start_at::oldest}), status::ok);
  ASSERT_EQ(holder.next_seq(), 5u);
  // Writing 20 overwrites 4; writing 21 would overwrite the holder's 5.
  EXPECT_EQ(s.try_send(event::text_delta(0, short_text(20))), status::ok);
  EXPECT_EQ(s.try_send(event::text_delta(0, short_text(21))), status::full);
  event e;
  for (std::uint64_t i = 5; i <= 20; ++i) {
    ASSERT_EQ(holder.try_receive(e), status::ok);
    EXPECT_EQ(e.seq(), i);
    EXPECT_EQ(e.text(), short_text(i));
  }
  EXPECT_EQ(holder.try_receive(e), status::empty);
  EXPECT_EQ(holder.missed_total(), 0u);
}

TEST(MulticastStream, ResumedHolderIsNeverOverwritten) {
  multicast_stream s(small(8));  // 16 slots
  for (int i = 0; i < 20; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, short_text(i))), status::ok);
  subscription holder;
  ASSERT_EQ(s.resume(holder, 9, {slow_reader::hold, start_at::newest}), status::ok);
  ASSERT_EQ(holder.next_seq(), 10u);
  int accepted = 0;
  while (accepted < 64 && s.try_send(event::text_delta(0, short_text(20 + accepted))) == status::ok)
    ++accepted;
  EXPECT_EQ(accepted, 6);  // 20..25; writing 26 would overwrite 10
  event e;
  for (std::uint64_t i = 10; i < 26; ++i) {
    ASSERT_EQ(holder.try_receive(e), status::ok);
    EXPECT_EQ(e.seq(), i);
    EXPECT_EQ(e.text(), short_text(i));
  }
  EXPECT_EQ(holder.missed_total(), 0u);
}

// The text ring has its own gate. Here the producer's last scan (with no holder) was at event 16, after the
// texts of 14 and 15: judged by that scan, text 17 may overwrite them.
TEST(MulticastStream, HolderStartingAtTheOldestKeepsItsText) {
  // 256 text bytes hold two 100-byte texts (104 bytes each with padding); 16 slots.
  multicast_stream s(small(8, 256));
  const auto text_of = [](std::uint64_t i) { return i == 14 || i == 15 ? long_text(i) : short_text(i); };
  for (std::uint64_t i = 0; i < 17; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, text_of(i))), status::ok);
  subscription holder;
  ASSERT_EQ(s.subscribe(holder, {slow_reader::hold, start_at::oldest}), status::ok);
  ASSERT_EQ(holder.next_seq(), 2u);
  EXPECT_EQ(s.try_send(event::text_delta(0, long_text(17))), status::full);  // would overwrite 14's text
  EXPECT_EQ(s.oldest_retained(), 2u) << "a refused send retires nothing";
  event e;
  for (std::uint64_t i = 2; i < 17; ++i) {
    ASSERT_EQ(holder.try_receive(e), status::ok);
    EXPECT_EQ(e.seq(), i);
    EXPECT_EQ(e.text(), text_of(i));
  }
  ASSERT_EQ(s.try_send(event::text_delta(0, long_text(17))), status::ok);
  ASSERT_EQ(holder.try_receive(e), status::ok);
  EXPECT_EQ(e.text(), long_text(17));
  EXPECT_EQ(holder.missed_total(), 0u);
}

// A producer blocked on a holder that starts a whole ring behind resumes once that holder reads.
TEST(MulticastStream, BlockedProducerWaitsForAHolderInTheBacklog) {
  multicast_stream s(small(8));  // 16 slots, refills of 1
  for (int i = 0; i < 15; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, short_text(i))), status::ok);
  subscription holder;
  ASSERT_EQ(s.subscribe(holder, {slow_reader::hold, start_at::oldest}), status::ok);
  ASSERT_EQ(holder.next_seq(), 0u);
  send_past_a_holder(s, holder, 15, 100, short_text);
}

TEST(MulticastStream, SkipSubscriberGetsExactLaggedCounts) {
  multicast_stream s(small(8));  // 15 retained
  subscription slow;
  ASSERT_EQ(s.subscribe(slow, {slow_reader::skip, start_at::newest}), status::ok);
  event e;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, "a")), status::ok);
  ASSERT_EQ(slow.try_receive(e), status::ok);  // seq 0
  for (int i = 0; i < 40; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, "b")), status::ok);
  // 43 published, 15 retained (28..42): the subscriber at 1 missed 1..27.
  ASSERT_EQ(slow.try_receive(e), status::lagged);
  EXPECT_EQ(slow.missed_last(), 27u);
  EXPECT_EQ(slow.next_seq(), 28u);
  for (std::uint64_t i = 28; i < 43; ++i) {
    ASSERT_EQ(slow.try_receive(e), status::ok);
    EXPECT_EQ(e.seq(), i);
  }
  EXPECT_EQ(slow.try_receive(e), status::empty);
  EXPECT_EQ(slow.received() + slow.missed_total(), 43u);
}

TEST(MulticastStream, DetachSubscriberIsCutOffAndStopsCounting) {
  multicast_stream s(small(4));
  subscription slow;
  ASSERT_EQ(s.subscribe(slow, {slow_reader::detach, start_at::newest}), status::ok);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, "a")), status::ok);
  event e;
  EXPECT_EQ(slow.try_receive(e), status::detached);
  EXPECT_FALSE(slow.attached());
  EXPECT_EQ(slow.try_receive(e), status::detached);
  EXPECT_EQ(s.counters().detached, 1u);
  EXPECT_EQ(s.counters().subscribers, 0u);
}

TEST(MulticastStream, SkipSubscribersNeverHoldTheProducer) {
  multicast_stream s(small(4));
  subscription a, b;
  ASSERT_EQ(s.subscribe(a, {slow_reader::skip, start_at::newest}), status::ok);
  ASSERT_EQ(s.subscribe(b, {slow_reader::detach, start_at::newest}), status::ok);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, long_text(i))), status::ok);
  event e;
  ASSERT_EQ(a.try_receive(e), status::lagged);
  EXPECT_EQ(a.missed_last(), 1000u - 7u);
}

TEST(MulticastStream, OverwrittenTextCountsAsMissed) {
  // 256 text bytes hold two 100-byte texts (104 bytes each with padding); the ring holds 15 events.
  multicast_stream s(small(8, 256));
  subscription sub;
  ASSERT_EQ(s.subscribe(sub, {slow_reader::skip, start_at::newest}), status::ok);
  for (std::uint64_t i = 0; i < 6; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, long_text(i))), status::ok);
  EXPECT_EQ(s.oldest_retained(), 4u);
  event e;
  ASSERT_EQ(sub.try_receive(e), status::lagged);
  EXPECT_EQ(sub.missed_last(), 4u);
  for (std::uint64_t i = 4; i < 6; ++i) {
    ASSERT_EQ(sub.try_receive(e), status::ok);
    EXPECT_EQ(e.text(), long_text(i));
  }
}

TEST(MulticastStream, HoldSubscriberKeepsItsTextFromBeingOverwritten) {
  multicast_stream s(small(8, 256));
  subscription holder;
  ASSERT_EQ(s.subscribe(holder, {slow_reader::hold, start_at::newest}), status::ok);
  ASSERT_EQ(s.try_send(event::text_delta(0, long_text(0))), status::ok);
  ASSERT_EQ(s.try_send(event::text_delta(0, long_text(1))), status::ok);
  EXPECT_EQ(s.try_send(event::text_delta(0, long_text(2))), status::full);  // would overwrite event 0's text
  ASSERT_EQ(s.try_send(event::text_delta(0, "short")), status::ok);         // inline text needs no room
  event e;
  ASSERT_EQ(holder.try_receive(e), status::ok);
  EXPECT_EQ(e.text(), long_text(0));
  ASSERT_EQ(s.try_send(event::text_delta(0, long_text(2))), status::ok);
  ASSERT_EQ(holder.try_receive(e), status::ok);
  EXPECT_EQ(e.text(), long_text(1));
  ASSERT_EQ(holder.try_receive(e), status::ok);
  EXPECT_EQ(e.text(), "short");
  ASSERT_EQ(holder.try_receive(e), status::ok);
  EXPECT_EQ(e.text(), long_text(2));
}

TEST(MulticastStream, ResumeAfterASequenceInsideRetention) {
  multicast_stream s(small(16));  // 31 retained
  for (std::uint64_t i = 0; i < 50; ++i)
    ASSERT_EQ(s.try_send(event::text_delta(0, long_text(i))), status::ok);
  subscription sub;
  ASSERT_EQ(s.resume(sub, 30), status::ok);
  EXPECT_EQ(sub.next_seq(), 31u);
  event e;
  for (std::uint64_t i = 31; i < 50; ++i) {
    ASSERT_EQ(sub.try_receive(e), status::ok);
    EXPECT_EQ(e.seq(), i);
    EXPECT_EQ(e.text(), long_text(i));
  }
  EXPECT_EQ(sub.try_receive(e), status::empty);
  // Resuming after the newest event waits for the next one.
  subscription tail;
  ASSERT_EQ(s.resume(tail, 49), status::ok);
  EXPECT_EQ(tail.try_receive(e), status::empty);
}

TEST(MulticastStream, ResumeOutsideRetentionSaysWhatIsOldest) {
  multicast_stream s(small(16));
  for (int i = 0; i < 50; ++i) ASSERT_EQ(s.try_send(event::text_delta(0, "x")), status::ok);
  subscription sub;
  std::uint64_t oldest = 0;
  EXPECT_EQ(s.resume(sub, 10, {}, &oldest), status::not_retained);
  EXPECT_EQ(oldest, 19u);
  EXPECT_FALSE(sub.attached());
  EXPECT_EQ(s.resume(sub, oldest - 1), status::ok);
  EXPECT_EQ(s.resume(sub, 50), status::invalid);  // event 51 does not exist yet
  EXPECT_FALSE(sub.attached()) << "a failed resume leaves the subscription detached";
  EXPECT_EQ(s.resume(sub, ~std::uint64_t{0}), status::invalid);
  multicast_stream fresh(small(16));  // nothing sent: event 0's slot was never written
  EXPECT_EQ(fresh.resume(sub, 0), status::invalid);
  EXPECT_EQ(fresh.try_send(event::text_delta(0, "x")), status::ok);
  EXPECT_EQ(fresh.resume(sub, 0), status::ok);
  EXPECT_EQ(fresh.resume(sub, 1), status::invalid);
  ASSERT_EQ(s.resume(sub, 30), status::ok);
  EXPECT_EQ(s.resume(sub, 10), status::not_retained);
  EXPECT_FALSE(sub.attached());
  EXPECT_EQ(s.counters().subscribers, 0u);
}

TEST(MulticastStream, SubscriberTableIsBounded) {
  multicast_options o = small(8);
  o.max_subscribers = 2;
  multicast_stream s(o);
  subscription a, b, c;
  ASSERT_EQ(s.subscribe(a), status::ok);
  ASSERT_EQ(s.subscribe(b), status::ok);
  EXPECT_EQ(s.subscribe(c), status::full);
  a.detach();
  EXPECT_EQ(s.subscribe(c), status::ok);
  {
    subscription moved = std::move(c);
    EXPECT_FALSE(c.attached());
    EXPECT_TRUE(moved.attached());
  }  // destruction detaches
  EXPECT_EQ(s.counters().subscribers, 1u);
}

TEST(MulticastStream, CloseEndsEachSubscriberAfterItsBacklog) {
  multicast_stream s(small(8));
  subscription a, b;
  ASSERT_EQ(s.subscribe(a), status::ok);
  ASSERT_EQ(s.subscribe(b), status::ok);
  ASSERT_EQ(s.try_send(event::text_delta(0, "1")), status::ok);
  ASSERT_EQ(s.try_send(event::text_delta(0, "2")), status::ok);
  s.close();
  EXPECT_EQ(s.try_send(event::text_delta(0, "3")), status::closed);
  event e;
  ASSERT_EQ(a.try_receive(e), status::ok);
  ASSERT_EQ(a.try_receive(e), status::ok);
  EXPECT_EQ(a.try_receive(e), status::closed);
  ASSERT_EQ(b.receive(e), status::ok);
  EXPECT_EQ(e.text(), "1");
}

TEST(MulticastStream, CloseAndStopTokenWakeBlockedSubscribers) {
  multicast_stream s(small(8));
  subscription a, b;
  ASSERT_EQ(s.subscribe(a), status::ok);
  ASSERT_EQ(s.subscribe(b), status::ok);
  std::stop_source stop;
  status ra = status::ok, rb = status::ok;
  std::thread ta([&] {
    event e;
    ra = a.receive(e);
  });
  std::thread tb([&] {
    event e;
    rb = b.receive(e, stop.get_token());
  });
  wait_for_parked_subscribers(s, 2);
  stop.request_stop();
  tb.join();
  EXPECT_EQ(rb, status::cancelled);
  s.close();
  ta.join();
  EXPECT_EQ(ra, status::closed);
  event e;
  EXPECT_EQ(a.receive_for(e, std::chrono::milliseconds(1)), status::closed);
}

TEST(MulticastStream, ReceiveTimesOut) {
  multicast_stream s(small(8));
  subscription a;
  ASSERT_EQ(s.subscribe(a), status::ok);
  event e;
  EXPECT_EQ(a.try_receive(e), status::empty);
  EXPECT_EQ(s.counters().receive_parks, 0u) << "a try_receive never parks";
  EXPECT_EQ(a.receive_for(e, std::chrono::milliseconds(2)), status::timeout);
  EXPECT_GE(s.counters().receive_parks, 1u) << "it spun, then parked until its deadline";
}

// A timeout past the clock's range means no deadline: it must not overflow into one in the past.
TEST(MulticastStream, HugeTimeoutsWaitInsteadOfTimingOut) {
  multicast_stream s(small(2));
  subscription holder;
  ASSERT_EQ(s.subscribe(holder, {slow_reader::hold, start_at::newest}), status::ok);
  std::thread producer([&] {
    const rill::test::on_scope_exit close_stream([&] { s.close(); });
    wait_for_parked_subscribers(s, 1);  // the holder waits with its huge timeout
    ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
    while (s.try_send(event::keep_alive()) == status::ok) {  // fills the ring for the holder (capacity 2)
    }
    EXPECT_EQ(s.send_for(event::keep_alive(), std::chrono::hours::max()), status::ok);
  });
  event e;
  std::uint64_t received = 0;
  status st;
  while ((st = holder.receive_for(e, std::chrono::hours::max())) == status::ok) ++received;  // until closed
  producer.join();
  EXPECT_EQ(st, status::closed);
  EXPECT_GE(received, 2u);
  EXPECT_EQ(received, s.counters().sent) << "every send, the waiting one included, was received";
}

TEST(MulticastStream, BadInputIsRefusedWithNothingWritten) {
  multicast_stream s(small(8, 256));
  subscription a;
  ASSERT_EQ(s.subscribe(a), status::ok);
  EXPECT_EQ(s.try_send(event{}), status::invalid);
  const std::string huge(300, 'z');
  EXPECT_EQ(s.try_send(event::text_delta(0, huge)), status::too_large);
  multicast_stream no_text(small(8, 0));
  EXPECT_EQ(no_text.try_send(event::text_delta(0, long_text(1))), status::too_large);
  EXPECT_EQ(no_text.try_send(event::text_delta(0, "fits inline")), status::ok);
  EXPECT_EQ(s.counters().sent, 0u);
  event e;
  EXPECT_EQ(a.try_receive(e), status::empty);
  subscription never;
  EXPECT_EQ(never.try_receive(e), status::detached);
}

TEST(MulticastStream, TextFillingTheWholeRingIsDelivered) {
  multicast_stream s(small(8, 256));
  subscription a;
  ASSERT_EQ(s.subscribe(a, {slow_reader::hold, start_at::newest}), status::ok);
  event e;
  for (std::uint64_t i = 0; i < 10; ++i) {
    const std::string text = long_text(i, i % 2 == 0 ? 250 : 130);  // with "call-1": 256 or 136 bytes
    ASSERT_EQ(s.try_send(event::tool_result("call-1", text)), status::ok) << i;
    ASSERT_EQ(a.try_receive(e), status::ok);
    EXPECT_EQ(e.call_id(), "call-1");
    EXPECT_EQ(e.tool_content(), text);
  }
}

TEST(MulticastStream, StampsEventsWithTheConfiguredClock) {
  multicast_options o = small(8);
  o.stamping = rill::clock_kind::coarse;
  multicast_stream s(o);
  subscription a;
  ASSERT_EQ(s.subscribe(a), status::ok);
  ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
  event e;
  ASSERT_EQ(a.try_receive(e), status::ok);
  EXPECT_EQ(e.timestamp_clock(), rill::clock_kind::coarse);
  EXPECT_NE(e.timestamp(), 0u);
}

TEST(MulticastStream, DrainHandsOverReadyEventsWithEndOfBatch) {
  multicast_stream s(small(16));
  subscription sub;
  ASSERT_EQ(s.subscribe(sub, {slow_reader::hold, start_at::newest}), status::ok);
  for (std::uint64_t i = 0; i < 10; ++i)
    ASSERT_EQ(s.try_send(event::text_delta(0, long_text(i))), status::ok);
  std::vector<std::uint64_t> seqs;
  std::vector<bool> ends;
  status why = status::ok;
  auto handler = [&](const event& e, bool end_of_batch) {
    EXPECT_EQ(e.text(), long_text(e.seq()));
    seqs.push_back(e.seq());
    ends.push_back(end_of_batch);
  };
  EXPECT_EQ(sub.try_drain(handler, 0, &why), 0u) << "asked for none: hands over none";
  EXPECT_TRUE(seqs.empty());
  EXPECT_EQ(sub.try_drain(handler, 4, &why), 4u);
  EXPECT_EQ(why, status::ok);
  EXPECT_EQ(sub.try_drain(handler, 100, &why), 6u);
  EXPECT_EQ(why, status::ok);
  EXPECT_EQ(sub.try_drain(handler, 100, &why), 0u);
  EXPECT_EQ(why, status::empty);
  ASSERT_EQ(seqs.size(), 10u);
  for (std::uint64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(seqs[i], i);
    EXPECT_EQ(ends[i], i == 3 || i == 9) << i;
  }
  s.close();
  EXPECT_EQ(sub.try_drain(handler, 100, &why), 0u);
  EXPECT_EQ(why, status::closed);
}

TEST(MulticastStream, DrainPublishesAHoldersCursorOncePerBatch) {
  multicast_stream s(small(4));  // 8 slots
  subscription holder;
  ASSERT_EQ(s.subscribe(holder, {slow_reader::hold, start_at::newest}), status::ok);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
  EXPECT_EQ(s.try_send(event::keep_alive()), status::full);
  std::size_t seen = 0;
  EXPECT_EQ(holder.try_drain([&](const event&, bool) { ++seen; }, 8), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(s.try_send(event::keep_alive()), status::ok) << i;
  EXPECT_EQ(seen, 8u);
}

TEST(MulticastStream, DrainStopsAtALagAndReportsIt) {
  multicast_stream s(small(4));  // 7 retained
  subscription sub;
  ASSERT_EQ(s.subscribe(sub, {slow_reader::skip, start_at::newest}), status::ok);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
  status why = status::ok;
  std::size_t seen = 0;
  EXPECT_EQ(sub.try_drain([&](const event&, bool) { ++seen; }, 100, &why), 0u);
  EXPECT_EQ(why, status::lagged);
  EXPECT_EQ(sub.missed_last(), 13u);
  EXPECT_EQ(sub.try_drain([&](const event&, bool) { ++seen; }, 100, &why), 7u);
  EXPECT_EQ(why, status::ok);
}

TEST(MulticastStream, DrainConsumesTheEventWhoseHandlerThrew) {
  multicast_stream s(small(8));
  subscription sub;
  ASSERT_EQ(s.subscribe(sub, {slow_reader::hold, start_at::newest}), status::ok);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);
  EXPECT_THROW(sub.try_drain(
                   [](const event& e, bool) {
                     if (e.seq() == 2) throw std::runtime_error("handler failed");
                   },
                   10),
               std::runtime_error);
  EXPECT_EQ(sub.next_seq(), 3u);
  event e;
  ASSERT_EQ(sub.try_receive(e), status::ok);
  EXPECT_EQ(e.seq(), 3u);
}

// Runs `body` on a thread and joins it however the test returns (a failed ASSERT in the test body must
// not leave a joinable thread behind).
class joined_thread {
 public:
  template <class Body>
  explicit joined_thread(Body&& body) : thread_(std::forward<Body>(body)) {}
  joined_thread(const joined_thread&) = delete;
  joined_thread& operator=(const joined_thread&) = delete;
  ~joined_thread() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::thread thread_;
};

// Waits (up to 10 s) until the producer has parked `parks` times in all (counted once it has announced
// itself: a wake-up owed from then on must reach it).
void wait_for_producer_parks(const multicast_stream& s, std::uint64_t parks) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.counters().send_parks < parks && std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
  ASSERT_GE(s.counters().send_parks, parks) << "the producer never parked";
}

// A holder a whole ring behind that reads one event at a time wakes a parked producer once per refill
// (when its cursor reaches the one the producer needs), not once per event: each wake-up costs the reader
// a futex syscall and the producer a membarrier and another park.
TEST(MulticastStream, SlowHolderWakesAParkedProducerOncePerRefill) {
  multicast_stream s(small(1023));  // 1024 slots: a refill is 64 events
  constexpr std::uint64_t kSlots = 1024;
  constexpr std::uint64_t kRefill = kSlots / 16;
  constexpr std::uint64_t kRefills = 16;
  constexpr std::uint64_t kEvents = kSlots + kRefills * kRefill;
  subscription slow, fast;  // the fast one is past the producer's mark whenever the producer waits
  ASSERT_EQ(s.subscribe(slow, {slow_reader::hold, start_at::newest}), status::ok);
  ASSERT_EQ(s.subscribe(fast, {slow_reader::hold, start_at::newest}), status::ok);
  // Deadlines instead of hangs: a lost wake-up fails the test with timeout.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  status sent = status::ok;
  std::uint64_t sent_count = 0;
  joined_thread producer([&] {
    const rill::test::on_scope_exit close_stream([&] { s.close(); });
    for (; sent_count < kEvents; ++sent_count) {
      sent = s.send_until(event::text_delta(0, short_text(sent_count)), deadline);
      if (sent != status::ok) return;
    }
  });
  std::uint64_t fast_next = 0;
  status fast_end = status::ok;
  joined_thread fast_reader([&] {
    event e;
    while ((fast_end = fast.receive_until(e, deadline)) == status::ok && e.seq() == fast_next) ++fast_next;
  });
  std::uint64_t slow_next = 0;
  event e;
  status st;
  while ((st = slow.receive_until(e, deadline)) == status::ok) {
    ASSERT_EQ(e.seq(), slow_next);
    ASSERT_EQ(e.text(), short_text(slow_next));
    ++slow_next;
    // Slow enough for the producer to park between two reads (a refill takes 64 of these), so the old
    // behaviour (a wake-up per cursor publication) parks it about once per event read.
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  producer.join();
  fast_reader.join();
  EXPECT_EQ(sent, status::ok);
  EXPECT_EQ(sent_count, kEvents);
  EXPECT_EQ(st, status::closed);
  EXPECT_EQ(slow_next, kEvents);
  EXPECT_EQ(fast_end, status::closed);
  EXPECT_EQ(fast_next, kEvents);
  // Once the ring is full, the producer waits at most once per refill (kRefills of them, plus the first
  // wait, which may find the ring not quite full if the slow reader already read a few events). Each wait
  // parks once: only the publication that reaches the producer's mark wakes it, and then its send goes
  // through. 3x leaves room for spurious futex wake-ups and a wake-up that a cursor publication began just
  // before the producer's mark moved on. The old behaviour parks about 63 times per refill (once per
  // event the slow holder reads while the producer sleeps): about a thousand here (1,000 to 1,500 measured,
  // also with four test processes sharing two cores), against 16 or 17 now.
  const rill::multicast_counters c = s.counters();
  EXPECT_GE(c.send_parks, 1u) << "the producer never parked: the test did not exercise the wake-up";
  EXPECT_LE(c.send_parks, 3 * (kRefills + 1)) << "send_waits " << c.send_waits;
  RecordProperty("send_parks", static_cast<int>(c.send_parks));
  RecordProperty("send_waits", static_cast<int>(c.send_waits));
}

// A producer refused for two holders parks until the last of them crosses its mark, or leaves: the first
// holder's crossing wakes it to find the second still behind, and the second's crossing (or its detach,
// which wakes unconditionally, as does an attach) must reach it: a lost wake-up fails with timeout.
TEST(MulticastStream, ProducerWaitingForSeveralHoldersGoesOnWhenTheLastCrossesOrLeaves) {
  enum class second_holder { reads, leaves, attaches_late };
  for (const second_holder mode :
       {second_holder::reads, second_holder::leaves, second_holder::attaches_late}) {
    SCOPED_TRACE(static_cast<int>(mode));
    multicast_stream s(small(63));  // 64 slots: a refill is 4 events, so event 64 waits for event 3 read
    subscription first, second;
    ASSERT_EQ(s.subscribe(first, {slow_reader::hold, start_at::newest}), status::ok);
    if (mode != second_holder::attaches_late) {
      ASSERT_EQ(s.subscribe(second, {slow_reader::hold, start_at::newest}), status::ok);
    }
    for (std::uint64_t i = 0; i < 64; ++i)
      ASSERT_EQ(s.try_send(event::text_delta(0, short_text(i))), status::ok);
    status sent = status::ok;
    joined_thread producer([&] {
      sent = s.send_until(event::text_delta(0, short_text(64)),
                          std::chrono::steady_clock::now() + std::chrono::seconds(30));
    });
    ASSERT_NO_FATAL_FAILURE(wait_for_producer_parks(s, 1));
    if (mode == second_holder::attaches_late) {
      // Attaches in the backlog (at event 1, the oldest retained), below the producer's mark (event 4):
      // the attach wakes the producer to rescan and find it.
      ASSERT_EQ(s.subscribe(second, {slow_reader::hold, start_at::oldest}), status::ok);
      ASSERT_EQ(second.next_seq(), 1u);
    }
    event e;
    for (std::uint64_t i = 0; i < 4; ++i) {  // the fourth read crosses the mark: a wake-up
      ASSERT_EQ(first.try_receive(e), status::ok);
      ASSERT_EQ(e.seq(), i);
    }
    if (mode != second_holder::attaches_late) {
      // The producer wakes (or its re-check sees the crossing), finds the second holder still at event 0,
      // and parks again: event 64 would overwrite it.
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      EXPECT_EQ(s.next_seq(), 64u) << "the second holder still needs event 0";
    }
    if (mode == second_holder::leaves) {
      second.detach();
    } else {
      for (std::uint64_t i = second.next_seq(); i < 4; ++i) {
        ASSERT_EQ(second.try_receive(e), status::ok);
        ASSERT_EQ(e.seq(), i);
      }
    }
    producer.join();
    EXPECT_EQ(sent, status::ok);
    EXPECT_EQ(s.next_seq(), 65u);
  }
}

// Every event reaches every holder, in order and whole, while a blocking producer waits for three holders
// reading at different speeds, for slots and for text (the text ring holds a few events' text only). A
// lost wake-up fails with timeout rather than hanging.
TEST(MulticastStream, HoldersAtDifferentSpeedsGetEveryEventFromAParkingProducer) {
  multicast_options o = small(63, 1024);  // 64 slots (refills of 4), 1 KiB of text: about 8 long texts
  o.spin_iterations = 4;                  // park early and often
  multicast_stream s(o);
  constexpr std::uint64_t kEvents = 3000;
  auto text_of = [](std::uint64_t i) { return i % 3 == 0 ? long_text(i, 60 + i % 90) : short_text(i); };
  constexpr int kHolders = 3;
  subscription holders[kHolders];
  for (subscription& h : holders)
    ASSERT_EQ(s.subscribe(h, {slow_reader::hold, start_at::newest}), status::ok);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  status sent = status::ok;
  std::uint64_t sent_count = 0;
  joined_thread producer([&] {
    const rill::test::on_scope_exit close_stream([&] { s.close(); });
    for (; sent_count < kEvents; ++sent_count) {
      sent = s.send_until(event::text_delta(0, text_of(sent_count)), deadline);
      if (sent != status::ok) return;
    }
  });
  struct result {
    std::uint64_t next = 0;
    std::uint64_t bad = 0;
    status end = status::ok;
  };
  result results[kHolders];
  {
    std::vector<std::unique_ptr<joined_thread>> readers;
    // 0: receive as fast as it can; 1: yields after each event; 2: drains batches of up to 16, sleeping a
    // little after each batch (one cursor publication per batch, often across the producer's mark).
    readers.push_back(std::make_unique<joined_thread>([&] {
      event e;
      result& r = results[0];
      while ((r.end = holders[0].receive_until(e, deadline)) == status::ok) {
        r.bad += e.seq() != r.next || e.text() != text_of(r.next);
        r.next = e.seq() + 1;
      }
    }));
    readers.push_back(std::make_unique<joined_thread>([&] {
      event e;
      result& r = results[1];
      while ((r.end = holders[1].receive_until(e, deadline)) == status::ok) {
        r.bad += e.seq() != r.next || e.text() != text_of(r.next);
        r.next = e.seq() + 1;
        std::this_thread::yield();
      }
    }));
    readers.push_back(std::make_unique<joined_thread>([&] {
      result& r = results[2];
      auto handle = [&](const event& e, bool) {
        r.bad += e.seq() != r.next || e.text() != text_of(r.next);
        r.next = e.seq() + 1;
      };
      while (std::chrono::steady_clock::now() < deadline) {
        status why = status::ok;
        holders[2].try_drain(handle, 16, &why);
        if (why == status::ok || why == status::empty) {
          std::this_thread::sleep_for(std::chrono::microseconds(20));
          continue;
        }
        r.end = why;
        break;
      }
    }));
  }  // joins the readers
  producer.join();
  EXPECT_EQ(sent, status::ok);
  EXPECT_EQ(sent_count, kEvents);
  for (int i = 0; i < kHolders; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(results[i].end, status::closed);
    EXPECT_EQ(results[i].next, kEvents);
    EXPECT_EQ(results[i].bad, 0u);
    EXPECT_EQ(holders[i].missed_total(), 0u);
  }
  const rill::multicast_counters c = s.counters();
  EXPECT_GE(c.send_waits, 1u);
  RecordProperty("send_parks", static_cast<int>(c.send_parks));
  RecordProperty("send_waits", static_cast<int>(c.send_waits));
}

}  // namespace
