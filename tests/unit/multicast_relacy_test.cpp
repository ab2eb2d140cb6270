// Relacy models of the two protocols behind rill::multicast_stream (multicast.cpp; docs/memory_model.md
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

}  // namespace

#endif
