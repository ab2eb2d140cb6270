// rill/detail/spsc_channel.hpp: one producer, one consumer ring of events plus its payload arena.
// Installed, not for users (rill::stream wraps it).
//
// Each slot's sequence word (the event's own seq word, event::kSeqOffset) says whose turn the slot is: it
// holds `p` once the event of position p is published there, and kFree once the consumer has taken it (or
// before the first lap). The producer at position p acquires the word and writes the slot when it reads
// kFree, then stores p with release; the consumer at position h acquires the word and takes the slot when
// it reads h, copies it out, then stores kFree with release. The word of a slot only ever alternates
// between kFree and the position of the slot's next event, and each side moves it one way, so kFree needs
// no lap number. Neither side polls the other's index line: each event moves its own slot's line between
// the cores and nothing else. A producer that checked room against the consumer's index
// instead re-read that line once per event whenever the ring ran full, and every re-read cost the consumer
// a transfer of the line it stores on each event: a full ring then stayed full at a fraction of the
// consumer's own rate (docs/design.md, "Free marks"). A batch send finds its room from the marks too
// (free_slots). The consumer still stores its position in `head_`, and the producer in `tail_`, as
// snapshots for counters; neither orders anything. Producer fields, consumer fields and the arena sit on
// separate 128-byte lines. Slots are 64-byte events, 64-byte aligned, either packed (one after the other) or
// padded (one to each 128-byte line pair, the pair's other line unused: slot_ring).
//
// Resume room: once a send finds the ring full, the producer does not take the next freed slot but waits
// until `resume_room` slots are free (it polls the last of them, which tells the same by the argument in
// free_slots), then sends on as usual. A producer that refilled each slot as soon as the consumer freed it
// would work right behind the consumer, in the lines it just touched, and a full ring then drained at a
// fraction of the consumer's own rate; with room to move the two sides meet once per resume_room events
// (docs/design.md, "Resume room"). A resume room of 1 is a channel that refills at once.
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

// Where a ring position's slot lives: slot (position mod capacity) of a ring whose slots lie `stride` bytes
// apart from `base`. A stride of 64 packs the slots; 128 pads them, each 64-byte event on its own 128-byte
// line pair, so the adjacent-line prefetch of a consumer reading one slot never pulls in the line of the
// next slot (which a producer just ahead is about to write). docs/design.md, "Slot layout", has the
// measurements. A multiply rather than a variable shift: the same instruction count as a packed-only ring.
struct slot_ring {
  event* base;
  std::uint64_t mask;    // capacity - 1
  std::uint64_t stride;  // bytes from one slot to the next: sizeof(event) << spacing_log2

  slot_ring(event* slots, std::size_t capacity, unsigned spacing_log2) noexcept
      : base(slots), mask(capacity - 1), stride(sizeof(event) << spacing_log2) {}
  event* at(std::uint64_t position) const noexcept {
    return reinterpret_cast<event*>(reinterpret_cast<unsigned char*>(base) + (position & mask) * stride);
  }
  std::size_t capacity() const noexcept { return static_cast<std::size_t>(mask) + 1; }
  bool packed() const noexcept { return stride == sizeof(event); }
  // Bytes the slots of a ring of `capacity` take: 64 a slot packed (spacing_log2 0), 128 padded (1).
  static std::size_t bytes_for(std::size_t capacity, unsigned spacing_log2) noexcept {
    return (capacity << spacing_log2) * sizeof(event);
  }
};

class spsc_channel {
 public:
  // The sequence word of a slot that holds no event the consumer has yet to take. No position has it.
  static constexpr std::uint64_t kFree = ~std::uint64_t{0};

  // `ring`: its slots (slot_ring::bytes_for(capacity, spacing_log2) bytes, 64-byte aligned); `arena_memory`:
  // zeroed bytes (or null when arena_bytes is 0). `room_waiters`: where producers blocked on a full arena
  // park (null when no producer ever blocks). Marks every slot kFree; the channel is published to other
  // threads afterwards.
  // `resume_room`: 1 to the capacity (see the file comment).
  spsc_channel(const slot_ring& ring, char* arena_memory, std::size_t arena_bytes, wait_word* room_waiters,
               std::size_t resume_room = 1) noexcept
      : ring_(ring), resume_probe_(resume_room - 1), consumer_ring_(ring) {
    for (std::size_t i = 0; i < ring.capacity(); ++i) {
      // Before the channel is shared: ordered for both sides by the pointer's publication ([C2]/[C1]).
      seq_word(ring.at(i)).store(kFree, std::memory_order_relaxed);
    }
    if (arena_memory != nullptr) arena_.init(arena_memory, arena_bytes, room_waiters);
  }

  // ---- producer ----

  // Returns the slot for the next event, or nullptr when the ring is full, or when it was full and does not
  // yet have the resume room free. Does not publish. Fill it only through fill() (and event setters other
  // than set_seq), never by assigning a whole event.
  event* try_reserve() noexcept {
    std::uint64_t position;
    return try_reserve(position);
  }
  // As above, also giving the slot's position (its sequence number) for publish(slot, position).
  event* try_reserve(std::uint64_t& position) noexcept {
    position = next_sequence();
    return may_write(position) ? producer_slot(position) : nullptr;
  }
  // The parts of try_reserve, for a caller that tests room without a pointer (one branch fewer): the slot
  // for `position` (next_sequence()), and whether it is free (the consumer took the event a lap before).
  // Such a caller tests resuming() first and leaves that case to try_reserve().
  event* producer_slot(std::uint64_t position) const noexcept { return ring_.at(position); }
  // True after a send found the ring full, until the resume room is free.
  bool resuming() const noexcept { return resume_probe_now_ != 0; }
  static bool is_free(event* slot) noexcept {
    // [S2] acquire: pairs with [S6]; the consumer finished reading the slot's previous event before it
    // marked the slot free. The load also brings in the line the send is about to write.
    return seq_word(slot).load(std::memory_order_acquire) == kFree;
  }
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
  // then commits the count with advance(). The ring's geometry is read once so that a batch loop keeps it
  // in registers.
  const slot_ring& producer_ring() const noexcept { return ring_; }
  static void publish_slot(event* slot, std::uint64_t seq) noexcept {
    seq_word(slot).store(seq, std::memory_order_release);  // [S1] as in publish()
  }
  void advance(std::size_t count) noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);  // own index
    tail_.store(tail + count, std::memory_order_relaxed);              // [S5]
  }
  // Producer: how many slots from next_sequence() on are free, at most `limit` (a batch send's room). A slot
  // found free means every slot before it is free too: the consumer frees slots in order, and the acquire
  // of a later slot's mark makes the earlier marks, and the reads before them, happen before. So a few
  // loads suffice: the first slot wanted, the last, then halves in between. The count may be lower than
  // what is free by the time it returns, never higher. Reads only slots the batch is about to write.
  // While resuming() it returns 0 until the resume room is free; a call that finds no room starts that.
  std::size_t free_slots(std::size_t limit) noexcept {
    const std::uint64_t tail = next_sequence();
    const slot_ring ring = ring_;  // in registers: each acquire below would force a reload
    limit = std::min(limit, ring.capacity());
    if (limit == 0 || !may_write(tail)) return 0;
    if (is_free(ring.at(tail + limit - 1))) return limit;
    std::size_t known_free = 1, known_not_free = limit;  // counts: slot tail + n - 1 seen free / not free
    while (known_not_free - known_free > 1) {
      const std::size_t middle = known_free + (known_not_free - known_free) / 2;
      (is_free(ring.at(tail + middle - 1)) ? known_free : known_not_free) = middle;
    }
    return known_free;
  }

  // ---- consumer ----

  // The oldest event, in three parts so the caller tests publication without a pointer: the consumer's
  // position, its slot, and whether that slot holds the event of that position (then take it and
  // pop_one(position)).
  std::uint64_t consumer_position() const noexcept { return head_.load(std::memory_order_relaxed); }  // own index
  event* consumer_slot(std::uint64_t position) const noexcept { return consumer_ring_.at(position); }
  static bool is_published(event* slot, std::uint64_t position) noexcept {
    // [S4] acquire: pairs with [S1]; the slot's bytes are visible once its sequence number is ours.
    return seq_word(slot).load(std::memory_order_acquire) == position;
  }
  // Number of published events visible to the consumer, at most `limit` (reads their sequence words).
  std::size_t available(std::size_t limit) noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);  // own index
    const slot_ring ring = consumer_ring_;  // in registers: each acquire below would force a reload
    std::size_t n = 0;
    while (n < limit) {
      event* slot = ring.at(head + n);
      if (seq_word(slot).load(std::memory_order_acquire) != head + n) break;  // [S4] as in is_published
      ++n;
    }
    return n;
  }
  // As available(limit), and says whether the consumer is behind: one more event is published past the
  // ones counted (it reads one sequence word past `limit`, the one its next poll reads anyway). A consumer
  // that is behind loads its next run ahead (prefetch); one that keeps pace must not, as those slots are
  // the ones its producer writes next.
  std::size_t available(std::size_t limit, bool& behind) noexcept {
    const std::size_t seen = available(limit == SIZE_MAX ? limit : limit + 1);
    behind = seen > limit;
    return behind ? limit : seen;
  }
  // Asks the core to start loading the slot of `position`, so that it is in cache when the consumer gets
  // there. A hint: it reads nothing a C++ load would, orders nothing, and never faults.
  void prefetch(std::uint64_t position) const noexcept {
    __builtin_prefetch(consumer_ring_.at(position), 0, 3);
  }
  // Copies the `count` oldest slots (published: available() counted them) to `to`, in order.
  void copy_out(event* to, std::size_t count) const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);  // own index
    if (!consumer_ring_.packed()) {
      for (std::size_t i = 0; i < count; ++i) to[i] = *consumer_ring_.at(head + i);
      return;
    }
    const std::size_t first = head & consumer_ring_.mask;
    const std::size_t before_end = std::min(count, consumer_ring_.capacity() - first);
    std::memcpy(static_cast<void*>(to), consumer_ring_.base + first, before_end * sizeof(event));
    std::memcpy(static_cast<void*>(to + before_end), consumer_ring_.base,
                (count - before_end) * sizeof(event));
  }
  // Consumer, when a producer may be parked for room: whether the resume room is free now (so a producer
  // waiting for it can go on). Errs only towards true: `tail_` is the producer's last stored position or an
  // older one, which counts fewer events buffered; a producer woken too early parks again.
  bool resume_room_may_be_free() const noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);  // [S7] a snapshot; see above
    const std::uint64_t head = head_.load(std::memory_order_relaxed);  // own index
    return tail - head + resume_probe_ < consumer_ring_.capacity();
  }
  // Frees `slot`, which held the event of `position` (consumer_position() when it was taken).
  void pop_one(event* slot, std::uint64_t position) noexcept {
    mark_free(slot);
    head_.store(position + 1, std::memory_order_relaxed);  // [S3] as in pop()
  }
  // Frees the `count` oldest slots.
  void pop(std::size_t count = 1) noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);  // own index
    const slot_ring ring = consumer_ring_;  // in registers: each release store would force a reload
    for (std::size_t i = 0; i < count; ++i) mark_free(ring.at(head + i));
    // [S3] relaxed: a position snapshot for consumed(); it orders nothing, the marks free the slots.
    head_.store(head + count, std::memory_order_relaxed);
  }

  // ---- either side, approximate ----
  // Snapshots for counters and end-of-stream: relaxed, they order nothing (end-of-stream acquires first).
  std::uint64_t accepted() const noexcept { return tail_.load(std::memory_order_relaxed); }
  std::uint64_t consumed() const noexcept { return head_.load(std::memory_order_relaxed); }
  std::size_t capacity() const noexcept { return ring_.capacity(); }
  record_arena& arena() noexcept { return arena_; }
  const record_arena& arena() const noexcept { return arena_; }

 private:
  // A slot's sequence word, accessed atomically. Everything else in a slot is plain data ordered by it.
  static std::atomic_ref<std::uint64_t> seq_word(event* slot) noexcept {
    return std::atomic_ref<std::uint64_t>(
        *reinterpret_cast<std::uint64_t*>(reinterpret_cast<unsigned char*>(slot) + event::kSeqOffset));
  }
  static_assert(event::kSeqOffset % std::atomic_ref<std::uint64_t>::required_alignment == 0);
  // Marks a slot the consumer has finished reading free.
  static void mark_free(event* slot) noexcept {
    // [S6] release: our reads of the slot happen before the producer, acquiring this mark ([S2]), writes
    // the slot again.
    seq_word(slot).store(kFree, std::memory_order_release);
  }

  static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);

  // Producer: whether the slot of `tail` (next_sequence()) may be written now. Not resuming: whether it is
  // free; when it is not, from now on poll the resume room's last slot. Resuming: whether the `resume_room`
  // slots from `tail` on are free; the last one's mark says it for all of them, as in free_slots, and its
  // acquire ([S2]) orders the consumer's reads of every earlier slot before our writes. Ends the wait then.
  bool may_write(std::uint64_t tail) noexcept {
    if (resuming()) [[unlikely]] {
      if (!is_free(ring_.at(tail + resume_probe_now_))) return false;
      resume_probe_now_ = 0;
      return true;
    }
    if (is_free(ring_.at(tail))) [[likely]]
      return true;
    resume_probe_now_ = resume_probe_;
    return false;
  }

  // Producer line: written by the producer only (plus the immutable ring geometry it uses).
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> tail_{0};
  const slot_ring ring_;
  const std::uint64_t resume_probe_;    // resume room - 1: how far past the tail a resuming producer polls
  std::uint64_t resume_probe_now_ = 0;  // resume_probe_ while resuming, else 0
  // Consumer line: its own copy of the immutable geometry, so it never reads the producer's line.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> head_{0};
  const slot_ring consumer_ring_;
  // Arena: its own producer and release lines.
  alignas(kFalseSharingRange) record_arena arena_;
};

}  // namespace rill::detail
