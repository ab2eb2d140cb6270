// rill-bench workloads: the 64-byte element the peer queues carry, the pools both sides send from, the
// mutex + condition variable deque that stands in for the replaced Go-channel design, and the bare ring
// that is the floor of rill's SPSC design.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rill/detail/layout.hpp"
#include "rill/event.hpp"
#include "rill/stream.hpp"

namespace rill_bench {

// The peers' element: a 64-byte aligned POD, the same size and alignment as rill::event.
struct alignas(64) bench_item {
  std::uint64_t seq = 0;       // position in the pool (order check), or a per-producer sequence (MPMC)
  std::uint64_t value = 0;     // checksum contribution
  std::uint64_t producer = 0;  // MPMC: which producer sent it
  std::uint64_t stamp = 0;     // latency scenarios: send time
  unsigned char pad[32] = {};
};
static_assert(sizeof(bench_item) == 64 && alignof(bench_item) == 64);
static_assert(std::is_trivially_copyable_v<bench_item>);

// Senders cycle through a pool of prebuilt elements so no side builds events inside the timed loop; the
// receiver checks that element k of a run is pool entry k mod kPoolSize (order) and sums a checksum.
inline constexpr std::size_t kPoolSize = 1024;
inline constexpr std::size_t kPoolMask = kPoolSize - 1;

// Short LLM tokens (1-20 bytes): inline text in a rill event.
std::string_view token_text(std::size_t i) noexcept;
// rill pool: text_delta events with index = position in the pool.
const std::vector<rill::event>& rill_pool();
// Peer pool: seq = position in the pool, value = a fixed pseudo-random checksum word.
const std::vector<bench_item>& item_pool();
// Every implementation's elements are verified at the same cost: a fixed, branch-free hash of six of the
// eight words of the 64-byte element, each multiplied by its own odd constant, so that a changed or moved
// byte changes the sum. Senders do not hash: the expected sum comes from the pool (pool_checksum_sum).
//   rill::event: word 0 (kind, flags, inline text size, aux, index, choice), with the flags' clock bits
//   masked out (stamping sets them), and words 3-7, the inline text. Not word 1, the sequence number the
//   stream assigns, nor word 2, the timestamp. Pool events hold their text inline (rill_pool() checks it),
//   so this covers every text byte.
//   bench_item: words 1-6 (value, producer, stamp, the first 24 pad bytes). Not seq (word 0), which
//   in_order checks, nor word 7, which ring_floor does not carry (it moves 56 bytes besides its sequence
//   word, as rill's ring moves an event's 56 bytes besides its sequence number).
inline std::uint64_t element_word(const void* element, std::size_t i) noexcept {
  std::uint64_t w;
  std::memcpy(&w, static_cast<const unsigned char*>(element) + 8 * i, sizeof w);
  return w;
}
// The six words, each multiplied by its own odd constant (a bijection, so a changed word changes the sum).
inline std::uint64_t mix_words(std::uint64_t w0, std::uint64_t w1, std::uint64_t w2, std::uint64_t w3,
                               std::uint64_t w4, std::uint64_t w5) noexcept {
  return (w0 * 0x9e3779b97f4a7c15u) ^ (w1 * 0xc2b2ae3d27d4eb4fu) ^ (w2 * 0x165667b19e3779f9u) ^
         (w3 * 0xd6e8feb86659fd93u) ^ (w4 * 0xff51afd7ed558ccdu) ^ (w5 * 0xc4ceb9fe1a85ec53u);
}
inline std::uint64_t checksum_of(const rill::event& e) noexcept {
  static_assert(sizeof(rill::event) == 64 && rill::event::kSeqOffset == 8 &&
                rill::event::kTimestampOffset == 16);
  constexpr std::uint64_t kClockBits = std::uint64_t{rill::event::kClockMask}
                                       << (8 * rill::event::kFlagsOffset);
  return mix_words(element_word(&e, 0) & ~kClockBits, element_word(&e, 3), element_word(&e, 4),
                   element_word(&e, 5), element_word(&e, 6), element_word(&e, 7));
}
inline std::uint64_t checksum_of(const bench_item& item) noexcept {
  static_assert(offsetof(bench_item, seq) == 0);
  return mix_words(element_word(&item, 1), element_word(&item, 2), element_word(&item, 3),
                   element_word(&item, 4), element_word(&item, 5), element_word(&item, 6));
}

// The sum of checksum_of over the first `n` elements a sender takes from `pool` (element k is pool entry
// k mod kPoolSize), from a table built on the first call: call it once before any clock starts.
template <class Element>
std::uint64_t pool_checksum_sum(const std::vector<Element>& pool, std::uint64_t n) {
  static const std::vector<std::uint64_t> prefix = [&pool] {
    std::vector<std::uint64_t> sums(kPoolSize + 1, 0);
    for (std::size_t i = 0; i < kPoolSize; ++i) sums[i + 1] = sums[i] + checksum_of(pool[i]);
    return sums;
  }();
  return (n / kPoolSize) * prefix[kPoolSize] + prefix[n % kPoolSize];  // modulo 2^64, as the receiver's sum
}

// Runs a peer queue once through its storage before any clock starts. rill's rings take their page faults
// in their constructors; a peer's would otherwise fall in the first lap of the timed loop (about 1.5 ms for
// a fresh 65536-slot ReaderWriterQueue or boost spsc_queue here). `push()` adds one element and returns
// false once the queue is full, without allocating; `pop()` takes one and returns false once it is empty.
template <class Push, class Pop>
void prefault(Push push, Pop pop) {
  while (push()) {
  }
  while (pop()) {
  }
}

// A bounded FIFO guarded by one mutex, with condition variables for "not empty" and "not full": a Go
// buffered channel written in C++ (the design rill replaces).
template <class T>
class mutex_deque {
 public:
  explicit mutex_deque(std::size_t capacity) : capacity_(capacity) {}

  // Waits for room. False once closed.
  bool push(const T& item) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return items_.size() < capacity_ || closed_; });
    if (closed_) return false;
    items_.push_back(item);
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }
  // Never waits. False when full or closed.
  bool try_push(const T& item) { return try_emplace(item); }
  // As above, moving the item in (a Go channel send copies a string's header, not its bytes); `item` is
  // untouched on false.
  bool try_push(T&& item) { return try_emplace(std::move(item)); }
  // Waits for an item. False once closed and empty.
  bool pop(T& out) {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return false;
    out = std::move(items_.front());
    items_.pop_front();
    lock.unlock();
    not_full_.notify_one();
    return true;
  }
  // Never waits. False when empty.
  bool try_pop(T& out) {
    std::unique_lock lock(mutex_);
    if (items_.empty()) return false;
    out = std::move(items_.front());
    items_.pop_front();
    lock.unlock();
    not_full_.notify_one();
    return true;
  }
  // Takes up to `max` items into `out` under one lock. Never waits.
  std::size_t try_pop_many(T* out, std::size_t max) {
    std::unique_lock lock(mutex_);
    std::size_t n = 0;
    while (n < max && !items_.empty()) {
      out[n++] = std::move(items_.front());
      items_.pop_front();
    }
    lock.unlock();
    if (n != 0) not_full_.notify_all();
    return n;
  }
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return items_.size();
  }
  bool closed_and_empty() {
    std::lock_guard lock(mutex_);
    return closed_ && items_.empty();
  }

 private:
  template <class U>
  bool try_emplace(U&& item) {
    std::unique_lock lock(mutex_);
    if (closed_ || items_.size() >= capacity_) return false;
    items_.push_back(std::forward<U>(item));
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<T> items_;
  const std::size_t capacity_;
  bool closed_ = false;
};

// The floor of rill's SPSC design: a bounded ring of 64-byte slots whose sequence words say whose turn
// each slot is (the position once published, kFree once taken: rill::detail::spsc_channel), each side
// polling only the slots and storing only its own index line, and nothing else: no stream state,
// validation or received holder. It carries the first 56 bytes of a 64-byte T (the slot's sequence word
// takes the rest), as a rill event carries 56 bytes besides the sequence word that publishes it. Its slots
// are packed or padded as rill::slot_layout says (padded: each slot on its own 128-byte line pair). One
// producer thread, one consumer thread.
template <class T>
class floor_ring {
  static_assert(sizeof(T) == 64 && std::is_trivially_copyable_v<T>);

 public:
  // `capacity`: a power of two.
  explicit floor_ring(std::size_t capacity, rill::slot_layout layout = rill::slot_layout::packed)
      : spacing_(layout == rill::slot_layout::padded ? 2 : 1),
        slots_(new slot[capacity * spacing_]),
        mask_(capacity - 1),
        consumer_slots_(slots_.get()),
        consumer_mask_(mask_),
        consumer_spacing_(spacing_) {}

  // Producer. False when the ring is full.
  bool try_push(const T& item) noexcept {
    slot& s = slots_[(tail_ & mask_) * spacing_];
    // Acquire: pairs with try_pop's release of kFree; the consumer finished reading the slot.
    if (s.seq.load(std::memory_order_acquire) != kFree) return false;
    std::memcpy(s.bytes, &item, sizeof(s.bytes));
    s.seq.store(tail_, std::memory_order_release);  // publishes the bytes; pairs with try_pop's acquire
    ++tail_;
    return true;
  }
  // Consumer. False when the oldest slot is not published yet. Writes the first 56 bytes of `out`.
  bool try_pop(T& out) noexcept {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);  // own index
    slot& s = consumer_slots_[(head & consumer_mask_) * consumer_spacing_];
    if (s.seq.load(std::memory_order_acquire) != head) return false;  // pairs with try_push's release
    std::memcpy(static_cast<void*>(&out), s.bytes, sizeof(s.bytes));
    // Release: the slot is read before the producer, acquiring kFree, writes it again.
    s.seq.store(kFree, std::memory_order_release);
    head_.store(head + 1, std::memory_order_relaxed);  // a position for depth() only: it orders nothing
    return true;
  }
  // Producer's view of how many items the ring holds (a sample: relaxed, it orders nothing).
  std::size_t depth() const noexcept { return tail_ - head_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::uint64_t kFree = ~std::uint64_t{0};  // no position has this value
  struct alignas(64) slot {
    std::atomic<std::uint64_t> seq{kFree};
    unsigned char bytes[56] = {};
  };
  static_assert(sizeof(slot) == 64);

  const std::size_t spacing_;  // 64-byte slots from one position's slot to the next: 1 packed, 2 padded
  const std::unique_ptr<slot[]> slots_;
  // Producer line.
  alignas(rill::detail::kFalseSharingRange) std::uint64_t tail_ = 0;
  const std::uint64_t mask_;
  // Consumer line, with its own copy of the ring's shape.
  alignas(rill::detail::kFalseSharingRange) std::atomic<std::uint64_t> head_{0};
  slot* const consumer_slots_;
  const std::uint64_t consumer_mask_;
  const std::size_t consumer_spacing_;
};

}  // namespace rill_bench
