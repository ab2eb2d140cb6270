// rill/detail/spsc_channel.hpp: one producer, one consumer ring of events plus its payload arena.
// Installed, not for users (rill::stream wraps it).
//
// Classic cached-index ring: the producer owns `tail_`, the consumer owns `head_`; each keeps a private copy
// of the other's index and reloads it (acquire) only when the ring looks full or empty. Producer fields,
// consumer fields and counters sit on separate 128-byte lines. Slots are 64-byte events, 64-byte aligned.
#pragma once

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
  // `slots`: capacity 64-byte-aligned events; `arena_memory`: zeroed bytes (or null when arena_bytes is 0).
  // `room_waiters`: where producers blocked on a full arena park (null when no producer ever blocks).
  spsc_channel(event* slots, std::size_t capacity, char* arena_memory, std::size_t arena_bytes,
               wait_word* room_waiters) noexcept
      : slots_(slots), mask_(capacity - 1), consumer_slots_(slots), consumer_mask_(capacity - 1) {
    if (arena_memory != nullptr) arena_.init(arena_memory, arena_bytes, room_waiters);
  }

  // ---- producer ----

  // Returns the slot for the next event, or nullptr when the ring is full. Does not publish.
  event* try_reserve() noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);  // own index: only we write it
    if (tail - cached_head_ > mask_) {
      // [S2] acquire: pairs with [S3]; the consumer finished reading the slot before it moved head_.
      cached_head_ = head_.load(std::memory_order_acquire);
      if (tail - cached_head_ > mask_) return nullptr;
    }
    return &slots_[tail & mask_];
  }
  std::uint64_t next_sequence() const noexcept { return tail_.load(std::memory_order_relaxed); }  // own index
  // Publishes the slot returned by try_reserve(), stamping its sequence number.
  void publish(event* slot) noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);  // own index
    slot->set_seq(tail);
    // [S1] release: the slot's bytes and its arena record are visible before the new tail; pairs with [S4].
    tail_.store(tail + 1, std::memory_order_release);
  }
  // Publishes the `count` slots after the tail, filled (sequence numbers included) through slot_after_tail().
  void publish_many(std::size_t count) noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);  // own index
    tail_.store(tail + count, std::memory_order_release);  // [S1] as above, once for the whole batch
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
  event* slot_after_tail(std::size_t i) noexcept {
    return &slots_[(tail_.load(std::memory_order_relaxed) + i) & mask_];  // own index
  }

  // ---- consumer ----

  // The oldest published event, or nullptr when none is visible.
  event* try_front() noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);  // own index: only we write it
    if (head == cached_tail_) {
      // [S4] acquire: pairs with [S1]; the slot's bytes are visible.
      cached_tail_ = tail_.load(std::memory_order_acquire);
      if (head == cached_tail_) return nullptr;
    }
    return &consumer_slots_[head & consumer_mask_];
  }
  // Number of published events visible to the consumer, at most `limit`.
  std::size_t available(std::size_t limit) noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);  // own index
    if (cached_tail_ - head < limit) cached_tail_ = tail_.load(std::memory_order_acquire);  // [S4]
    const std::size_t n = static_cast<std::size_t>(cached_tail_ - head);
    return n < limit ? n : limit;
  }
  // The consumer's view of the slot array, for walking a batch without recomputing indices.
  event* ring_begin() noexcept { return consumer_slots_; }
  event* ring_end() noexcept { return consumer_slots_ + consumer_mask_ + 1; }
  event* slot_after_head(std::size_t i) noexcept {
    return &consumer_slots_[(head_.load(std::memory_order_relaxed) + i) & consumer_mask_];  // own index
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
  // Producer line: written by the producer only (plus the immutable slot pointer it uses).
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> tail_{0};
  std::uint64_t cached_head_ = 0;
  event* const slots_;
  const std::uint64_t mask_;
  // Consumer line: its own copies of the immutable fields, so it never reads the producer's line but for
  // [S4].
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> head_{0};
  std::uint64_t cached_tail_ = 0;
  event* const consumer_slots_;
  const std::uint64_t consumer_mask_;
  // Arena: its own producer and release lines.
  alignas(kFalseSharingRange) record_arena arena_;
};

}  // namespace rill::detail
