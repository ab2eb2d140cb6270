// rill/detail/mpmc_channel.hpp: bounded multi-producer multi-consumer ring of events plus its payload arena.
// Installed, not for users (rill::stream wraps it).
//
// Dmitry Vyukov's bounded MPMC design: every slot has a turn counter; a producer that wins ticket t (a CAS
// on the tail) waits for nothing, it owns slot t % capacity once turn == t, writes the event, and sets
// turn = t + 1; the consumer that wins ticket t at the head (CAS) reads it once turn == t + 1 and sets
// turn = t + capacity, handing the slot to the producer of ticket t + capacity. Tickets are claimed in
// order, so each producer's events keep their order for every consumer.
//
// Progress: lock-free claims (a failed CAS means another thread claimed). A consumer at ticket t sees the
// ring as empty until the producer of t publishes, even if later tickets are published: a producer
// preempted between claim and publish delays consumers (the known trade-off of this design).
//
// Turns live in their own array (8 bytes per slot), not inside the event, so an event can be built in
// place in its slot without racing a consumer that polls the turn.
//
// Lanes: a stream may split its capacity over several channels laid out back to back (stream_options::
// lanes), so producers on different cores stop contending for one tail. The first channel, lane 0, holds the
// stream's arena and the lane count; the others are plain rings.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "rill/detail/layout.hpp"
#include "rill/detail/record_arena.hpp"
#include "rill/event.hpp"

namespace rill::detail {

class mpmc_channel {
 public:
  // `turns` must hold `capacity` atomics (constructed here); `arena_memory` zeroed bytes or null.
  // `room_waiters`: where producers blocked on a full arena park (null when no producer ever blocks).
  // `lanes`: how many channels (this one first) the stream constructed back to back; 1 for one ring.
  mpmc_channel(event* slots, std::atomic<std::uint64_t>* turns, std::size_t capacity, char* arena_memory,
               std::size_t arena_bytes, wait_word* room_waiters, std::uint32_t lanes = 1) noexcept
      : slots_(slots),
        turns_(turns),
        mask_(capacity - 1),
        turn_shift_(lanes > 1 ? 0 : turn_shift_for(capacity)),
        lanes_(lanes) {
    for (std::size_t i = 0; i < capacity; ++i) new (&turns_[turn_index(i)]) std::atomic<std::uint64_t>(i);
    if (arena_memory != nullptr) arena_.init(arena_memory, arena_bytes, room_waiters);
  }

  // ---- producer ----

  // Claims the next ticket and returns its slot, or nullptr when the ring is full.
  event* try_claim(std::uint64_t& ticket) noexcept {
    std::uint64_t tail = tail_.load(std::memory_order_relaxed);  // [M0] a guess; the turn check decides
    while (true) {
      // [M1] acquire: pairs with [M4]; the consumer that freed this slot finished reading it.
      const std::uint64_t turn = turns_[turn_index(tail)].load(std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(turn - tail);
      if (diff == 0) {
        // [M0'] relaxed CAS: the slot's ownership is already acquired through its turn ([M1]).
        if (tail_.compare_exchange_weak(tail, tail + 1, std::memory_order_relaxed, std::memory_order_relaxed)) {
          ticket = tail;
          return &slots_[tail & mask_];
        }
      } else if (diff < 0) {
        return nullptr;  // the slot still holds the event of ticket tail - capacity: full
      } else {
        tail = tail_.load(std::memory_order_relaxed);  // [M0] again: another producer took this ticket
      }
    }
  }
  // Publishes the slot of `ticket`, stamping its sequence number.
  void publish(event* slot, std::uint64_t ticket) noexcept {
    slot->set_seq(ticket);
    // [M2] release: the event and its arena record are visible to the consumer that acquires [M3].
    turns_[turn_index(ticket)].store(ticket + 1, std::memory_order_release);
  }

  // ---- consumer ----

  // Claims the oldest published event; returns its slot (owned until release_slot) or nullptr when none.
  event* try_take(std::uint64_t& ticket) noexcept {
    std::uint64_t head = head_.load(std::memory_order_relaxed);  // [M5] a guess; the turn check decides
    while (true) {
      // [M3] acquire: pairs with [M2]; the slot's bytes are visible.
      const std::uint64_t turn = turns_[turn_index(head)].load(std::memory_order_acquire);
      const auto diff = static_cast<std::int64_t>(turn - (head + 1));
      if (diff == 0) {
        // [M5'] relaxed CAS: ownership comes from the turn ([M3]).
        if (head_.compare_exchange_weak(head, head + 1, std::memory_order_relaxed, std::memory_order_relaxed)) {
          ticket = head;
          return &slots_[head & mask_];
        }
      } else if (diff < 0) {
        return nullptr;  // the producer of this ticket has not published yet: empty from here
      } else {
        head = head_.load(std::memory_order_relaxed);  // [M5] again: another consumer took it
      }
    }
  }
  // Hands the slot of `ticket` to the producer of ticket + capacity.
  void release_slot(std::uint64_t ticket) noexcept {
    // [M4] release: our reads of the slot happen before its next producer writes it; pairs with [M1].
    turns_[turn_index(ticket)].store(ticket + mask_ + 1, std::memory_order_release);
  }

  // ---- either side, approximate ----
  // Snapshots for counters and end-of-stream: relaxed, they order nothing (end-of-stream acquires first).
  std::uint64_t accepted() const noexcept { return tail_.load(std::memory_order_relaxed); }
  std::uint64_t consumed() const noexcept { return head_.load(std::memory_order_relaxed); }
  std::size_t capacity() const noexcept { return mask_ + 1; }
  record_arena& arena() noexcept { return arena_; }
  const record_arena& arena() const noexcept { return arena_; }

  // ---- lanes (called on lane 0) ----
  std::uint32_t lanes() const noexcept { return lanes_; }
  // Lane `i` < lanes(): the channels were constructed back to back in one array, this one first.
  mpmc_channel& lane(std::uint32_t i) noexcept { return this[i]; }
  const mpmc_channel& lane(std::uint32_t i) const noexcept { return this[i]; }

 private:
  // Turns are 8 bytes, 16 to a 128-byte pair of lines. Stored in ticket order, consecutive tickets (claimed
  // by different producers, taken by different consumers at the same moment) would share a line; instead
  // ticket i's turn lives at (i mod groups) * 16 + i / groups, with groups = capacity / 16, so consecutive
  // tickets land 128 bytes apart (atomic_queue's index remapping). A bijection of [0, capacity); identity
  // below 32 slots, and in lanes: there consecutive tickets mostly come from one producer and go to one
  // consumer, so sixteen turns to a line save transfers (measured: 2 producers, 1 consumer, 2 lanes,
  // 40 -> 52 M events/s).
  static constexpr unsigned kTurnsPerGroupLog2 = 4;
  static unsigned turn_shift_for(std::size_t capacity) noexcept {
    unsigned log2 = 0;
    while ((std::size_t{1} << log2) < capacity) ++log2;
    return log2 > kTurnsPerGroupLog2 ? log2 - kTurnsPerGroupLog2 : 0;  // log2(groups); 0: identity
  }
  std::size_t turn_index(std::uint64_t ticket) const noexcept {
    const std::uint64_t i = ticket & mask_;
    if (turn_shift_ == 0) return i;
    const std::uint64_t group_mask = (std::uint64_t{1} << turn_shift_) - 1;
    return ((i & group_mask) << kTurnsPerGroupLog2) | (i >> turn_shift_);
  }

  event* const slots_;
  std::atomic<std::uint64_t>* const turns_;
  const std::uint64_t mask_;
  const unsigned turn_shift_;
  const std::uint32_t lanes_;
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> tail_{0};
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> head_{0};
  alignas(kFalseSharingRange) record_arena arena_;
};

}  // namespace rill::detail
