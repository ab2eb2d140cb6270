// rill-bench workloads: the 64-byte element the peer queues carry, the pools both sides send from, and the
// mutex + condition variable deque that stands in for the replaced Go-channel design.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rill/event.hpp"

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
inline std::uint64_t checksum_of(const rill::event& e) noexcept { return e.index(); }
inline std::uint64_t checksum_of(const bench_item& item) noexcept { return item.value; }

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

}  // namespace rill_bench
