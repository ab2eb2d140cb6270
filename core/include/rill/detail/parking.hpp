// rill/detail/parking.hpp: per-stream futex words for blocking sends and receives. Installed, not for users.
//
// A waiter parks on a 32-bit word: bit 0 says "someone may be asleep", bits 1..31 are a wake generation.
// The publish/park handshake is a store-then-load race (Dekker):
//   publisher: store the data (tail, head, closed)  ; light_barrier() ; load the word: bit 0 set -> wake
//   parker:    fetch_or(word, 1)                     ; heavy_barrier() ; re-check the data -> else futex_wait
// Either the parker's re-check sees the data, or the publisher's load sees bit 0. This needs a full fence on
// both sides; rill makes the publisher's side free by using membarrier(PRIVATE_EXPEDITED) as the parker's
// heavy barrier (it runs a full fence on every thread of the process that is running), and falls back to a
// seq_cst fence on both sides where the kernel lacks membarrier. See docs/memory_model.md [W1]-[W5].
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace rill::detail {

// True once membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) is registered for this process. Written once, by
// the first ensure_barrier_decided() (a registration costs one syscall), and never changed after.
extern std::atomic<bool> g_asymmetric_barrier;

// Decides g_asymmetric_barrier on the first call (a function-local static: thread-safe, and every later
// call synchronizes with that decision). Every owner of a wait_word and every epoch reader calls it before
// it can publish or park, so both halves of a handshake read the same, final value. Deciding it during
// static initialization instead would let code that runs in another library's static initializers read
// false on one side and true on the other, which breaks the handshake.
void ensure_barrier_decided() noexcept;

// Publisher side of the handshake: a compiler-only fence when the parker uses membarrier, else a full fence.
inline void light_barrier() noexcept {
  // Relaxed: written once before any wait_word or epoch reader exists (ensure_barrier_decided() in their
  // set-up), and that set-up happens before this call.
  if (g_asymmetric_barrier.load(std::memory_order_relaxed)) [[likely]] {
    std::atomic_signal_fence(std::memory_order_seq_cst);  // [W1] compiler fence: membarrier supplies the rest
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // [W1'] full fence: pairs with [W3'] on the parker
  }
}

// Parker side: membarrier, or a full fence when membarrier is not available. Returns false in the one case
// the handshake is not guaranteed: membarrier was registered (so publishers use only a compiler fence) but
// this call failed; the caller then parks with a short timeout instead of trusting a wake-up.
bool heavy_barrier() noexcept;

enum class park_result : std::uint8_t { woken, timed_out };

class wait_word {
 public:
  static constexpr std::uint32_t kWaiterBit = 1;

  wait_word() noexcept { ensure_barrier_decided(); }

  // Parker, step 1: announce a sleeper. Returns the word value to pass to park().
  std::uint32_t announce() noexcept {
    // [W2] seq_cst RMW: the announcement is globally ordered before the parker's re-check (with [W3]).
    return word_.fetch_or(kWaiterBit, std::memory_order_seq_cst) | kWaiterBit;
  }
  // Parker, step 3 (after heavy_barrier() and a failed re-check): sleeps until woken, a spurious wake-up,
  // or `deadline` (absolute, steady_clock; time_point::max() for none). Returns at once when the word no
  // longer equals `announced`.
  park_result park(std::uint32_t announced, std::chrono::steady_clock::time_point deadline) noexcept;

  // Publisher: after making progress visible, wakes every sleeper if any announced itself.
  void notify_after_publish() noexcept {
    light_barrier();
    // [W4] relaxed is enough: the barrier above orders this load after the publishing store.
    if (word_.load(std::memory_order_relaxed) & kWaiterBit) [[unlikely]] wake_all();
  }
  // As notify_after_publish(), for a publisher whose progress may not yet be what a sleeper waits for:
  // wakes only when `worth_waking()` (called only when someone announced) says it is. A sleeper must then
  // be sure to be woken by a later publish: worth_waking() must err towards true.
  template <class WorthWaking>
  void notify_after_publish_if(WorthWaking&& worth_waking) noexcept {
    light_barrier();
    // [W4] as in notify_after_publish().
    if ((word_.load(std::memory_order_relaxed) & kWaiterBit) && worth_waking()) [[unlikely]]
      wake_all();
  }
  // Clears the waiter bit, bumps the generation and wakes every sleeper (a syscall). Used by close() and
  // cancellation too.
  void wake_all() noexcept;

 private:
  std::atomic<std::uint32_t> word_{0};
};

}  // namespace rill::detail
