// Relacy models of the protocols behind rill::multicast_stream (multicast.cpp; docs/memory_model.md
// "Multicast"). ThreadSanitizer cannot check them: every shared word is an atomic (so it sees no race) and it
// does not model fences, which are what make the protocols correct. Relacy explores every interleaving and
// every value each load may read under the C++ memory model.
//
//   seqlock      A slot rewritten from version 1 to version 2 while a subscriber expecting version 1 copies
//                it: producer [F1] marker (relaxed), [F2] release fence, data words (relaxed), [F3] version
//                (release); subscriber [F5] acquire load, copy (relaxed), [F6] acquire fence, version re-load
//                (relaxed). A validated copy must be version 1's words, whole. Variants drop the producer's
//                fence or the subscriber's fence: Relacy must then find a torn copy that validates.
//   holder       A hold subscriber attaching while the producer scans for holders, the store-then-load pair
//                [F12]/[F13]: either the scan sees the holder, or the holder sees the sequence number the
//                producer published before its scan. The membarrier is modelled as the seq_cst fence it
//                stands for (see park_wake_relacy_test.cpp); without the producer's barrier it must fail.
//   backlog      A hold subscriber attaching in the backlog (start_at::oldest) while the producer, whose
//                cached gate predates it, keeps writing: [F16] rescan bit, and the light barrier each send
//                runs after publishing. The holder must never be overwritten; without the rescan bit, or
//                without the producer's barrier, Relacy must find it overwritten.
//   text         The same race for the text ring: [F17] the producer announces a text retirement, then
//                checks the rescan bit; the holder sets the bit, then reads the announcement. Either the
//                producer sees the holder and withdraws, or the holder starts after the retired text.
//   wake         A producer parked behind a holder, [F18]: it stores the cursor it needs, announces itself on
//                the wait word, runs its heavy barrier (a seq_cst fence here) and re-checks; the holder
//                stores its cursor, runs its light barrier, loads the needed cursor and wakes the producer
//                only when its publication crosses it. The producer must never stay asleep once the holder
//                has reached the cursor, also with a mark left from an earlier event and across a spurious
//                return; without the holder's barrier, with the mark stored after the producer's barrier,
//                or with a holder that never wakes, Relacy must find it asleep.
//   resume       A subscriber that has just received an event asks whether it was sent, as resume() does
//                with its last_seen (multicast_stream::sent()): the producer stores the slot's version [F3]
//                before `published_` [F4], so `published_` may still equal that sequence number; the slot
//                then decides, and the rewrite marker counts as sent. A sequence number never sent must
//                never count. Variants that trust `published_` alone, or read the marker as "not sent",
//                must fail.
// Each failing variant must fail on its own assertion ("user assert failed"), nothing else.
//
// Sanitizer builds skip these models (relacy_model.hpp says why).
#include <gtest/gtest.h>

#if defined(RILL_SANITIZER_BUILD)

TEST(MulticastRelacy, SkippedUnderSanitizers) {
  GTEST_SKIP()
      << "Relacy replaces the global operator new/delete and runs fibers the sanitizers are not told "
         "about; release and debug builds run these models";
}

#else

#include <cstdint>

#include "relacy_model.hpp"

namespace {

using rill::test::check_model;
using rill::test::model_result;

constexpr std::uint64_t kWriting = ~std::uint64_t{0} - 1;  // multicast_stream::kSlotWriting

enum class seqlock_kind { code, no_producer_fence, no_subscriber_fence };

// Thread 0 rewrites the slot from version 1 to version 2; thread 1 reads it expecting version 1.
template <seqlock_kind Kind>
struct seqlock : rl::test_suite<seqlock<Kind>, 2> {
  rl::atomic<std::uint64_t> version;
  rl::atomic<std::uint64_t> word_a;
  rl::atomic<std::uint64_t> word_b;

  void before() {
    // Version 1 published (its words are 10 and 11) before either thread runs.
    word_a(RL_INFO).store(10, rl::mo_relaxed);
    word_b(RL_INFO).store(11, rl::mo_relaxed);
    version(RL_INFO).store(1, rl::mo_release);
  }

  void thread(unsigned index) {
    if (index == 0) {
      rewrite();
    } else {
      read();
    }
  }

  void rewrite() {
    version(RL_INFO).store(kWriting, rl::mo_relaxed);                                               // [F1]
    if (Kind != seqlock_kind::no_producer_fence) rl::atomic_thread_fence(rl::mo_release, RL_INFO);  // [F2]
    word_a(RL_INFO).store(20, rl::mo_relaxed);
    word_b(RL_INFO).store(21, rl::mo_relaxed);
    version(RL_INFO).store(2, rl::mo_release);  // [F3]
  }

  void read() {
    if (version(RL_INFO).load(rl::mo_acquire) != 1) return;  // [F5]: not version 1: lagged, nothing delivered
    const std::uint64_t a = word_a(RL_INFO).load(rl::mo_relaxed);  // [F6] the copy
    const std::uint64_t b = word_b(RL_INFO).load(rl::mo_relaxed);
    if (Kind != seqlock_kind::no_subscriber_fence) rl::atomic_thread_fence(rl::mo_acquire, RL_INFO);  // [F6]
    if (version(RL_INFO).load(rl::mo_relaxed) != 1) return;  // overwritten meanwhile: discarded
    RL_ASSERT(a == 10 && b == 11);                           // delivered: must be version 1, whole
  }
};

enum class holder_kind { code, no_producer_barrier };

// Thread 0: the producer publishes sequence 1, then scans for holders. Thread 1: a subscriber registers as a
// holder, then reads what was published.
template <holder_kind Kind>
struct holder : rl::test_suite<holder<Kind>, 2> {
  rl::atomic<std::uint64_t> published;
  rl::atomic<std::uint32_t> state;
  bool scan_saw_holder = false;
  std::uint64_t holder_saw = 0;

  void before() {
    published(RL_INFO).store(0, rl::mo_relaxed);
    state(RL_INFO).store(0, rl::mo_relaxed);
  }

  void thread(unsigned index) {
    if (index == 0) {
      published(RL_INFO).store(1, rl::mo_release);                                      // [F4]
      if (Kind == holder_kind::code) rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);  // [F12] (membarrier)
      scan_saw_holder = state(RL_INFO).load(rl::mo_acquire) == 2;                       // [F11]
    } else {
      state(RL_INFO).store(2, rl::mo_seq_cst);               // [F13] kEntryHolding
      rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);      // [F13] heavy_barrier()
      holder_saw = published(RL_INFO).load(rl::mo_acquire);  // [F4]
    }
  }

  // If the scan missed the holder, the producer may overwrite anything below its gate (<= 1): the holder
  // must have started at or after 1, i.e. seen the publication.
  void after() { RL_ASSERT(scan_saw_holder || holder_saw == 1); }
};

constexpr std::uint32_t kRescan = 2;   // multicast_stream::kRescanBit
constexpr std::uint32_t kHolding = 2;  // multicast_stream::kEntryHolding

// A hold subscriber's entry and the stream's control word, as attach() and the producer's rescan use them.
struct holder_entry {
  rl::atomic<std::uint32_t> control;
  rl::atomic<std::uint32_t> state;
  rl::atomic<std::uint64_t> cursor;

  void reset() {
    control(RL_INFO).store(0, rl::mo_relaxed);
    state(RL_INFO).store(0, rl::mo_relaxed);
    cursor(RL_INFO).store(0, rl::mo_relaxed);
  }
  // attach() up to and including its heavy barrier.
  void attach_as_holder(std::uint64_t first_cursor) {
    cursor(RL_INFO).store(first_cursor, rl::mo_relaxed);
    state(RL_INFO).store(kHolding, rl::mo_seq_cst);      // [F13]
    control(RL_INFO).fetch_or(kRescan, rl::mo_release);  // [F16]
    rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);    // [F13] heavy_barrier()
  }
  // The producer's scan: the holder's cursor, or `seq` when it does not hold (yet).
  std::uint64_t gate(std::uint64_t seq) {
    if (state(RL_INFO).load(rl::mo_acquire) != kHolding) return seq;  // [F11]
    const std::uint64_t c = cursor(RL_INFO).load(rl::mo_acquire);
    return c < seq ? c : seq;
  }
  // The producer's check of the rescan bit [F16]: when set, clears it (admit_holders()) and returns true.
  bool take_rescan_bit() {
    if ((control(RL_INFO).load(rl::mo_relaxed) & kRescan) == 0) return false;
    control(RL_INFO).fetch_and(~kRescan, rl::mo_acquire);
    return true;
  }
};

enum class backlog_kind { code, no_rescan_bit, no_producer_barrier };
// A ring of two slots (mask 1) holding events 0 and 1; the producer's last scan saw no holder, so its cached
// gate (2) lets it write 2 and 3. Thread 0 tries to send 2 and 3; thread 1 attaches a holder at the oldest
// retained event (1, by the snapshot it took before attaching).
template <backlog_kind Kind>
struct backlog : rl::test_suite<backlog<Kind>, 2> {
  static constexpr std::uint64_t kMask = 1;
  rl::atomic<std::uint64_t> published;
  holder_entry holder;
  std::uint64_t newest_written = 1;  // thread 0's
  std::uint64_t holder_start = 0;    // thread 1's

  void before() {
    published(RL_INFO).store(2, rl::mo_relaxed);
    holder.reset();
  }

  void thread(unsigned index) {
    if (index == 0) {
      std::uint64_t gate = 2;
      for (std::uint64_t seq = 2; seq <= 3; ++seq) {
        // try_send's check of the rescan bit [F16]
        if (Kind != backlog_kind::no_rescan_bit && holder.take_rescan_bit()) gate = holder.gate(seq);
        if (seq - gate > kMask) {                            // refused by the cached gate:
          rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);  // [F12] refresh_gate()
          gate = holder.gate(seq);
          if (seq - gate > kMask) return;  // full
        }
        newest_written = seq;                               // overwrites seq - 2
        published(RL_INFO).store(seq + 1, rl::mo_release);  // [F4]
        if (Kind != backlog_kind::no_producer_barrier) {
          rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);  // [W1] notify_after_publish()'s light barrier
        }
      }
    } else {
      holder.attach_as_holder(1);  // the snapshot: oldest retained = published - mask
      const std::uint64_t p = published(RL_INFO).load(rl::mo_acquire);  // [F4]
      holder_start = p - kMask > 1 ? p - kMask : 1;                     // retained_from()
      holder.cursor(RL_INFO).store(holder_start, rl::mo_release);       // [F10]
    }
  }

  // Writing seq overwrites seq - 2: the holder's first event survives while newest_written < start + 2.
  void after() { RL_ASSERT(newest_written < holder_start + 2); }
};

enum class text_kind { code, no_producer_barrier };

// The producer's next write retires the text of event 0 (the holder's candidate start); its cached gate
// allows it. Thread 1 attaches a holder at event 0.
template <text_kind Kind>
struct text : rl::test_suite<text<Kind>, 2> {
  rl::atomic<std::uint64_t> retiring_from;
  holder_entry holder;
  bool retired = false;            // thread 0's
  std::uint64_t holder_start = 0;  // thread 1's

  void before() {
    retiring_from(RL_INFO).store(0, rl::mo_relaxed);
    holder.reset();
  }

  void thread(unsigned index) {
    if (index == 0) {
      retiring_from(RL_INFO).store(1, rl::mo_relaxed);  // [F17] announce_text_retirement()
      if (Kind != text_kind::no_producer_barrier) rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);
      if (holder.take_rescan_bit() && holder.gate(1) < 1) {  // [F16]: a holder still needs event 0's text
        retiring_from(RL_INFO).store(0, rl::mo_relaxed);     // withdrawn: full
        return;
      }
      retired = true;  // event 0's text is overwritten
    } else {
      holder.attach_as_holder(0);
      holder_start = retiring_from(RL_INFO).load(rl::mo_relaxed);  // [F17] retained_from()
      holder.cursor(RL_INFO).store(holder_start, rl::mo_release);  // [F10]
    }
  }

  void after() { RL_ASSERT(!retired || holder_start >= 1); }
};

enum class wake_kind { code, no_holder_barrier, mark_after_barrier, never_wakes };

// The wait word of parking.hpp: bit 0 "someone may sleep", the rest a generation; park() stands for
// futex_wait, which sleeps only while the word still holds the announced value.
struct wait_word_model {
  rl::atomic<std::uint32_t> word;
  bool asleep = false;
  std::uint32_t slept_on = 0;
  std::uint32_t announce() { return word(RL_INFO).fetch_or(1, rl::mo_seq_cst) | 1; }  // [W2]
  void wake_all() {                                                                   // [W5]
    std::uint32_t old = word(RL_INFO).load(rl::mo_relaxed);
    while (!word(RL_INFO).compare_exchange_weak(old, (old & 1) != 0 ? old + 1 : old + 2, rl::mo_acq_rel,
                                                rl::mo_relaxed)) {
    }
  }
  void park(std::uint32_t announced) {
    std::uint32_t expected = announced;
    if (word(RL_INFO).compare_exchange_strong(expected, announced, rl::mo_seq_cst, rl::mo_seq_cst)) {
      asleep = true;
      slept_on = announced;
    }
  }
  bool still_asleep() { return asleep && word(RL_INFO).load(rl::mo_relaxed) == slept_on; }
};

// Thread 0: a producer refused until the holder's cursor reaches 2; it parks up to `Rounds` times (a return
// from park() before the last round is taken as spurious). Thread 1: the holder, publishing cursors 1 and 2.
// `Stale`: the mark starts at 1, an earlier event's.
template <wake_kind Kind, bool Stale, int Rounds>
struct wake : rl::test_suite<wake<Kind, Stale, Rounds>, 2> {
  static constexpr std::uint64_t kNeeded = 2;
  rl::atomic<std::uint64_t> cursor;
  rl::atomic<std::uint64_t> needed;  // multicast_stream::gate_needed_
  wait_word_model w;
  bool went_on = false;

  void before() {
    cursor(RL_INFO).store(0, rl::mo_relaxed);
    needed(RL_INFO).store(Stale ? 1 : 0, rl::mo_relaxed);
    w.word(RL_INFO).store(0, rl::mo_relaxed);
  }
  bool recheck() { return cursor(RL_INFO).load(rl::mo_acquire) >= kNeeded; }  // [F11]
  void thread(unsigned index) {
    if (index == 0) {
      if (recheck()) {
        went_on = true;
        return;
      }
      if (Kind != wake_kind::mark_after_barrier) needed(RL_INFO).store(kNeeded, rl::mo_relaxed);  // [F18]
      for (int round = 0; round < Rounds; ++round) {
        const std::uint32_t announced = w.announce();
        rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);  // heavy_barrier() [W3]
        if (Kind == wake_kind::mark_after_barrier && round == 0)
          needed(RL_INFO).store(kNeeded, rl::mo_relaxed);
        if (recheck()) {
          went_on = true;
          return;
        }
        w.park(announced);
        if (round + 1 < Rounds) w.asleep = false;  // a spurious return: announce and re-check again
      }
      return;
    }
    std::uint64_t from = 0;  // subscription::shown_cursor_
    for (std::uint64_t to = 1; to <= kNeeded; ++to) {
      cursor(RL_INFO).store(to, rl::mo_release);  // [F10]
      if (Kind != wake_kind::no_holder_barrier)
        rl::atomic_thread_fence(rl::mo_seq_cst, RL_INFO);  // [W1] + membarrier
      const std::uint64_t n = needed(RL_INFO).load(rl::mo_relaxed);
      if (from < n && n <= to && Kind != wake_kind::never_wakes) w.wake_all();
      from = to;
    }
  }
  void after() { RL_ASSERT(went_on || !w.still_asleep()); }
};

enum class resume_kind { code, published_only, marker_means_unsent };

// A ring of one slot. Thread 0 sends events 0 and 1 (1 overwrites 0); thread 1 receives whichever its slot
// shows, then checks that it counts as sent, and that event 2 (never sent) does not.
template <resume_kind Kind>
struct resume : rl::test_suite<resume<Kind>, 2> {
  static constexpr std::uint64_t kNever = ~std::uint64_t{0};  // multicast_stream::kSlotNever
  rl::atomic<std::uint64_t> version;
  rl::atomic<std::uint64_t> published;

  void before() {
    version(RL_INFO).store(kNever, rl::mo_relaxed);
    published(RL_INFO).store(0, rl::mo_relaxed);
  }

  void thread(unsigned index) {
    if (index == 0) {
      for (std::uint64_t seq = 0; seq <= 1; ++seq) {
        version(RL_INFO).store(kWriting, rl::mo_relaxed);   // [F1]
        rl::atomic_thread_fence(rl::mo_release, RL_INFO);   // [F2]
        version(RL_INFO).store(seq, rl::mo_release);        // [F3]
        published(RL_INFO).store(seq + 1, rl::mo_release);  // [F4]
      }
      return;
    }
    const std::uint64_t received = version(RL_INFO).load(rl::mo_acquire);  // [F5]
    if (received <= 1) RL_ASSERT(sent(received));
    RL_ASSERT(!sent(2));
  }

  // multicast_stream::sent()
  bool sent(std::uint64_t seq) {
    const std::uint64_t p = published(RL_INFO).load(rl::mo_acquire);  // [F4]
    if (seq != p || Kind == resume_kind::published_only) return seq < p;
    const std::uint64_t v = version(RL_INFO).load(rl::mo_acquire);  // [F5]
    if (v == kWriting) return Kind != resume_kind::marker_means_unsent;
    return v != kNever && v >= seq;
  }
};

template <class Suite>
void expect_holds() {
  const model_result r = check_model<Suite>();
  EXPECT_EQ(r.result, rl::test_result_success) << r.log;
  EXPECT_GT(r.iterations, 1u) << r.log;
}

template <class Suite>
void expect_violation() {
  const model_result r = check_model<Suite>();
  EXPECT_EQ(r.result, rl::test_result_user_assert_failed) << r.log;
}

TEST(MulticastRelacy, ValidatedCopyIsNeverTorn) {
  expect_holds<seqlock<seqlock_kind::code> >();
}

TEST(MulticastRelacy, WithoutTheProducersFenceATornCopyValidates) {
  expect_violation<seqlock<seqlock_kind::no_producer_fence> >();
}

TEST(MulticastRelacy, WithoutTheSubscribersFenceATornCopyValidates) {
  expect_violation<seqlock<seqlock_kind::no_subscriber_fence> >();
}

TEST(MulticastRelacy, AttachingHolderIsSeenOrSeesThePublication) {
  expect_holds<holder<holder_kind::code> >();
}

TEST(MulticastRelacy, WithoutTheProducersBarrierBothMissEachOther) {
  expect_violation<holder<holder_kind::no_producer_barrier> >();
}

TEST(MulticastRelacy, HolderStartingInTheBacklogIsNeverOverwritten) {
  expect_holds<backlog<backlog_kind::code> >();
}

TEST(MulticastRelacy, WithoutTheRescanBitABacklogHolderIsOverwritten) {
  expect_violation<backlog<backlog_kind::no_rescan_bit> >();
}

TEST(MulticastRelacy, WithoutTheProducersBarrierABacklogHolderIsOverwritten) {
  expect_violation<backlog<backlog_kind::no_producer_barrier> >();
}

TEST(MulticastRelacy, TextRetirementSparesAHolderStartingBeforeIt) {
  expect_holds<text<text_kind::code> >();
}

TEST(MulticastRelacy, WithoutTheProducersBarrierRetiredTextIsLostToAHolder) {
  expect_violation<text<text_kind::no_producer_barrier> >();
}

TEST(MulticastRelacy, AParkedProducerIsWokenWhenTheHolderCrossesItsMark) {
  expect_holds<wake<wake_kind::code, false, 1> >();
  expect_holds<wake<wake_kind::code, true, 2> >();  // a stale mark, and a spurious return
}

TEST(MulticastRelacy, WithoutTheHoldersBarrierAProducerSleepsThroughItsMark) {
  expect_violation<wake<wake_kind::no_holder_barrier, false, 1> >();
}

TEST(MulticastRelacy, WithTheMarkStoredAfterTheBarrierAProducerSleepsThroughIt) {
  expect_violation<wake<wake_kind::mark_after_barrier, false, 1> >();
}

TEST(MulticastRelacy, AHolderThatNeverWakesLeavesTheProducerAsleep) {
  expect_violation<wake<wake_kind::never_wakes, false, 1> >();
}

TEST(MulticastRelacy, AReceivedEventCountsAsSentForResume) {
  expect_holds<resume<resume_kind::code> >();
}

TEST(MulticastRelacy, TrustingPublishedAloneRefusesAReceivedEvent) {
  expect_violation<resume<resume_kind::published_only> >();
}

TEST(MulticastRelacy, ReadingTheMarkerAsUnsentRefusesAReceivedEvent) {
  expect_violation<resume<resume_kind::marker_means_unsent> >();
}

}  // namespace

#endif
