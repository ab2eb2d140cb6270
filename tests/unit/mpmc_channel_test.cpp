// White-box tests of rill::detail::mpmc_channel's run claims (try_claim_run, try_take_run): how many tickets
// one claim takes, where a run stops, and that runs and single claims share one ticket order. rill::stream's
// contract and stress tests cover the same ring through the public API (batch sends and receives); these
// pin the run lengths, which the API cannot show. tests/unit/mpmc_relacy_test.cpp model-checks the orders.
#include "rill/detail/mpmc_channel.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "rill/event.hpp"

namespace {

using rill::event;
using rill::detail::mpmc_channel;

// A one-lane channel over its own slots and turns, no arena.
class channel_fixture {
 public:
  explicit channel_fixture(std::size_t capacity)
      : slots_(capacity),
        turns_(capacity),
        channel_(slots_.data(), turns_.data(), capacity, nullptr, 0, nullptr) {}

  mpmc_channel& channel() { return channel_; }

  // Claims a run of up to `max` and publishes each ticket's slot with the ticket as its index; the run's
  // length.
  std::size_t send_run(std::size_t max) {
    std::uint64_t first = 0;
    const std::size_t n = channel_.try_claim_run(first, max);
    for (std::uint64_t ticket = first; ticket != first + n; ++ticket) publish(ticket);
    return n;
  }
  void publish(std::uint64_t ticket) {
    event* slot = channel_.slot_of(ticket);
    *slot = event::text_delta(static_cast<std::uint16_t>(ticket), "x");
    channel_.publish(slot, ticket);
  }
  // Takes a run of up to `max`, frees each slot, and returns the events' indices in the order taken.
  std::vector<std::uint64_t> take_run(std::size_t max) {
    std::uint64_t first = 0;
    const std::size_t n = channel_.try_take_run(first, max);
    std::vector<std::uint64_t> indices;
    for (std::uint64_t ticket = first; ticket != first + n; ++ticket) {
      indices.push_back(channel_.slot_of(ticket)->index());
      channel_.release_slot(ticket);
    }
    return indices;
  }

 private:
  std::vector<event> slots_;
  std::vector<std::atomic<std::uint64_t>> turns_;  // constructed by the channel
  mpmc_channel channel_;
};

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {  // [first, last)
  std::vector<std::uint64_t> out;
  for (std::uint64_t i = first; i < last; ++i) out.push_back(i);
  return out;
}

TEST(MpmcChannel, ARunClaimTakesEveryFreeTicketUpToItsLimit) {
  channel_fixture f(8);
  EXPECT_EQ(f.send_run(5), 5u);
  EXPECT_EQ(f.send_run(8), 3u) << "only three slots were left";
  EXPECT_EQ(f.send_run(1), 0u) << "full";
  EXPECT_EQ(f.channel().accepted(), 8u);
  EXPECT_EQ(f.take_run(8), range(0, 8));
  EXPECT_TRUE(f.take_run(8).empty()) << "empty";
}

TEST(MpmcChannel, ARunClaimStopsAtTheFirstSlotNotYetFreedAcrossTheWrap) {
  channel_fixture f(8);
  ASSERT_EQ(f.send_run(8), 8u);
  ASSERT_EQ(f.take_run(3), range(0, 3));  // slots of tickets 0-2 free for tickets 8-10
  EXPECT_EQ(f.send_run(8), 3u) << "ticket 11's slot still holds ticket 3";
  EXPECT_EQ(f.take_run(16), range(3, 11)) << "one ticket order through the wrap";
}

TEST(MpmcChannel, ARunTakeStopsAtTheFirstUnpublishedTicket) {
  channel_fixture f(8);
  std::uint64_t first = 0;
  ASSERT_EQ(f.channel().try_claim_run(first, 4), 4u);
  f.publish(first);
  f.publish(first + 1);
  f.publish(first + 3);  // ticket 2 claimed, not yet published
  EXPECT_EQ(f.take_run(8), range(0, 2));
  EXPECT_TRUE(f.take_run(8).empty()) << "ticket 3 is published, but a consumer never passes ticket 2";
  f.publish(first + 2);
  EXPECT_EQ(f.take_run(8), range(2, 4));
}

TEST(MpmcChannel, RunsAndSingleClaimsShareOneTicketOrder) {
  channel_fixture f(16);
  std::uint64_t ticket = 0;
  ASSERT_EQ(f.send_run(3), 3u);
  event* slot = f.channel().try_claim(ticket);
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(ticket, 3u);
  f.publish(ticket);
  EXPECT_EQ(f.send_run(2), 2u);
  EXPECT_EQ(f.take_run(2), range(0, 2));
  ASSERT_NE(f.channel().try_take(ticket), nullptr);
  EXPECT_EQ(ticket, 2u);
  f.channel().release_slot(ticket);
  EXPECT_EQ(f.take_run(16), range(3, 6));
}

TEST(MpmcChannel, ARunIsNeverLongerThanTheRing) {
  channel_fixture f(4);
  EXPECT_EQ(f.send_run(100), 4u);
  EXPECT_EQ(f.take_run(100), range(0, 4));
  EXPECT_EQ(f.send_run(100), 4u);
  EXPECT_EQ(f.take_run(100), range(4, 8));
}

}  // namespace
