// rill/detail/spsc_channel.hpp: one producer, one consumer ring of events plus its payload arena.
// Installed, not for users (rill::stream wraps it).
//
// Each slot publishes itself: the producer writes a slot's bytes, then stores its sequence number (the
// event's own seq word, event::kSeqOffset) with release; the consumer at position h acquires that word and
// takes the slot when it reads h. So the consumer never reads the producer's index line: one cache-line
// transfer per event (the slot) instead of two (tail, then slot) when the ring runs near-empty. The
// producer still owns `tail_` (its position, for snapshots) and keeps a cached copy of the consumer's
// `head_`, reloaded (acquire) only when the ring looks full. Producer fields, consumer fields and the arena
// sit on separate 128-byte lines. Slots are 64-byte events, 64-byte aligned.
//
// Because a consumer may poll a slot's sequence word while the producer writes that slot, the producer must
// never write the word but through publish(): fill() copies an event's other 56 bytes, and nothing hands
// out a ring slot for the caller to build in (rill::stream's try_claim stages the event in the claim). The
// one exception is a batch (rill::stream::try_send_batch): a consumer reads slot h + 1 only after it has
// acquired slot h's sequence number, so the slots behind the batch's first one, which is published last,
// are polled by no one until then and may be written whole, sequence word included, with plain stores.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "rill/detail/layout.hpp"
#include "rill/detail/record_arena.hpp"
#include "rill/event.hpp"

namespace rill::detail {

class spsc_channel {
 public:
  // A sequence word no position ever has: every slot starts with it (seq h appears only once published).
  static constexpr std::uint64_t kUnpublished = ~std::uint64_t{0};

  // `slots`: capacity 64-byte-aligned events; `arena_memory`: zeroed bytes (or null when arena_bytes is 0).
  // `room_waiters`: where producers blocked on a full arena park (null when no producer ever blocks).
  // Writes every slot's sequence word (kUnpublished); the channel is published to other threads afterwards.
  spsc_channel(event* slots, std::size_t capacity, char* arena_memory, std::size_t arena_bytes,
               wait_word* room_waiters) noexcept
      : slots_(slots), mask_(capacity - 1), consumer_slots_(slots), consumer_mask_(capacity - 1) {
    for (std::size_t i = 0; i < capacity; ++i) {
      // Before the channel is shared: ordered for both sides by the pointer's publication ([C2]/[C1]).
      seq_word(&slots[i]).store(kUnpublished, std::memory_order_relaxed);
    }
    if (arena_memory != nullptr) arena_.init(arena_memory, arena_bytes, room_waiters);
  }

  // ---- producer ----

  // Returns the slot for the next event, or nullptr when the ring is full. Does not publish. Fill it only
  // through fill() (and event setters other than set_seq), never by assigning a whole event.
  event* try_reserve() noexcept {
    std::uint64_t position;
    return try_reserve(position);
  }
  // As above, also giving the slot's position (its sequence number) for publish(slot, position).
  event* try_reserve(std::uint64_t& position) noexcept {
    position = next_sequence();
    return has_room(position) ? producer_slot(position) : nullptr;
  }
  // The parts of try_reserve, for a caller that tests room without a pointer (one branch fewer): whether the
  // slot for `position` (next_sequence()) is free, and that slot.
  bool has_room(std::uint64_t position) noexcept {
    if (position - cached_head_ > mask_) {
      // [S2] acquire: pairs with [S3]; the consumer finished reading the slot before it moved head_.
      cached_head_ = head_.load(std::memory_order_acquire);
      return position - cached_head_ <= mask_;
    }
    return true;
  }
  event* producer_slot(std::uint64_t position) const noexcept { return &slots_[position & mask_]; }
  // Copies every byte of `src` into `slot` but the sequence word (publish() writes that one).
  static void fill(event* slot, const event& src) noexcept {
    constexpr std::size_t seq_end = event::kSeqOffset + sizeof(std::uint64_t);
    auto* to = reinterpret_cast<unsigned char*>(slot);
    const auto* from = reinterpret_cast<const unsigned char*>(&src);
    std::memcpy(to, from, event::kSeqOffset);
    std::memcpy(to + seq_end, from + seq_end, sizeof(event) - seq_end);
  }
  std::uint64_t next_sequence() const noexcept { return tail_.load(std::memory_order_relaxed); }  // own index
  // Publishes the slot returned by try_reserve(): its sequence number is the publication.
  void publish(event* slot) noexcept { publish(slot, tail_.load(std::memory_order_relaxed)); }  // own index
  // `position`: what try_reserve(position) gave.
  void publish(event* slot, std::uint64_t position) noexcept {
    // [S1] release: the slot's bytes and its arena record are visible to a consumer that reads this
    // sequence number; pairs with [S4].
    seq_word(slot).store(position, std::memory_order_release);
    tail_.store(position + 1, std::memory_order_relaxed);  // [S5] a position snapshot; orders nothing
  }
  // Batch publication: the producer writes the slots of positions next_sequence() + i (fill() and
  // publish_slot(), or whole: see the file comment), publishes the first of them with publish_slot() last,
  // then commits the count with advance(). The ring base and mask are read once so that a batch loop keeps
  // them in registers.
  event* producer_slots() const noexcept { return slots_; }
  std::uint64_t producer_mask() const noexcept { return mask_; }
  static void publish_slot(event* slot, std::uint64_t seq) noexcept {
    seq_word(slot).store(seq, std::memory_order_release);  // [S1] as in publish()
  }
  void advance(std::size_t count) noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);  // own index
    tail_.store(tail + count, std::memory_order_relaxed);              // [S5]
  }
  // Free slots from the producer's point of view (reloads head_ when the cache says fewer than `wanted`).
  std::size_t free_slots(std::size_t wanted) noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);  // own index
    std::size_t free = mask_ + 1 - static_cast<std::size_t>(tail - cached_head_);
    if (free < wanted) {
      cached_head_ = head_.load(std::memory_order_acquire);  // [S2]
      free = mask_ + 1 - static_cast<std::size_t>(tail - cached_head_);
    }
    return free;
  }

  // ---- consumer ----

  // The oldest event, in three parts so the caller tests publication without a pointer: the consumer's
  // position, its slot, and whether that slot holds the event of that position (then take it and
  // pop_one(position)).
  std::uint64_t consumer_position() const noexcept { return head_.load(std::memory_order_relaxed); }  // own index
  event* consumer_slot(std::uint64_t position) const noexcept { return &consumer_slots_[position & consumer_mask_]; }
  static bool is_published(event* slot, std::uint64_t position) noexcept {
    // [S4] acquire: pairs with [S1]; the slot's bytes are visible once its sequence number is ours.
    return seq_word(slot).load(std::memory_order_acquire) == position;
  }
  // Number of published events visible to the consumer, at most `limit` (reads their sequence words).
  std::size_t available(std::size_t limit) noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);  // own index
    std::size_t n = 0;
    while (n < limit) {
      event* slot = &consumer_slots_[(head + n) & consumer_mask_];
      if (seq_word(slot).load(std::memory_order_acquire) != head + n) break;  // [S4] as in is_published
      ++n;
    }
    return n;
  }
  // The consumer's view of the slot array, for walking a batch without recomputing indices.
  event* ring_begin() noexcept { return consumer_slots_; }
  event* ring_end() noexcept { return consumer_slots_ + consumer_mask_ + 1; }
  event* slot_after_head(std::size_t i) noexcept {
    return &consumer_slots_[(head_.load(std::memory_order_relaxed) + i) & consumer_mask_];  // own index
  }
  // Copies the `count` oldest slots (published: available() counted them) to `to`, in order.
  void copy_out(event* to, std::size_t count) const noexcept {
    const std::size_t first = head_.load(std::memory_order_relaxed) & consumer_mask_;  // own index
    const std::size_t before_end = std::min(count, consumer_mask_ + 1 - first);
    std::memcpy(static_cast<void*>(to), consumer_slots_ + first, before_end * sizeof(event));
    std::memcpy(static_cast<void*>(to + before_end), consumer_slots_, (count - before_end) * sizeof(event));
  }
  // Frees the slot at `position` (consumer_position() when it was taken).
  void pop_one(std::uint64_t position) noexcept {
    head_.store(position + 1, std::memory_order_release);  // [S3] as in pop()
  }
  // Frees the `count` oldest slots.
  void pop(std::size_t count = 1) noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);  // own index
    // [S3] release: our reads of the slots happen before the producer reuses them; pairs with [S2].
    head_.store(head + count, std::memory_order_release);
  }

  // ---- either side, approximate ----
  // Snapshots for counters and end-of-stream: relaxed, they order nothing (end-of-stream acquires first).
  std::uint64_t accepted() const noexcept { return tail_.load(std::memory_order_relaxed); }
  std::uint64_t consumed() const noexcept { return head_.load(std::memory_order_relaxed); }
  std::size_t capacity() const noexcept { return mask_ + 1; }
  record_arena& arena() noexcept { return arena_; }
  const record_arena& arena() const noexcept { return arena_; }

 private:
  // A slot's sequence word, accessed atomically. Everything else in a slot is plain data ordered by it.
  static std::atomic_ref<std::uint64_t> seq_word(event* slot) noexcept {
    return std::atomic_ref<std::uint64_t>(
        *reinterpret_cast<std::uint64_t*>(reinterpret_cast<unsigned char*>(slot) + event::kSeqOffset));
  }
  static_assert(event::kSeqOffset % std::atomic_ref<std::uint64_t>::required_alignment == 0);
  static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);

  // Producer line: written by the producer only (plus the immutable slot pointer it uses).
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> tail_{0};
  std::uint64_t cached_head_ = 0;
  event* const slots_;
  const std::uint64_t mask_;
  // Consumer line: its own copies of the immutable fields, so it never reads the producer's line.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> head_{0};
  event* const consumer_slots_;
  const std::uint64_t consumer_mask_;
  // Arena: its own producer and release lines.
  alignas(kFalseSharingRange) record_arena arena_;
};

}  // namespace rill::detail
