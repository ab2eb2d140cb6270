// Relacy models of rill's MPMC ring (detail/mpmc_channel.hpp): Vyukov's bounded queue with the run claims
// batches use (try_claim_run, try_take_run: claim_run), docs/memory_model.md "Streams" [M0]-[M5'].
//
// A producer claims a run of consecutive tickets with one CAS on the tail after reading each run slot's
// turn (acquire, [M1]) equal to its ticket; it writes each slot and publishes it by storing turn = ticket + 1
// (release, [M2]). A consumer takes a run of published tickets with one CAS on the head after reading each
// turn (acquire, [M3]) equal to ticket + 1, reads the slots and frees each by storing turn = ticket +
// capacity (release, [M4]). Single sends and receives are runs of one. Each suite runs producers and
// consumers on a small ring, every operation with a bounded number of retries, under Relacy's random
// scheduler (three or four threads with retry loops are beyond an exhaustive search in CI's time), and
// checks at the end:
// nothing read torn (Relacy's data race detection on the slots' plain bytes), every event a producer sent
// received once or still in the ring, and each consumer saw each producer's events in the order sent.
//
// Suites and the result each must give:
//   code                 the code                                                        -> holds
//   first_turn_vouches   a run claim that reads only its first slot's turn and takes the
//                        rest on trust (as an SPSC batch may, where the consumer frees in
//                        order, but MPMC consumers free in any order)                     -> data race found
//   relaxed_turns        run claims read the turns relaxed                                -> data race found
//
// Sanitizer builds skip these tests, as the other Relacy suites (park_wake_relacy_test.cpp says why).
#include <gtest/gtest.h>

#if defined(RILL_SANITIZER_BUILD)

TEST(MpmcRelacy, SkippedUnderSanitizers) {
  GTEST_SKIP()
      << "Relacy replaces the global operator new/delete (ASan: alloc-dealloc mismatch) and runs its "
         "threads as ucontext fibers the sanitizers are not told about; release and debug builds run "
         "these models";
}

#else

#include <array>
#include <cstddef>
#include <cstdint>

#include "relacy_model.hpp"

namespace {

using rill::test::expect_holds;
using rill::test::expect_violation;

enum class run_kind { code, first_turn_vouches, relaxed_turns };

// Two producers, one consumer, two slots: producer 0 sends a batch of two, producer 1 a single event; the
// consumer takes runs of up to two.
struct two_producers_one_consumer {
  static constexpr std::uint64_t kCapacity = 2;
  static constexpr std::array<std::uint64_t, 2> kSends{2, 1};  // events per producer, one batch each
  static constexpr std::size_t kConsumers = 1;
  static constexpr std::uint64_t kTakeRun = 2;
  static constexpr std::size_t kRetries = 4;
};

// Two producers, two consumers, two slots: batches of two from each, runs of up to two taken.
struct two_producers_two_consumers {
  static constexpr std::uint64_t kCapacity = 2;
  static constexpr std::array<std::uint64_t, 2> kSends{2, 2};
  static constexpr std::size_t kConsumers = 2;
  static constexpr std::uint64_t kTakeRun = 2;
  static constexpr std::size_t kRetries = 3;
};

// Three slots, batches of three from one producer and two from the other: runs wrap around the ring and
// meet slots freed out of order by the two consumers.
struct wrapping_runs {
  static constexpr std::uint64_t kCapacity = 3;
  static constexpr std::array<std::uint64_t, 2> kSends{3, 2};
  static constexpr std::size_t kConsumers = 2;
  static constexpr std::uint64_t kTakeRun = 2;
  static constexpr std::size_t kRetries = 4;
};

constexpr std::uint64_t kMaxEvents = 3;  // per producer, in any shape

// Threads 0 and 1 are the producers, the rest consumers.
template <run_kind Kind, class Shape>
struct ring : rl::test_suite<ring<Kind, Shape>, 2 + Shape::kConsumers> {
  static constexpr std::uint64_t kCapacity = Shape::kCapacity;
  static constexpr std::size_t kProducers = 2;

  rl::atomic<std::uint64_t> tail;
  rl::atomic<std::uint64_t> head;
  rl::atomic<std::uint64_t> turns[kCapacity];
  struct slot {
    rl::var<std::uint64_t> producer;
    rl::var<std::uint64_t> index;  // the producer's event number
  };
  slot slots[kCapacity];

  std::uint64_t sent[kProducers] = {};  // events each producer got into the ring
  std::uint64_t seen[kProducers][kMaxEvents] =
      {};  // receipts of each producer's events, then those in the ring
  bool out_of_order = false;

  void before() {
    tail(RL_INFO).store(0, rl::mo_relaxed);
    head(RL_INFO).store(0, rl::mo_relaxed);
    for (std::uint64_t i = 0; i < kCapacity; ++i) {
      turns[i](RL_INFO).store(i, rl::mo_relaxed);
      slots[i].producer(RL_INFO) = 0;
      slots[i].index(RL_INFO) = 0;
    }
  }

  void thread(unsigned index) {
    if (index < kProducers) {
      produce(index);
    } else {
      consume();
    }
  }

  // ---- both sides ----

  // mpmc_channel::claim_run(), both sides: moves `index` past up to `max` tickets whose turns read ticket +
  // `ready` (0: free, the producers' tail; 1: published, the consumers' head). 0 when the ticket at `index`
  // is not ready, or when the retries run out. The broken variants change only the producers' claim.
  std::uint64_t claim_run(rl::atomic<std::uint64_t>& index, std::uint64_t ready, std::uint64_t& first,
                          std::uint64_t max) {
    const bool producer = ready == 0;
    const rl::memory_order order =
        producer && Kind == run_kind::relaxed_turns ? rl::mo_relaxed : rl::mo_acquire;
    std::uint64_t at = index(RL_INFO).load(rl::mo_relaxed);  // [M0] / [M5]
    for (std::size_t attempt = 0; attempt <= Shape::kRetries; ++attempt) {
      std::uint64_t n = 0;
      bool not_ready = false;
      for (; n < max; ++n) {
        const std::uint64_t turn = turns[(at + n) % kCapacity](RL_INFO).load(order);  // [M1] / [M3]
        if (turn != at + n + ready) {
          not_ready = turn < at + n + ready;
          break;
        }
        if (producer && Kind == run_kind::first_turn_vouches) {
          n = max;
          break;
        }
      }
      if (n != 0) {
        if (index(RL_INFO).compare_exchange_weak(at, at + n, rl::mo_relaxed,
                                                 rl::mo_relaxed)) {  // [M0'], [M5']
          first = at;
          return n;
        }
      } else if (not_ready) {
        return 0;
      } else {
        at = index(RL_INFO).load(rl::mo_relaxed);  // [M0] / [M5]
      }
    }
    return 0;
  }

  // ---- producer ----

  void produce(unsigned p) {
    const std::uint64_t events = Shape::kSends[p];
    std::uint64_t done = 0;
    for (std::size_t refused = 0; done < events && refused <= Shape::kRetries;) {
      std::uint64_t first = 0;
      const std::uint64_t run = claim_run(tail, 0, first, events - done);
      if (run == 0) {
        ++refused;
        continue;
      }
      for (std::uint64_t i = 0; i < run; ++i) {  // fill and publish in ticket order
        slot& s = slots[(first + i) % kCapacity];
        s.producer(RL_INFO) = p;
        s.index(RL_INFO) = done + i;
        turns[(first + i) % kCapacity](RL_INFO).store(first + i + 1, rl::mo_release);  // [M2]
      }
      done += run;
    }
    sent[p] = done;
  }

  // ---- consumer ----

  void consume() {
    std::uint64_t next[kProducers] = {};  // this consumer's next expected index floor, per producer
    for (std::size_t refused = 0; refused <= Shape::kRetries;) {
      std::uint64_t first = 0;
      const std::uint64_t run = claim_run(head, 1, first, Shape::kTakeRun);
      if (run == 0) {
        ++refused;
        continue;
      }
      for (std::uint64_t i = 0; i < run; ++i) {
        slot& s = slots[(first + i) % kCapacity];
        const std::uint64_t p = s.producer(RL_INFO);
        const std::uint64_t index = s.index(RL_INFO);
        turns[(first + i) % kCapacity](RL_INFO).store(first + i + kCapacity, rl::mo_release);  // [M4]
        RL_ASSERT(p < kProducers && index < kMaxEvents);
        if (index < next[p]) out_of_order = true;
        next[p] = index + 1;
        ++seen[p][index];
      }
    }
  }

  // ---- the end ----

  void after() {
    RL_ASSERT(!out_of_order);
    const std::uint64_t h = head(RL_INFO).load(rl::mo_relaxed);
    const std::uint64_t t = tail(RL_INFO).load(rl::mo_relaxed);
    RL_ASSERT(h <= t && t - h <= kCapacity);
    // Events still in the ring: every ticket from head to tail is published (each producer ran its
    // publications to the end), and holds an event not received.
    for (std::uint64_t ticket = h; ticket < t; ++ticket) {
      RL_ASSERT(turns[ticket % kCapacity](RL_INFO).load(rl::mo_relaxed) == ticket + 1);
      const slot& s = slots[ticket % kCapacity];
      const std::uint64_t p = s.producer(RL_INFO);
      const std::uint64_t index = s.index(RL_INFO);
      RL_ASSERT(p < kProducers && index < kMaxEvents);
      ++seen[p][index];
    }
    std::uint64_t total_sent = 0;
    for (std::size_t p = 0; p < kProducers; ++p) {
      total_sent += sent[p];
      for (std::uint64_t i = 0; i < kMaxEvents; ++i) {
        RL_ASSERT(seen[p][i] == (i < sent[p] ? 1u : 0u));  // each sent event exactly once, none invented
      }
    }
    RL_ASSERT(t == total_sent);
  }
};

TEST(MpmcRelacy, RunClaimsOfTwoProducersReachOneConsumerOnceAndInOrderUnderRandomSearch) {
  expect_holds<ring<run_kind::code, two_producers_one_consumer> >(rl::sched_random, 300000);
}

TEST(MpmcRelacy, RunClaimsAndRunTakesOfTwoProducersAndTwoConsumersLoseNothingUnderRandomSearch) {
  expect_holds<ring<run_kind::code, two_producers_two_consumers> >(rl::sched_random, 300000);
}

TEST(MpmcRelacy, RunsThatWrapAroundTheRingLoseNothingUnderRandomSearch) {
  expect_holds<ring<run_kind::code, wrapping_runs> >(rl::sched_random, 300000);
}

TEST(MpmcRelacy, ARunClaimThatTrustsItsFirstTurnOverwritesAnEventBeingRead) {
  expect_violation<ring<run_kind::first_turn_vouches, two_producers_two_consumers> >(
      rl::test_result_data_race, "DATA RACE (data race detected)", rl::sched_random, 300000);
}

TEST(MpmcRelacy, ARunClaimWithRelaxedTurnLoadsRacesTheConsumersRead) {
  expect_violation<ring<run_kind::relaxed_turns, two_producers_one_consumer> >(
      rl::test_result_data_race, "DATA RACE (data race detected)");
}

}  // namespace

#endif
