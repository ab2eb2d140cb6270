#include "rill/detail/epoch.hpp"

namespace rill::detail::epoch {

constinit thread_local thread_state t_reader;
std::atomic<std::uint64_t> g_epoch{2};

#if defined(RILL_SANITIZER_BUILD)
thread_state& this_thread_state() noexcept { return t_reader; }
#endif
std::atomic<std::uint64_t> g_overflow_readers{0};

namespace {

reader_slot g_slots[kMaxReaderSlots];
// Slots at or above this index were never claimed: the writer's scan stops here.
std::atomic<std::size_t> g_slot_high_water{0};

// Gives the slot back when its thread exits. Lives apart from thread_state so that thread_state stays
// trivially destructible (and usable from other thread_local destructors that run after this one).
struct slot_releaser {
  ~slot_releaser() {
    thread_state& t = t_reader;
    if (t.slot == nullptr) return;
    reader_slot* slot = t.slot;
    t.slot = nullptr;  // later sections on this thread (from other destructors) use the overflow path
    // A thread exits outside any read section, so state is already 0.
    // [E8] release: the next owner's claim (acquire CAS) sees this thread's last state store.
    slot->owned.store(false, std::memory_order_release);
  }
};
thread_local slot_releaser t_releaser;

}  // namespace

void register_reader() noexcept {
  ensure_barrier_decided();  // before this thread's first light_barrier() (see parking.hpp)
  thread_state& t = t_reader;
  t.registered = true;
  for (std::size_t i = 0; i < kMaxReaderSlots; ++i) {
    bool expected = false;
    if (g_slots[i].owned.load(std::memory_order_relaxed)) continue;
    // [E8] acquire: pairs with the release in slot_releaser; one attempt per slot (bounded).
    if (g_slots[i].owned.compare_exchange_strong(expected, true, std::memory_order_acquire,
                                                 std::memory_order_relaxed)) {
      t.slot = &g_slots[i];
      // [E9] Raise the scan bound before the first announcement in this slot. seq_cst CAS: ordered before
      // this thread's later [E2] stores, so the writer's [E4] barrier covers it as it covers [E2].
      std::size_t high = g_slot_high_water.load(std::memory_order_relaxed);
      while (high < i + 1 &&
             !g_slot_high_water.compare_exchange_weak(high, i + 1, std::memory_order_seq_cst,
                                                      std::memory_order_relaxed)) {
      }
      (void)&t_releaser;  // odr-use: constructs the releaser so that its destructor runs at thread exit
      return;
    }
  }
  // No slot left: this thread's sections use the overflow counter.
}

void enter_overflow() noexcept {
  t_reader.overflow = true;
  // [E2'] seq_cst RMW, then a seq_cst fence: a writer's [E4] scan sees the count, or this section's loads
  // see the writer's unlinks. The RMW alone is a full barrier on x86 (a locked instruction), but the C++
  // model orders later loads only by a fence (rare path: a thread without a reader slot).
  g_overflow_readers.fetch_add(1, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void leave_overflow() noexcept {
  t_reader.overflow = false;
  g_overflow_readers.fetch_sub(1, std::memory_order_release);  // [E3'] as [E3]
}

bool try_advance() noexcept {
  // [E6] acquire: when this load reads a value written after a tag's [E5] RMW in g_epoch's modification
  // order (every write is an RMW, so later advances' CASes continue the tag's release sequence), this
  // advance happens after that tag's unlink. For a node tagged t that holds from the advance t+1 -> t+2 on
  // (the CAS that wrote t+1 read the tag's value, so it follows the tag); the advance t -> t+1 may have read
  // the t written before the tag and is not ordered after the unlink. Hence a node is freed at t+2 ([E7]).
  std::uint64_t current = g_epoch.load(std::memory_order_acquire);
  // [E4] membarrier (or a seq_cst fence, pairing with the reader's fence in light_barrier()): a reader
  // whose [E2] announcement the scan below misses runs its section's loads after this point, and so sees
  // every unlink made before it. A failed membarrier (after a successful registration, readers have only
  // a compiler fence) guarantees nothing: the scan could miss a reader still inside, so no advance.
  if (!heavy_barrier()) return false;
  const std::size_t slots = g_slot_high_water.load(std::memory_order_acquire);  // [E9]
  for (std::size_t i = 0; i < slots; ++i) {
    const std::uint64_t state = g_slots[i].state.load(std::memory_order_acquire);  // [E4] pairs with [E3]
    if ((state & 1) != 0 && (state >> 1) != current) return false;
  }
  if (g_overflow_readers.load(std::memory_order_acquire) != 0) return false;  // [E4] pairs with [E3']
  // [E6] acq_rel CAS: a reader's [E1] acquire of the new epoch sees everything this advance saw. A failed
  // CAS means another writer advanced: progress either way.
  (void)g_epoch.compare_exchange_strong(current, current + 1, std::memory_order_acq_rel,
                                        std::memory_order_acquire);
  return true;
}

}  // namespace rill::detail::epoch
