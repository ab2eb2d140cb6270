// rill/detail/epoch.hpp: process-wide epoch-based reclamation (EBR) for rill's read-mostly indexes.
// Installed, not for users.
//
// Readers bracket a read section with an epoch_guard; writers unlink a node, retire it (tagging it with
// retire_epoch()), and free it once the global epoch has advanced twice past that tag. The global epoch
// advances only when every reader inside a read section has announced the current epoch.
//
// Guarantees
//   - Entering and leaving a read section is wait-free: a few loads and two stores, no RMW, no lock, no
//     allocation (the first section on a thread claims a reader slot with a bounded scan; a thread that
//     finds none left uses a shared overflow counter, one RMW each way).
//   - A node unlinked before it was tagged, and freed only when `safe_to_free(tag)`, is never freed while
//     a read section that could have seen it linked is still open.
//   - Read sections nest (a per-thread depth count).
// Not guaranteed
//   - Reclamation progress: a thread that stays inside a read section (preempted, or blocked in a callback)
//     holds back every reclamation in the process until it leaves. Read sections must be short.
//   - try_advance() is not cheap: a membarrier syscall (or a full fence) and a scan of the claimed slots.
//     Writers batch their retirements and call it rarely.
//
// Ordering (docs/memory_model.md, "Manager", tags [E1]-[E9]): the reader's slot store then pointer loads
// and the writer's unlink then slot scan form a store-then-load (Dekker) pair. It uses the asymmetric
// barrier from parking.hpp: a compiler fence for the reader, membarrier for the (rare) advancing writer.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "rill/detail/layout.hpp"
#include "rill/detail/parking.hpp"

namespace rill::detail::epoch {

// A reader's announcement, one per false-sharing range. `state` is (epoch << 1) | 1 inside a read
// section and 0 outside.
struct alignas(kFalseSharingRange) reader_slot {
  std::atomic<std::uint64_t> state{0};
  std::atomic<bool> owned{false};  // claimed by a live thread
};

inline constexpr std::size_t kMaxReaderSlots = 512;

// Per-thread reader state: trivially destructible, so it stays usable even after the thread's
// thread_local destructors ran (the slot is then given back and the thread uses the overflow counter).
struct thread_state {
  reader_slot* slot = nullptr;  // null until claimed, or when no slot is left (overflow)
  std::uint32_t depth = 0;      // nesting of read sections
  bool registered = false;      // a claim was attempted
  bool overflow = false;        // this section counted in the shared overflow counter
};

extern constinit thread_local thread_state t_reader;

#if defined(RILL_SANITIZER_BUILD)
// g++ 12 with -fsanitize=undefined reports a null `thread_state&` when the inlined guard's destructor
// re-reads the TLS address (a false positive); sanitizer builds reach it through a call instead.
thread_state& this_thread_state() noexcept;
#else
inline thread_state& this_thread_state() noexcept { return t_reader; }
#endif

// The global epoch. Every modification is an RMW (see retire_epoch()). Starts at 2 so that tag + 2
// arithmetic never needs a special case.
extern std::atomic<std::uint64_t> g_epoch;
// Readers inside a section without a slot of their own.
extern std::atomic<std::uint64_t> g_overflow_readers;

// Claims a reader slot for this thread (bounded scan) and arms its release at thread exit.
void register_reader() noexcept;
// Slow path of enter() for threads without a slot.
void enter_overflow() noexcept;
void leave_overflow() noexcept;

inline void enter() noexcept {
  thread_state& t = this_thread_state();
  if (t.depth++ != 0) return;  // nested: the outer section already protects us
  if (!t.registered) [[unlikely]] register_reader();
  if (t.slot == nullptr) [[unlikely]] {
    enter_overflow();
    return;
  }
  // [E1] acquire: a reader that sees epoch e also sees every unlink tagged before e was reached (the tag
  // is an RMW on g_epoch, see retire_epoch()); pairs with [E5]/[E6].
  const std::uint64_t e = g_epoch.load(std::memory_order_acquire);
  // [E2] relaxed store, then light_barrier(): the announcement is ordered before the section's loads by
  // the advancing writer's heavy_barrier() [E4] (membarrier), or by a seq_cst fence on both sides.
  t.slot->state.store((e << 1) | 1, std::memory_order_relaxed);
  light_barrier();
}

inline void leave() noexcept {
  thread_state& t = this_thread_state();
  if (--t.depth != 0) return;
  if (t.overflow) [[unlikely]] {
    leave_overflow();
    return;
  }
  // [E3] release: every load of the section happens before a writer's [E4] scan that reads 0 here, so a
  // node it then frees was no longer in use.
  t.slot->state.store(0, std::memory_order_release);
}

// RAII read section.
class guard {
 public:
  guard() noexcept { enter(); }
  ~guard() { leave(); }
  guard(const guard&) = delete;
  guard& operator=(const guard&) = delete;
};

// Writer: the tag for a node unlinked just before this call. An RMW (not a load) so that the unlink is
// visible to whoever later advances the epoch past the tag ([E5] pairs with [E6]).
inline std::uint64_t retire_epoch() noexcept {
  return g_epoch.fetch_add(0, std::memory_order_acq_rel);  // [E5]
}

// Writer: tries to move the global epoch forward by one. False when a reader still announces an older
// epoch (or an overflow reader is inside), or when the membarrier call fails (reclamation then waits
// until it works again). Never blocks; costs a membarrier syscall or a fence.
bool try_advance() noexcept;

// True when a node tagged `tag` can be freed: the epoch has advanced twice since.
inline bool safe_to_free(std::uint64_t tag) noexcept {
  return g_epoch.load(std::memory_order_acquire) >= tag + 2;  // [E7] pairs with [E6]
}

}  // namespace rill::detail::epoch
