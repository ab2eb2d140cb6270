// Relacy models of rill's park/wake handshake (parking.hpp, stream.hpp wait_for(), stream.cpp close()).
//
// The handshake is a store-then-load race (Dekker), docs/memory_model.md "Streams" [W1]-[W5]:
//   publisher: store the data ([S1]/[M2]/[S3]/[M4])  ; light_barrier() [W1]  ; load the word [W4]: bit 0 ->
//   wake parker:    fetch_or(word, bit 0) [W2]             ; heavy_barrier() [W3] ; re-check the data -> else
//   futex_wait
// Each suite runs one publisher (or closer) and one parker once, with Relacy's full-search scheduler: every
// interleaving and every value each load may read under the C++ memory model. The final-state check is the
// lost wake-up: the parker went to sleep, the word never changed after its announcement (so no FUTEX_WAKE
// will ever come for it), and the data it waits for was published.
//
// How the pieces are modelled:
//   - The futex. futex_wait(word, announced) compares and sleeps atomically with respect to FUTEX_WAKE (the
//     kernel serializes both on the futex hash bucket). Modelled as a seq_cst compare-exchange of the word
//     with itself: success = "the word still equals announced, asleep"; failure = EAGAIN, the parker returns
//     and re-checks. A sleeper is woken exactly when the word changes later, because wake_all() always
//     changes the word (clears bit 0 and bumps the generation) before its FUTEX_WAKE; so "asleep at the end"
//     is "slept, and the final word still equals announced".
//   - membarrier. rill's heavy_barrier() is membarrier(PRIVATE_EXPEDITED): it runs a full barrier on every
//     running thread of the process, which is what a seq_cst fence on the publisher's side (at whatever
//     point the publisher was interrupted, between its store and its load included) would do, and
//     light_barrier() is then only a compiler fence. Relacy has no asymmetric barrier, so the model uses the
//     form it is equivalent to, and the one sanitizer builds run: a seq_cst fence on both sides ([W1'] and
//     [W3']).
//   - The data word stands for whatever the parker re-checks: the ring's tail or head, a slot's turn, or
//     closed_.
//
// Suites and the result each must give:
//   fenced                 release store, seq_cst fences on both sides (the code)     -> no lost wake-up
//   fenced_relaxed_store   as fenced with a relaxed data store: the fences alone
//                          decide the race (release is there for the slot's bytes)    -> no lost wake-up
//   release_acquire        release store / acquire loads, acq_rel announce, no fences -> lost wake-up found
//   parker_fence_only      heavy barrier on the parker only, none on the publisher
//                          (what a membarrier call failing after registration leaves)  -> lost wake-up found
//   never_wakes            fenced, but the publisher never wakes: checks the check    -> lost wake-up found
//   close                  close(): seq_cst store of closed_, then an unconditional
//                          wake_all() RMW; parker re-checks closed_ relaxed ([C5]),
//                          no barrier                                                 -> no lost wake-up
//   close_conditional      a closer that wakes only if it sees bit 0, no fences        -> lost wake-up found
//   resume_room            a producer refused on a full ring of 2 waits for both slots (resume room 2);
//                          the consumer frees them one by one, each time fenced, and wakes only when
//                          the room looks free by its head and the producer's tail snapshot, which it
//                          may read stale ([S7], [W6])                                 -> no lost wake-up
//   resume_room_early_test as resume_room, but the consumer tests the room with its head from before
//                          the free it just made                                      -> lost wake-up found
// A suite expected to fail must fail with Relacy's "user assert failed" (the lost wake-up), nothing else.
//
// Sanitizer builds (RILL_SANITIZER_BUILD) skip these tests: relacy.hpp replaces the global operator new and
// delete (AddressSanitizer then reports an alloc-dealloc mismatch before main), and it runs the simulated
// threads as ucontext fibers that neither sanitizer is told about. The models touch no rill code, so there
// is nothing for a sanitizer to check here; the release and debug builds run them.
#include <gtest/gtest.h>

#if defined(RILL_SANITIZER_BUILD)

TEST(ParkWakeRelacy, SkippedUnderSanitizers) {
  GTEST_SKIP() << "Relacy replaces the global operator new/delete (ASan: alloc-dealloc mismatch) and runs its "
                  "threads as ucontext fibers the sanitizers are not told about; release and debug builds run "
                  "these models";
}

#else

#include <cstdint>

#include "relacy_model.hpp"

namespace {

constexpr std::uint32_t kWaiterBit = 1;  // wait_word::kWaiterBit

enum class handshake_kind {
  fenced,                // the code: seq_cst fences (membarrier) on both sides
  fenced_relaxed_store,  // as fenced, publishing with a relaxed store
  release_acquire,       // no fences: release/acquire only
  parker_fence_only,     // the parker's barrier, none on the publisher
  never_wakes,           // as fenced, but the publisher never wakes anyone (the check must catch it)
};

// State and steps shared by every suite: the futex word with wait_word's announce / wake_all / park.
struct wait_word_model {
  rl::atomic<std::uint32_t> word;
  bool slept = false;
  std::uint32_t slept_on = 0;

  void reset() { word(RL_INFO).store(0, rl::mo_relaxed); }

  // [W2] announce: fetch_or of the waiter bit.
  std::uint32_t announce(rl::memory_order mo) { return word(RL_INFO).fetch_or(kWaiterBit, mo) | kWaiterBit; }

  // [W5] wake_all(): clear bit 0 and bump the generation with an acq_rel CAS, then FUTEX_WAKE (nothing to
  // model: a sleeper wakes because its word changed).
  void wake_all() {
    std::uint32_t old = word(RL_INFO).load(rl::mo_relaxed);
    while (true) {
      const std::uint32_t next = (old & kWaiterBit) != 0 ? old + 1 : old + 2;
      if (word(RL_INFO).compare_exchange_weak(old, next, rl::mo_acq_rel, rl::mo_relaxed)) break;
    }
  }

  // futex_wait(word, announced): asleep if the word still equals `announced`, else EAGAIN.
  void park(std::uint32_t announced) {
    std::uint32_t expected = announced;
    if (word(RL_INFO).compare_exchange_strong(expected, announced, rl::mo_seq_cst, rl::mo_seq_cst)) {
      slept = true;
      slept_on = announced;
    }
  }

  // Still asleep once every thread is done: no wake changed the word after the parker slept on it.
  bool still_asleep() const { return slept && word(RL_INFO).load(rl::mo_relaxed) == slept_on; }
};

// One publisher (thread 0) and one parker (thread 1).
template <handshake_kind Kind>
struct handshake : rl::test_suite<handshake<Kind>, 2> {
  static constexpr bool kPublisherFence = Kind == handshake_kind::fenced ||
                                         Kind == handshake_kind::fenced_relaxed_store ||
                                         Kind == handshake_kind::never_wakes;
  static constexpr bool kParkerFence = Kind != handshake_kind::release_acquire;
  static constexpr rl::memory_order kPublishOrder =
      Kind == handshake_kind::fenced_relaxed_store ? rl::mo_relaxed : rl::mo_release;

  rl::atomic<std::uint32_t> data;  // the tail, head, turn or closed_ the parker waits on
  wait_word_model w;
  bool got_data = false;

  void before() {
    data(RL_INFO).store(0, rl::mo_relaxed);
    w.reset();
  }

  void thread(unsigned index) {
    if (index == 0) {
      publish();
    } else {
      wait();
    }
  }

  // stream::try_send_once(): publish ([S1]/[M2] release), then consumers_.notify_after_publish().
  void publish() {
    data(RL_INFO).store(1, kPublishOrder);
    if (kPublisherFence) rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);  // [W1'] (membarrier's effect)
    // [W4]: relaxed in the code (the fence orders it); acquire where there is no fence, the best it can do.
    const std::uint32_t seen = w.word(RL_INFO).load(kPublisherFence ? rl::mo_relaxed : rl::mo_acquire);
    if ((seen & kWaiterBit) != 0 && Kind != handshake_kind::never_wakes) w.wake_all();
  }

  // stream::wait_for(), one round: announce, heavy barrier, re-check, park.
  void wait() {
    const std::uint32_t announced = w.announce(kParkerFence ? rl::mo_seq_cst : rl::mo_acq_rel);
    if (kParkerFence) rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);  // [W3'] (membarrier [W3])
    if (data(RL_INFO).load(rl::mo_acquire) != 0) {  // the re-check ([S4]/[M3]/[C3])
      got_data = true;
      return;
    }
    w.park(announced);
  }

  void after() {
    // Thread 0 always publishes, so a parker still asleep at the end has lost its wake-up.
    RL_ASSERT(!(w.still_asleep() && !got_data));
  }
};

// close() (or a stop_token's callback) against a parked sender or receiver.
template <bool Unconditional>
struct close_race : rl::test_suite<close_race<Unconditional>, 2> {
  rl::atomic<std::uint32_t> closed;  // stream::closed_
  wait_word_model w;
  bool saw_closed = false;

  void before() {
    closed(RL_INFO).store(0, rl::mo_relaxed);
    w.reset();
  }

  void thread(unsigned index) {
    if (index == 0) {
      close();
    } else {
      wait();
    }
  }

  void close() {
    closed(RL_INFO).store(1, rl::mo_seq_cst);  // [C4]
    if (Unconditional) {
      w.wake_all();  // stream::close(): wake_all() always changes the word
    } else if ((w.word(RL_INFO).load(rl::mo_relaxed) & kWaiterBit) != 0) {
      w.wake_all();  // what notify_after_publish() would do without its barrier: not what close() does
    }
  }

  void wait() {
    const std::uint32_t announced = w.announce(rl::mo_seq_cst);  // [W2]
    // No barrier: close()'s path needs none (the point of this suite). The sender's re-check is try_send()'s
    // relaxed [C5] load, the weakest of the re-checks.
    if (closed(RL_INFO).load(rl::mo_relaxed) != 0) {
      saw_closed = true;
      return;
    }
    w.park(announced);
  }

  void after() { RL_ASSERT(!(w.still_asleep() && !saw_closed)); }
};

// The resume room's wake-up (stream::notify_producers): ring of 2 slots, resume room 2. The producer (thread
// 1) has sent positions 0 and 1 and was refused at 2: it waits for the slot of position 3 (tail + room - 1),
// which vouches for both. The consumer (thread 0) takes position 0, then 1, marking each slot free.
template <bool TestsWithHeadBeforeTheFree>
struct resume_room_race : rl::test_suite<resume_room_race<TestsWithHeadBeforeTheFree>, 2> {
  static constexpr std::uint64_t kCapacity = 2, kRoom = 2, kFree = ~std::uint64_t{0};
  rl::atomic<std::uint64_t> slot_word[2];  // sequence words: the position published there, or kFree
  rl::atomic<std::uint64_t> tail;          // spsc_channel::tail_, a relaxed snapshot ([S5])
  wait_word_model w;
  bool got_room = false;

  void before() {
    slot_word[0](RL_INFO).store(0, rl::mo_relaxed);
    slot_word[1](RL_INFO).store(1, rl::mo_relaxed);
    tail(RL_INFO).store(0, rl::mo_relaxed);  // the producer stores 2 as it starts: the consumer may read 0
    w.reset();
  }

  void thread(unsigned index) {
    if (index == 0) {
      consume();
    } else {
      wait_for_room();
    }
  }

  // try_receive, twice: mark the slot free ([S6]), then notify_producers(): fence, [W6], the room test.
  void consume() {
    for (std::uint64_t head = 0; head < 2; ++head) {
      slot_word[head % kCapacity](RL_INFO).store(kFree, rl::mo_release);       // [S6]
      rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);                        // [W1']
      if ((w.word(RL_INFO).load(rl::mo_relaxed) & kWaiterBit) == 0) continue;  // [W6]
      const std::uint64_t head_now = TestsWithHeadBeforeTheFree ? head : head + 1;
      const std::uint64_t tail_seen = tail(RL_INFO).load(rl::mo_relaxed);  // [S7]
      if (tail_seen - head_now + (kRoom - 1) < kCapacity) w.wake_all();    // resume_room_may_be_free()
    }
  }

  // The refused producer in send(): its tail stored, then one round of wait_for: announce, barrier,
  // re-check (the room's last slot, [S2]), park.
  void wait_for_room() {
    tail(RL_INFO).store(2, rl::mo_relaxed);                      // [S5], from its last publish
    const std::uint32_t announced = w.announce(rl::mo_seq_cst);  // [W2]
    rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);            // [W3']
    if (slot_word[(2 + kRoom - 1) % kCapacity](RL_INFO).load(rl::mo_acquire) == kFree) {
      got_room = true;
      return;
    }
    w.park(announced);
  }

  // The consumer always frees both slots: a producer still asleep at the end lost its wake-up.
  void after() { RL_ASSERT(!(w.still_asleep() && !got_room)); }
};

using rill::test::check_model;
using rill::test::model_result;

// Passing suites explore every execution (full search): more than one, or the model did not branch.
template <class Suite>
void expect_no_lost_wake_up() {
  const model_result r = check_model<Suite>();
  EXPECT_EQ(r.result, rl::test_result_success) << r.log;
  EXPECT_GT(r.iterations, 1u) << r.log;
}

// Failing suites must fail on the lost-wake-up assertion, not on anything else Relacy reports.
template <class Suite>
void expect_lost_wake_up() {
  const model_result r = check_model<Suite>();
  EXPECT_EQ(r.result, rl::test_result_user_assert_failed) << r.log;
  EXPECT_NE(r.log.find("still_asleep"), std::string::npos) << r.log;
}

TEST(ParkWakeRelacy, FencesOnBothSidesNeverLoseAWakeUp) {
  expect_no_lost_wake_up<handshake<handshake_kind::fenced>>();
}

TEST(ParkWakeRelacy, FencesOnBothSidesNeedNoReleaseForTheRace) {
  expect_no_lost_wake_up<handshake<handshake_kind::fenced_relaxed_store>>();
}

TEST(ParkWakeRelacy, ReleaseAcquireAloneLosesAWakeUp) {
  expect_lost_wake_up<handshake<handshake_kind::release_acquire>>();
}

TEST(ParkWakeRelacy, ParkerBarrierAloneLosesAWakeUp) {
  expect_lost_wake_up<handshake<handshake_kind::parker_fence_only>>();
}

TEST(ParkWakeRelacy, CheckCatchesAPublisherThatNeverWakes) {
  expect_lost_wake_up<handshake<handshake_kind::never_wakes>>();
}

TEST(ParkWakeRelacy, CloseWakesAParkerWithoutBarriers) {
  expect_no_lost_wake_up<close_race<true>>();
}

TEST(ParkWakeRelacy, ConditionalWakeOnCloseWouldLoseAWakeUp) {
  expect_lost_wake_up<close_race<false>>();
}

TEST(ParkWakeRelacy, ResumeRoomWakeNeverLosesAWakeUp) {
  expect_no_lost_wake_up<resume_room_race<false> >();
}

TEST(ParkWakeRelacy, ResumeRoomTestedBeforeTheFreeLosesAWakeUp) {
  expect_lost_wake_up<resume_room_race<true> >();
}

}  // namespace

#endif  // RILL_SANITIZER_BUILD
