#include "rill/detail/parking.hpp"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

namespace rill::detail {
namespace {

bool register_membarrier() noexcept {
#if defined(RILL_SANITIZER_BUILD)
  // ThreadSanitizer does not know membarrier orders memory; use plain fences so that what it checks is
  // what runs (the fence form is the one modelled in docs/memory_model.md).
  return false;
#else
  const long supported = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (supported < 0 || !(supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return false;
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
}

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value, const timespec* timeout,
           std::uint32_t bitset) noexcept {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op | FUTEX_PRIVATE_FLAG, value, timeout,
                   nullptr, bitset);
}

}  // namespace

std::atomic<bool> g_asymmetric_barrier{false};

void ensure_barrier_decided() noexcept {
  // Relaxed store: the function-local static's initialization is the synchronization; every caller returns
  // after it completed (a magic static's guard has acquire/release semantics).
  static const bool decided = [] {
    g_asymmetric_barrier.store(register_membarrier(), std::memory_order_relaxed);
    return true;
  }();
  (void)decided;
}

bool heavy_barrier() noexcept {
  ensure_barrier_decided();
  if (g_asymmetric_barrier.load(std::memory_order_relaxed)) {  // decided above, never changes after
    // [W3] runs a full barrier on every running thread of this process, so each publisher's store before
    // its [W1] compiler fence is visible to our re-check, or its [W4] load sees our [W2] announcement.
    if (::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return true;
    // Registered but failed (not expected on Linux): publishers still use the compiler fence only, so a
    // fence here alone does not close the race. Report it; the caller bounds its sleep.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return false;
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);  // [W3'] pairs with [W1'] in light_barrier()
  return true;
}

park_result wait_word::park(std::uint32_t announced, std::chrono::steady_clock::time_point deadline) noexcept {
  if (deadline == std::chrono::steady_clock::time_point::max()) {
    futex(&word_, FUTEX_WAIT_BITSET, announced, nullptr, FUTEX_BITSET_MATCH_ANY);
    return park_result::woken;
  }
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline: steady_clock's clock on Linux.
  const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch());
  if (since_epoch.count() <= 0) return park_result::timed_out;
  timespec ts;
  ts.tv_sec = static_cast<time_t>(since_epoch.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(since_epoch.count() % 1'000'000'000);
  const long rc = futex(&word_, FUTEX_WAIT_BITSET, announced, &ts, FUTEX_BITSET_MATCH_ANY);
  if (rc != 0 && errno == ETIMEDOUT) return park_result::timed_out;
  return park_result::woken;
}

void wait_word::wake_all() noexcept {
  // [W5] relaxed first read; the CAS is acq_rel: a parker whose later announce ([W2]) reads from it
  // synchronizes with it and so sees what the waker published before calling us (a futex return itself is
  // no C++ synchronization; the parker's retry loop re-checks after its next announce).
  std::uint32_t old = word_.load(std::memory_order_relaxed);
  while (true) {
    // Adding 1 to a word with bit 0 set clears the bit and carries into the generation.
    const std::uint32_t next = (old & kWaiterBit) ? old + 1 : old + 2;
    if (word_.compare_exchange_weak(old, next, std::memory_order_acq_rel, std::memory_order_relaxed)) break;
  }
  if (old & kWaiterBit) futex(&word_, FUTEX_WAKE, INT_MAX, nullptr, 0);
}

}  // namespace rill::detail
