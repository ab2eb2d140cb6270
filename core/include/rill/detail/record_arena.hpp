// rill/detail/record_arena.hpp: a stream's payload arena. Installed, not for users.
//
// A byte ring of power-of-two size holding variable-length records. Each record is an 8-byte header
// {u32 size of the whole record, u32 state} followed by the payload, padded to 8 bytes. Producers claim
// records at the tail (one producer: a plain store; several: a CAS); a record that would cross the end of
// the ring is preceded by a filler record that runs to the end. Consumers release records in any order:
// a release marks the header, and whoever finds the record at the head released advances the head past
// every consecutive released record, zeroing each one first.
//
// Why zero: a position at or past the tail, or a record claimed whose header is not yet written, must read
// as "not released". Zeroing every record before the head moves past it keeps all free space zero, so a
// stale byte pattern from an earlier lap can never look like a released record (Aeron's many-to-one ring
// zeroes consumed space for the same reason).
//
// Release point: only one thread advances at a time (`advancing_`); others mark, count their release
// (`releases_`) and leave. An advancer that steps down re-checks the count: if any release happened since it
// began its scan, it advances again ([R1]-[R4] below), so no release is ever left unadvanced. The re-check
// reads the counter, never a header: a header at a stale head position may already be zeroed or reused.
// The release point is the slowest holder's record, which is what a multi-subscriber stream needs.
//
// A record's state word says who holds it, so a producer of a drop_oldest stream that finds the arena full
// can tell whether evicting buffered events could ever move the head (peek_oldest): held by a buffered
// event (with the claimer's tag, its lane), delivered (a consumer took the event and still holds the text),
// or released.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include "rill/detail/assert.hpp"
#include "rill/detail/layout.hpp"
#include "rill/detail/parking.hpp"

namespace rill::detail {

class record_arena {
 public:
  static constexpr std::size_t kHeaderBytes = 8;
  static constexpr std::size_t kMinBytes = 256;

  struct header {
    std::uint32_t size;               // whole record, header included, multiple of 8
    std::atomic<std::uint32_t> state;  // kHeld (with a tag) or kDelivered or kReleased
  };
  static_assert(sizeof(header) == kHeaderBytes);
  static constexpr std::uint32_t kHeld = 0;  // zero: also what free space reads as
  static constexpr std::uint32_t kReleased = 1;
  static constexpr std::uint32_t kDelivered = 2;
  static constexpr unsigned kTagShift = 2;  // a held record's tag sits above the two state bits
  static constexpr std::uint32_t kStateMask = (1u << kTagShift) - 1;
  // Tags are at most this (0: untagged).
  static constexpr std::uint32_t kMaxTag = ~std::uint32_t{0} >> kTagShift;

  // Records of this many payload bytes or fewer can ever fit.
  std::size_t max_payload() const noexcept { return capacity_ - kHeaderBytes; }
  std::size_t capacity() const noexcept { return capacity_; }
  const char* base() const noexcept { return base_; }
  bool contains(const char* p, std::size_t n) const noexcept {
    return p >= base_ + kHeaderBytes && p + n <= base_ + capacity_;
  }

  // `memory` is `bytes` zeroed bytes, bytes a power of two >= kMinBytes, aligned to 8. `room_waiters`,
  // if given, is notified whenever the head moves (producers blocked on a full arena park there).
  void init(char* memory, std::size_t bytes, wait_word* room_waiters) noexcept {
    base_ = memory;
    capacity_ = bytes;
    mask_ = bytes - 1;
    room_waiters_ = room_waiters;
  }

  // Producer: claims a record for `payload` bytes. Returns the payload pointer, or nullptr when the ring
  // has no room now. `MultiProducer` selects the CAS claim. The caller has checked payload <= max_payload().
  // `tag` (at most kMaxTag) is what peek_oldest() reports while the record is held.
  template <bool MultiProducer>
  char* try_claim(std::size_t payload, std::uint32_t tag = 0) noexcept {
    const std::size_t need = align_up(kHeaderBytes + payload, 8);
    std::uint64_t pos = tail_.load(std::memory_order_relaxed);  // [R0] own claims; CAS below re-checks
    while (true) {
      const std::size_t offset = pos & mask_;
      const std::size_t filler = offset + need > capacity_ ? capacity_ - offset : 0;
      const std::uint64_t end = pos + filler + need;
      // [R6] acquire: pairs with [R6'] below, so a producer trusting another producer's cached head also
      // inherits that producer's [R5] view of the zeroed space.
      if (end - cached_head_.load(std::memory_order_acquire) > capacity_) {
        // [R5] acquire: pairs with [R4]; the zeroed space the advancer freed is visible before we write it.
        const std::uint64_t head = head_.load(std::memory_order_acquire);
        // [R6'] release: publishes the head we acquired to the other producers ([R6]). Only ever a lower
        // bound of the true head, so a stale value costs a reload, never an overlap.
        cached_head_.store(head, std::memory_order_release);
        if (end - head > capacity_) {
          // No room for filler and record together. When the filler alone fits, claim it now: the tail
          // moves to the ring's start, where any record up to max_payload() fits once the consumers catch
          // up. Otherwise a record longer than the tail's offset could never be placed while the tail sat
          // mid-ring, even with the arena empty. Happens at most once per call: the retry has no filler.
          if (filler == 0 || pos + filler - head > capacity_) return nullptr;
          if (!claim_span<MultiProducer>(pos, pos + filler)) continue;
          add_filler(pos, filler);
          pos += filler;
          continue;
        }
      }
      if (!claim_span<MultiProducer>(pos, end)) continue;
      if (filler != 0) add_filler(pos, filler);
      header* h = header_at(pos + filler);
      h->size = static_cast<std::uint32_t>(need);
      // state is kHeld (zero) from the zeroing; published to consumers with the event ([S*]/[M*] tags).
      // [R7] relaxed: the tag is only read by peek_oldest(), a hint; the event's publication orders it
      // before the holder's release.
      if (tag != 0) h->state.store(tag << kTagShift, std::memory_order_relaxed);
      return reinterpret_cast<char*>(h) + kHeaderBytes;
    }
  }

  // Undoes nothing: a claimed record that will not be sent is released like any other.
  // Any thread holding the record: marks it released and advances the head if it can.
  void release(const char* payload) noexcept {
    header* h = reinterpret_cast<header*>(const_cast<char*>(payload) - kHeaderBytes);
    RILL_ASSERT((h->state.load(std::memory_order_relaxed) & kStateMask) != kReleased,
                "arena record released twice");
    mark_released(h);
    try_advance();
  }

  // A consumer that took a record's event from the ring and keeps its text: marks the record delivered,
  // which peek_oldest() reports. Optional; only streams that evict (drop_oldest) ask.
  void mark_delivered(const char* payload) noexcept {
    header* h = reinterpret_cast<header*>(const_cast<char*>(payload) - kHeaderBytes);
    // [R8] relaxed: a hint for peek_oldest(); the holder's later release ([R1]) is what frees the record.
    h->state.store(kDelivered, std::memory_order_relaxed);
  }

  // What peek_oldest() found.
  enum class oldest : std::uint8_t {
    none,  // the arena is empty
    busy,  // another thread is advancing the head: look again shortly
    read,  // `state` holds the state word of the record the head waits on
  };
  // Slow path, for a producer that found no room: advances the head as far as it can, then reads the state
  // word of the record it waits on (kHeld with its tag, kDelivered, or kReleased if released since). A
  // snapshot: the record may be released right after.
  oldest peek_oldest(std::uint32_t& state) noexcept {
    // [R2], [R2''] as in try_advance(). Holding the flag makes this call the advancer, with its duty: a
    // release counted before releases_seen relies on the scan below.
    if (advancing_.exchange(true, std::memory_order_seq_cst)) return oldest::busy;
    const std::uint64_t releases_seen = releases_.load(std::memory_order_seq_cst);
    const std::uint64_t start = head_.load(std::memory_order_relaxed);  // only the advancer writes head_
    const std::uint64_t head = advance_from(start);
    // relaxed: the tail only bounds what we read; a record claimed and not yet written reads as kHeld.
    const bool live = head != tail_.load(std::memory_order_relaxed);
    // [R9] relaxed: a hint ([R7], [R8]); the header is not zeroed while we hold the flag.
    if (live) state = header_at(head)->state.load(std::memory_order_relaxed);
    if (step_down(start, head, releases_seen)) try_advance();
    return live ? oldest::read : oldest::none;
  }

  // Re-tags a held record (at most kMaxTag), as try_claim's tag. Its holder, before the record's event is
  // published.
  void retag(const char* payload, std::uint32_t tag) noexcept {
    header* h = reinterpret_cast<header*>(const_cast<char*>(payload) - kHeaderBytes);
    h->state.store(tag << kTagShift, std::memory_order_relaxed);  // [R7]
  }

  // Bytes claimed and not yet advanced past (approximate while producers and consumers run).
  std::size_t approx_used() const noexcept {
    return static_cast<std::size_t>(tail_.load(std::memory_order_relaxed) - head_.load(std::memory_order_relaxed));
  }
  // White-box test access.
  // White-box test access: acquire so a test thread sees the zeroing that preceded a head it reads.
  std::uint64_t head_position() const noexcept { return head_.load(std::memory_order_acquire); }
  std::uint64_t tail_position() const noexcept { return tail_.load(std::memory_order_acquire); }

 private:
  header* header_at(std::uint64_t pos) const noexcept { return reinterpret_cast<header*>(base_ + (pos & mask_)); }

  // Moves the tail from `pos` to `end`. Single producer: always succeeds. Several: false when another
  // producer claimed first, with `pos` reloaded.
  template <bool MultiProducer>
  bool claim_span(std::uint64_t& pos, std::uint64_t end) noexcept {
    if constexpr (MultiProducer) {
      // [R0'] relaxed CAS: claims are ordered for consumers by the ring's publication, not by the tail.
      return tail_.compare_exchange_weak(pos, end, std::memory_order_relaxed, std::memory_order_relaxed);
    } else {
      tail_.store(end, std::memory_order_relaxed);  // [R0] single producer owns the tail
      return true;
    }
  }

  // Writes a filler record of `bytes` at claimed position `pos` (it runs to the ring's end) and releases it.
  // Out of line: fillers come once per lap of the arena, and inlining try_advance() at both call sites
  // made try_claim too large to inline into the send paths (+28 instructions per claim under callgrind).
  [[gnu::noinline]] void add_filler(std::uint64_t pos, std::size_t bytes) noexcept {
    header* f = header_at(pos);
    f->size = static_cast<std::uint32_t>(bytes);
    mark_released(f);  // a filler is released at once
    try_advance();
  }

  void mark_released(header* h) noexcept {
    // [R1] release: the holder's last reads of the record (and a filler's size) happen before the
    // advancer's [R2'] acquire that sees the mark.
    h->state.store(kReleased, std::memory_order_release);
    // [R1'] seq_cst RMW, after the mark: with [R2]/[R2''] and [R3]/[R3'] it guarantees that an advancer
    // either scans after this mark is visible, or sees the count change when it steps down.
    releases_.fetch_add(1, std::memory_order_seq_cst);
  }

  void try_advance() noexcept {
    // [R2] seq_cst exchange: one advancer at a time; reading `false` reads from the last advancer's [R3],
    // so we see its head_ and its zeroing.
    while (true) {
      if (advancing_.exchange(true, std::memory_order_seq_cst)) return;  // the advancer re-checks for us
      // [R2''] seq_cst: a release counted before this load synchronizes with it, so its mark is visible to
      // the scan.
      const std::uint64_t releases_seen = releases_.load(std::memory_order_seq_cst);
      const std::uint64_t start = head_.load(std::memory_order_relaxed);  // only the advancer writes head_
      if (!step_down(start, advance_from(start), releases_seen)) return;
    }
  }

  // The advancer (holding `advancing_`): moves the head from `head` past every consecutive released record,
  // zeroing each. Returns the new head.
  std::uint64_t advance_from(std::uint64_t head) noexcept {
    while (true) {
      header* h = header_at(head);
      // [R2'] acquire: pairs with [R1]; the record's size and its holder's reads come before the memset.
      // While we hold `advancing_` no other thread zeroes or advances past the header at the head; its
      // holder may still store a tag or kDelivered there ([R7], [R8]), atomically, never kReleased twice.
      if (h->state.load(std::memory_order_acquire) != kReleased) return head;
      const std::uint32_t size = h->size;
      std::memset(static_cast<void*>(h), 0, size);
      head += size;
      // [R4] release: the zeroed bytes are visible to a producer that acquires this head ([R5]).
      head_.store(head, std::memory_order_release);
    }
  }

  // The advancer gives up `advancing_` after moving the head from `start` to `head`. True when a release
  // was counted since `releases_seen`: the caller must advance again.
  [[nodiscard]] bool step_down(std::uint64_t start, std::uint64_t head,
                               std::uint64_t releases_seen) noexcept {
    // [R3] seq_cst step-down. [R3'] then re-check the release count: a releaser whose [R2] exchange saw
    // `true` counted its release ([R1']) before that exchange, which precedes this store in the seq_cst
    // order, so the load below sees the new count and we scan again.
    advancing_.store(false, std::memory_order_seq_cst);
    // Whoever moves the head wakes producers waiting for room: a releaser that found us advancing has
    // already returned, so the wake-up is ours to give (the [W*] handshake in parking.hpp).
    if (head != start && room_waiters_ != nullptr) room_waiters_->notify_after_publish();
    return releases_.load(std::memory_order_seq_cst) != releases_seen;  // [R3']
  }

  // Immutable after init(): read by both sides, written by neither.
  char* base_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t mask_ = 0;
  wait_word* room_waiters_ = nullptr;
  // Producer-side line.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> tail_{0};
  std::atomic<std::uint64_t> cached_head_{0};
  // Release-side line.
  alignas(kFalseSharingRange) std::atomic<std::uint64_t> head_{0};
  std::atomic<bool> advancing_{false};
  std::atomic<std::uint64_t> releases_{0};  // releases so far: the advancer's step-down re-check
};

}  // namespace rill::detail
