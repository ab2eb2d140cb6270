// rill/detail/mpmc_channel.hpp: bounded multi-producer multi-consumer ring of events plus its payload arena.
// Installed, not for users (rill::stream wraps it).
//
// Dmitry Vyukov's bounded MPMC design: every slot has a turn counter; a producer that wins ticket t (a CAS
// on the tail) waits for nothing, it owns slot t % capacity once turn == t, writes the event, and sets
// turn = t + 1; the consumer that wins ticket t at the head (CAS) reads it once turn == t + 1 and sets
// turn = t + capacity, handing the slot to the producer of ticket t + capacity. Tickets are claimed in
// order, so each producer's events keep their order for every consumer. Batches claim a run of consecutive
// tickets with one CAS, after checking each run slot's turn (try_claim_run, try_take_run): a thread then
// contends for the tail or head once per run, not once per event.
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
    return try_claim_run(ticket, 1) != 0 ? slot_of(ticket) : nullptr;
  }
  // Claims up to `max` (at least 1) consecutive tickets whose slots are free with one CAS on the tail, so
  // producers of a batch contend once per run rather than once per event. Returns how many (0: full at the
  // tail), the first in `first_ticket`; each is then filled and published (publish) like a single claim,
  // in ticket order, since consumers stop at the first unpublished ticket.
  std::size_t try_claim_run(std::uint64_t& first_ticket, std::size_t max) noexcept {
    // Free for ticket t: turn == t ([M0] [M1] [M0']).
    return claim_run(tail_, 0, first_ticket, max);
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
    return try_take_run(ticket, 1) != 0 ? slot_of(ticket) : nullptr;
  }
  // Claims up to `max` (at least 1) consecutive published events, oldest first, with one CAS on the head;
  // returns how many (0: none published at the head), the first in `first_ticket`. Each slot is owned until
  // its release_slot.
  std::size_t try_take_run(std::uint64_t& first_ticket, std::size_t max) noexcept {
    // Published for ticket t: turn == t + 1 ([M5] [M3] [M5']).
    return claim_run(head_, 1, first_ticket, max);
  }
  // The slot of a claimed or taken ticket.
  event* slot_of(std::uint64_t ticket) noexcept { return &slots_[ticket & mask_]; }
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
  // Both sides' claim: moves `index` (tail_ or head_) past up to `max` consecutive tickets t whose turns read
  // t + `ready` (0: free for a producer, 1: published for a consumer); how many, the first in `first_ticket`.
  // 0 when the ticket at `index` is not ready yet (full, or empty from here).
  std::size_t claim_run(std::atomic<std::uint64_t>& index, std::uint64_t ready, std::uint64_t& first_ticket,
                        std::size_t max) noexcept {
    std::uint64_t at = index.load(std::memory_order_relaxed);  // [M0]/[M5] a guess; the turn checks decide
    while (true) {
      std::size_t n = 0;
      std::int64_t diff = 0;
      for (; n < max; ++n) {
        // [M1]/[M3] acquire: pairs with [M4] (the consumer that freed the slot finished reading it) or [M2]
        // (the producer's bytes are visible). A ready turn stays so until its ticket is claimed or taken,
        // which only the CAS below does: it fails if any of these was.
        const std::uint64_t turn = turns_[turn_index(at + n)].load(std::memory_order_acquire);
        diff = static_cast<std::int64_t>(turn - (at + n + ready));
        if (diff != 0) break;
      }
      if (n != 0) {
        // [M0']/[M5'] relaxed CAS: ownership of the slots comes from their turns ([M1]/[M3]).
        if (index.compare_exchange_weak(at, at + n, std::memory_order_relaxed, std::memory_order_relaxed)) {
          first_ticket = at;
          return n;
        }
      } else if (diff < 0) {
        return 0;  // the turn is a lap behind (full) or not yet published (empty from here)
      } else {
        at = index.load(std::memory_order_relaxed);  // [M0]/[M5] again: another thread took this ticket
      }
    }
  }

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
