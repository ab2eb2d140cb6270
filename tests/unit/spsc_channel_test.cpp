// White-box tests of rill::detail::spsc_channel's slot words (docs/memory_model.md [S1]-[S6]): a slot's
// sequence word holds the position published there, or kFree once the consumer has taken it, and both
// sides go by that word alone. rill::stream's contract tests cover the same ring through the public API;
// these pin the word protocol and the batch room search (free_slots), whose answers the API cannot show.
#include "rill/detail/spsc_channel.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "rill/detail/layout.hpp"
#include "rill/event.hpp"

namespace {

using rill::event;
using rill::detail::slot_ring;
using rill::detail::spsc_channel;

// A channel over its own slots (no arena), as rill::stream lays one out: the slots 64-byte aligned.
class channel_fixture {
 public:
  channel_fixture(std::size_t capacity, unsigned spacing_log2, std::size_t resume_room = 1)
      : slots_(static_cast<event*>(::operator new (slot_ring::bytes_for(capacity, spacing_log2),
                                                   std::align_val_t{rill::detail::kCacheLine}))),
        channel_(std::make_unique<spsc_channel>(slot_ring(slots_, capacity, spacing_log2), nullptr, 0,
                                                nullptr, resume_room)) {}
  ~channel_fixture() {
    channel_.reset();
    ::operator delete (slots_, std::align_val_t{rill::detail::kCacheLine});
  }
  channel_fixture(const channel_fixture&) = delete;
  channel_fixture& operator=(const channel_fixture&) = delete;

  spsc_channel& channel() { return *channel_; }

  // One send through the single-event path; false when the slot is not free.
  bool send(std::uint16_t index) {
    std::uint64_t position;
    event* slot = channel_->try_reserve(position);
    if (slot == nullptr) return false;
    spsc_channel::fill(slot, event::text_delta(index, "x"));
    channel_->publish(slot, position);
    return true;
  }
  // One receive through the single-event path; the event's index, or -1 when none is published.
  int receive() {
    const std::uint64_t position = channel_->consumer_position();
    event* slot = channel_->consumer_slot(position);
    if (!spsc_channel::is_published(slot, position)) return -1;
    const int index = slot->index();
    EXPECT_EQ(slot->seq(), position);
    channel_->pop_one(slot, position);
    return index;
  }

 private:
  event* slots_;
  std::unique_ptr<spsc_channel> channel_;
};

class SpscChannelWords : public ::testing::TestWithParam<unsigned> {};  // spacing_log2: packed, padded

TEST_P(SpscChannelWords, SlotWordAlternatesBetweenItsPositionAndFree) {
  channel_fixture f(4, GetParam());
  spsc_channel& c = f.channel();
  for (std::uint64_t p = 0; p < 4; ++p) {
    EXPECT_TRUE(spsc_channel::is_free(c.producer_slot(p))) << "every slot starts free: " << p;
  }
  for (std::uint64_t lap = 0; lap < 3; ++lap) {
    for (std::uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(f.send(static_cast<std::uint16_t>(lap * 4 + i)));
    EXPECT_FALSE(f.send(99)) << "a fifth send on a ring of four";
    for (std::uint64_t i = 0; i < 4; ++i) {
      const std::uint64_t position = lap * 4 + i;
      event* slot = c.consumer_slot(position);
      EXPECT_EQ(slot->seq(), position) << "published: the word is the position";
      EXPECT_FALSE(spsc_channel::is_free(slot));
      ASSERT_EQ(f.receive(), static_cast<int>(position));
      EXPECT_TRUE(spsc_channel::is_free(slot)) << "taken: the word is kFree again";
      EXPECT_FALSE(spsc_channel::is_published(slot, position + 4))
          << "kFree is never the next lap's position";
    }
    EXPECT_EQ(f.receive(), -1);
    EXPECT_EQ(c.consumed(), (lap + 1) * 4);
    EXPECT_EQ(c.accepted(), (lap + 1) * 4);
  }
}

TEST_P(SpscChannelWords, ReceivingOneEventFreesExactlyItsSlot) {
  channel_fixture f(4, GetParam());
  for (std::uint16_t i = 0; i < 4; ++i) ASSERT_TRUE(f.send(i));
  ASSERT_FALSE(f.send(4));
  ASSERT_EQ(f.receive(), 0);
  EXPECT_TRUE(f.send(4)) << "one slot freed, one send fits";
  EXPECT_FALSE(f.send(5));
  for (int expected = 1; expected <= 4; ++expected) EXPECT_EQ(f.receive(), expected);
}

TEST_P(SpscChannelWords, FreeSlotsCountsTheFreeRunFromTheProducersPosition) {
  channel_fixture f(8, GetParam());
  spsc_channel& c = f.channel();
  EXPECT_EQ(c.free_slots(0), 0u);
  EXPECT_EQ(c.free_slots(5), 5u);
  EXPECT_EQ(c.free_slots(8), 8u);
  EXPECT_EQ(c.free_slots(100), 8u) << "never more than the capacity";
  for (std::uint16_t i = 0; i < 8; ++i) ASSERT_TRUE(f.send(i));
  EXPECT_EQ(c.free_slots(8), 0u) << "full";
  // Every count of slots the consumer has freed, each asked for with every limit.
  for (int freed = 1; freed <= 8; ++freed) {
    ASSERT_EQ(f.receive(), freed - 1);
    for (std::size_t limit = 1; limit <= 9; ++limit) {
      const std::size_t expected = std::min<std::size_t>(limit, static_cast<std::size_t>(freed));
      EXPECT_EQ(c.free_slots(limit), expected) << "freed " << freed << ", limit " << limit;
    }
  }
}

TEST_P(SpscChannelWords, FreeSlotsFollowsTheRunAcrossTheWrap) {
  channel_fixture f(8, GetParam());
  spsc_channel& c = f.channel();
  // Producer at position 5, consumer at 3: slots of positions 5..10 are free (3 + 8 = 11 is not).
  for (std::uint16_t i = 0; i < 5; ++i) ASSERT_TRUE(f.send(i));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(f.receive(), i);
  EXPECT_EQ(c.free_slots(8), 6u);
  EXPECT_EQ(c.free_slots(6), 6u);
  EXPECT_EQ(c.free_slots(4), 4u);
}

TEST_P(SpscChannelWords, PopOfABatchMarksEverySlotItTook) {
  channel_fixture f(8, GetParam());
  spsc_channel& c = f.channel();
  for (std::uint16_t i = 0; i < 8; ++i) ASSERT_TRUE(f.send(i));
  ASSERT_EQ(c.available(8), 8u);
  c.pop(5);
  EXPECT_EQ(c.consumed(), 5u);
  for (std::uint64_t p = 0; p < 8; ++p) {
    EXPECT_EQ(spsc_channel::is_free(c.consumer_slot(p)), p < 5) << "position " << p;
  }
  EXPECT_EQ(c.free_slots(8), 5u);
  EXPECT_EQ(c.available(8), 3u);
}

// A producer refused for a full ring polls only the last slot of its resume room, and both send paths
// (one event, a batch's room) go on once that slot is free: then the whole room is.
TEST_P(SpscChannelWords, RefusedProducerGoesOnOnlyWithItsResumeRoomFree) {
  channel_fixture f(8, GetParam(), 4);
  spsc_channel& c = f.channel();
  std::uint16_t next_sent = 0;
  int next_received = 0;
  for (; next_sent < 8; ++next_sent) ASSERT_TRUE(f.send(next_sent));
  EXPECT_FALSE(c.resuming());
  EXPECT_FALSE(f.send(next_sent)) << "full";
  EXPECT_TRUE(c.resuming());
  for (int freed = 1; freed < 4; ++freed) {
    ASSERT_EQ(f.receive(), next_received++);
    EXPECT_FALSE(c.resume_room_may_be_free()) << freed << " freed";
    EXPECT_FALSE(f.send(next_sent)) << freed << " slots free, the resume room is 4";
    EXPECT_EQ(c.free_slots(8), 0u) << freed << " slots free, the resume room is 4";
  }
  ASSERT_EQ(f.receive(), next_received++);
  EXPECT_TRUE(c.resume_room_may_be_free());
  EXPECT_EQ(c.free_slots(8), 4u) << "the room is free: a batch sees all of it";
  EXPECT_FALSE(c.resuming());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(f.send(next_sent++)) << "sends go on into the freed room";
  EXPECT_FALSE(f.send(next_sent)) << "full again";
  // The batch path starts the wait too.
  for (int i = 0; i < 8; ++i) ASSERT_EQ(f.receive(), next_received++);
  EXPECT_TRUE(c.resume_room_may_be_free());
  ASSERT_EQ(c.free_slots(8), 8u);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(f.send(next_sent++));
  EXPECT_EQ(c.free_slots(8), 0u);
  EXPECT_TRUE(c.resuming());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(f.receive(), next_received++);
  EXPECT_FALSE(f.send(next_sent));
  ASSERT_EQ(f.receive(), next_received++);
  EXPECT_TRUE(f.send(next_sent++));
  while (f.receive() == next_received) ++next_received;
  EXPECT_EQ(next_received, next_sent) << "every event arrived once, in order";
}

// A resume room of 1: a refused producer takes the next slot freed, as before.
TEST_P(SpscChannelWords, ResumeRoomOfOneRefillsAtOnce) {
  channel_fixture f(4, GetParam(), 1);
  spsc_channel& c = f.channel();
  for (std::uint16_t i = 0; i < 4; ++i) ASSERT_TRUE(f.send(i));
  EXPECT_FALSE(f.send(4));
  EXPECT_FALSE(c.resuming());
  EXPECT_FALSE(c.resume_room_may_be_free());
  ASSERT_EQ(f.receive(), 0);
  EXPECT_TRUE(c.resume_room_may_be_free());
  EXPECT_TRUE(f.send(4));
}

INSTANTIATE_TEST_SUITE_P(Layouts, SpscChannelWords, ::testing::Values(0u, 1u),
                         [](const ::testing::TestParamInfo<unsigned>& param_info) {
                           return param_info.param == 0 ? "packed" : "padded";
                         });

}  // namespace
