// Relacy models of the SPSC ring's free marks (detail/spsc_channel.hpp; docs/memory_model.md "SPSC ring").
// ThreadSanitizer judges the interleavings a run happens to take; Relacy explores every interleaving and, for
// each load, the values the C++ memory model lets it read, and reports a data race on the slots' plain words.
//
// The model is the protocol, not the code: a ring of 2 or 4 slots, each a sequence word (an rl::atomic) and
// two payload words (rl::var, derived from the position, so a torn or stale copy shows). Slots start kFree.
//   try_send at p         [S2] acquire slot p's word: not kFree -> full; else write the payload, then [S1]
//                         store p (release).
//   try_send_batch of n   room = free_slots(n): [S2] acquire the first slot's word (not kFree -> 0), then
//                         the last one wanted (kFree -> n), then halves in between; the room is up to the
//                         furthest slot read kFree (it vouches for the slots before it). Slots tail + 1 to
//                         tail + room - 1 are written whole, sequence word included ([S1'],
//                         write_unpolled_slots: relaxed stores here), then slot tail's payload, then its [S1]
//                         release, last.
//   try_receive at h      [S4] acquire slot h's word: not h -> empty; else copy the payload, then [S6] store
//                         kFree (release).
//   try_receive_batch,    [S4] for h, h + 1, ... up to n, stopping at the first not yet published; copy them
//   try_drain of n        all, then [S6] each, in ascending order.
// A batch's vector stores write a sequence word as plain memory; `seq_bytes` is that word seen as plain data:
// the batch writes it, and every poll reads it and every mark writes it, so Relacy reports a batch store not
// ordered with a poll or a mark of the same slot. head_ ([S3]) and tail_ ([S5]) are left out: they are
// snapshots nothing orders through, and each atomic access adds a scheduling point to the search.
//
// Each thread runs its operations in turn until every event went through or an attempt is refused. A refused
// attempt changes nothing the other thread reads, and the full search also runs the thread later, when the
// ring is no longer full (or empty), so it covers a retry without one; the `retries` model still retries once
// on each side. Checks: each event received is the next position, its payload whole; at the end, each event
// sent and not received is still published in its slot, whole, and every other slot is kFree (so a lost or
// doubled event, or a slot never freed, fails); no data race. The full search (rl::sched_full) lets a load
// read the latest store or the one before it.
//
//   mixed          capacity 2, 5 events; sends: one, a batch of 2, ...; receives: a batch of 2, one, ...
//   batch_first    capacity 2, 6 events; sends: a batch of 2, one, ...; receives: one, a batch of 2, ...
//   wide           capacity 4, 6 events; sends: a batch of 3, one, ...; receives: one, a batch of 4, ...
//   retries        capacity 2, 4 events as in mixed, one retry on each side
//   long_run       capacity 2, 8 events as in mixed, 12 retries on each side; a random search of 10^6
//                  executions (rl::sched_random, whose loads also read two stores back): a full search of a
//                  run this long does not finish in any reasonable time
//   lap_of_batches capacity 4, 8 events; sends: batches of 4; receives: batches of 2; 8 retries on each side
//                  (the second batch send has to land between two of the consumer's marks); random search,
//                  10^6 executions
// Variants, on `mixed` unless they say otherwise; each must fail on its own report, and the tests check where
// Relacy stopped:
//   relaxed_mark        [S6] relaxed: a single send that acquires kFree does not see the consumer's copy end
//                       -> data race on the payload, in the producer's fill
//   descending_marks    on lap_of_batches, under the random search: a batch receive marks its slots last to
//                       first, so a batch send that reads its last slot free takes an earlier one whose mark
//                       is still to come -> data race on that sequence word's plain bytes, in the batch
//                       send's whole-slot write (the late mark would erase the event published there)
//   first_slot_vouches  free_slots trusts the first slot for the whole batch: the batch overwrites events not
//                       yet received -> data race on a sequence word's plain bytes, in the consumer's poll
//   relaxed_room_check  [S2] relaxed -> data race on the payload, in the producer's fill
//
// Sanitizer builds skip these models (relacy_model.hpp says why).
#include <gtest/gtest.h>

#if defined(RILL_SANITIZER_BUILD)

TEST(SpscRelacy, SkippedUnderSanitizers) {
  GTEST_SKIP()
      << "Relacy replaces the global operator new/delete and runs fibers the sanitizers are not told "
         "about; release and debug builds run these models";
}

#else

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "relacy_model.hpp"

namespace {

using rill::test::expect_holds;
using rill::test::expect_violation;

constexpr std::uint64_t kFree = ~std::uint64_t{0};  // spsc_channel::kFree

// The payload of the event at `position`: the consumer checks both words.
constexpr std::uint64_t payload_a(std::uint64_t position) {
  return 0x100 + position;
}
constexpr std::uint64_t payload_b(std::uint64_t position) {
  return ~position;
}

enum class ring_kind { code, relaxed_mark, descending_marks, first_slot_vouches, relaxed_room_check };

// A run of the ring: its capacity, the number of events, the producer's operations in turn (1: try_send;
// n > 1: a batch of up to n), the consumer's (1: try_receive; n > 1: a batch receive of up to n), and how
// many refused attempts each side retries before it stops.
struct mixed {
  static constexpr std::uint64_t kCapacity = 2;
  static constexpr std::uint64_t kEvents = 5;
  static constexpr std::array<std::uint64_t, 2> kSends{1, 2};
  static constexpr std::array<std::uint64_t, 2> kReceives{2, 1};
  static constexpr std::size_t kRetries = 0;
};

struct batch_first {
  static constexpr std::uint64_t kCapacity = 2;
  static constexpr std::uint64_t kEvents = 6;
  static constexpr std::array<std::uint64_t, 2> kSends{2, 1};
  static constexpr std::array<std::uint64_t, 2> kReceives{1, 2};
  static constexpr std::size_t kRetries = 0;
};

struct wide {
  static constexpr std::uint64_t kCapacity = 4;
  static constexpr std::uint64_t kEvents = 6;
  static constexpr std::array<std::uint64_t, 2> kSends{3, 1};
  static constexpr std::array<std::uint64_t, 2> kReceives{1, 4};
  static constexpr std::size_t kRetries = 0;
};

struct retries {
  static constexpr std::uint64_t kCapacity = 2;
  static constexpr std::uint64_t kEvents = 4;
  static constexpr std::array<std::uint64_t, 2> kSends{1, 2};
  static constexpr std::array<std::uint64_t, 2> kReceives{2, 1};
  static constexpr std::size_t kRetries = 1;
};

struct long_run {
  static constexpr std::uint64_t kCapacity = 2;
  static constexpr std::uint64_t kEvents = 8;
  static constexpr std::array<std::uint64_t, 2> kSends{1, 2};
  static constexpr std::array<std::uint64_t, 2> kReceives{2, 1};
  static constexpr std::size_t kRetries = 12;
};

// Two batch receives of 2 free a lap's 4 slots, and a batch send of 4 takes them: the send's last slot is
// marked by the second receive, which the descending_marks variant marks before the slot ahead of it.
struct lap_of_batches {
  static constexpr std::uint64_t kCapacity = 4;
  static constexpr std::uint64_t kEvents = 8;
  static constexpr std::array<std::uint64_t, 2> kSends{4, 4};
  static constexpr std::array<std::uint64_t, 2> kReceives{2, 2};
  static constexpr std::size_t kRetries = 8;  // the second batch send must land between two marks
};

// Thread 0 is the producer, thread 1 the consumer.
template <ring_kind Kind, class Shape>
struct ring : rl::test_suite<ring<Kind, Shape>, 2> {
  static constexpr std::uint64_t kCapacity = Shape::kCapacity;
  static constexpr std::uint64_t kEvents = Shape::kEvents;

  struct slot {
    rl::atomic<std::uint64_t> seq;
    rl::var<std::uint64_t> seq_bytes;  // the same word as plain memory (a batch's vector stores)
    rl::var<std::uint64_t> a;
    rl::var<std::uint64_t> b;
  };
  slot slots[kCapacity];
  std::uint64_t sent = 0;      // thread 0's tail at the end
  std::uint64_t received = 0;  // thread 1's head at the end

  slot& at(std::uint64_t position) { return slots[position % kCapacity]; }

  void before() {
    for (slot& s : slots) {
      s.seq(RL_INFO).store(kFree, rl::mo_relaxed);
      s.seq_bytes(RL_INFO) = kFree;
      s.a(RL_INFO) = 0;
      s.b(RL_INFO) = 0;
    }
  }

  void thread(unsigned index) {
    if (index == 0) {
      produce();
    } else {
      consume();
    }
  }

  // ---- producer ----

  void produce() {
    std::uint64_t tail = 0;
    std::size_t op = 0;
    std::size_t refused = 0;
    while (tail < kEvents) {
      const std::uint64_t size = Shape::kSends[op];
      const std::uint64_t n =
          size == 1 ? try_send(tail) : try_send_batch(tail, std::min(size, kEvents - tail));
      if (n == 0) {
        if (refused++ == Shape::kRetries) break;
        continue;  // full: the same operation again
      }
      tail += n;
      op = (op + 1) % Shape::kSends.size();
    }
    sent = tail;
  }

  // fill(): the event's bytes but its sequence word.
  void fill(slot& s, std::uint64_t position) {
    s.a(RL_INFO) = payload_a(position);
    s.b(RL_INFO) = payload_b(position);
  }

  bool is_free(std::uint64_t position) {
    constexpr rl::memory_order check =
        Kind == ring_kind::relaxed_room_check ? rl::mo_relaxed : rl::mo_acquire;
    return at(position).seq(RL_INFO).load(check) == kFree;  // [S2]
  }

  std::uint64_t try_send(std::uint64_t position) {
    slot& s = at(position);
    if (!is_free(position)) return 0;
    fill(s, position);
    s.seq(RL_INFO).store(position, rl::mo_release);  // [S1]
    return 1;
  }

  // free_slots(): up to the furthest slot read free, searching the last wanted, then halves in between.
  std::uint64_t free_slots(std::uint64_t tail, std::uint64_t wanted) {
    if (!is_free(tail)) return 0;
    if (Kind == ring_kind::first_slot_vouches || is_free(tail + wanted - 1)) return wanted;
    std::uint64_t known_free = 1, known_not_free = wanted;
    while (known_not_free - known_free > 1) {
      const std::uint64_t middle = known_free + (known_not_free - known_free) / 2;
      (is_free(tail + middle - 1) ? known_free : known_not_free) = middle;
    }
    return known_free;
  }

  std::uint64_t try_send_batch(std::uint64_t tail, std::uint64_t wanted) {
    const std::uint64_t room = free_slots(tail, wanted);
    if (room == 0) return 0;
    for (std::uint64_t i = 1; i < room; ++i) {  // [S1'] write_unpolled_slots: no one polls these yet
      slot& s = at(tail + i);
      fill(s, tail + i);
      s.seq_bytes(RL_INFO) = tail + i;
      s.seq(RL_INFO).store(tail + i, rl::mo_relaxed);
    }
    slot& first = at(tail);
    fill(first, tail);
    first.seq(RL_INFO).store(tail, rl::mo_release);  // [S1]: publishes the whole batch
    return room;
  }

  // ---- consumer ----

  void consume() {
    std::uint64_t head = 0;
    std::size_t op = 0;
    std::size_t refused = 0;
    while (head < kEvents) {
      const std::uint64_t size = Shape::kReceives[op];
      const std::uint64_t n =
          size == 1 ? try_receive(head) : try_receive_batch(head, std::min(size, kEvents - head));
      if (n == 0) {
        if (refused++ == Shape::kRetries) break;
        continue;  // empty: the same operation again
      }
      head += n;
      op = (op + 1) % Shape::kReceives.size();
    }
    received = head;
  }

  bool published(std::uint64_t position) {
    slot& s = at(position);
    (void)s.seq_bytes(RL_INFO).load();                       // the poll reads the word's bytes
    return s.seq(RL_INFO).load(rl::mo_acquire) == position;  // [S4]
  }

  static bool payload_intact(std::uint64_t a, std::uint64_t b, std::uint64_t position) {
    return a == payload_a(position) && b == payload_b(position);
  }
  // copy_out() / the handler's read.
  void take(std::uint64_t position) {
    slot& s = at(position);
    const std::uint64_t a = s.a(RL_INFO);
    const std::uint64_t b = s.b(RL_INFO);
    RL_ASSERT(payload_intact(a, b, position));
  }

  void mark_free(std::uint64_t position) {
    slot& s = at(position);
    s.seq_bytes(RL_INFO) = kFree;
    s.seq(RL_INFO).store(kFree, Kind == ring_kind::relaxed_mark ? rl::mo_relaxed : rl::mo_release);  // [S6]
  }

  // pop_one() / pop(): in ascending order, so a later slot's mark vouches for the earlier ones.
  void pop(std::uint64_t head, std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i) {
      mark_free(Kind == ring_kind::descending_marks ? head + count - 1 - i : head + i);
    }
  }

  std::uint64_t try_receive(std::uint64_t head) {
    if (!published(head)) return 0;
    take(head);
    pop(head, 1);
    return 1;
  }

  // available(), copy_out(), pop(); try_drain() reads in its handler instead of copying, the same accesses.
  std::uint64_t try_receive_batch(std::uint64_t head, std::uint64_t limit) {
    std::uint64_t n = 0;
    while (n < limit && published(head + n)) ++n;
    if (n == 0) return 0;
    for (std::uint64_t i = 0; i < n; ++i) take(head + i);
    pop(head, n);
    return n;
  }

  // ---- the end ----

  static bool slot_is_free(std::uint64_t seq) { return seq == kFree; }
  static bool slot_holds(std::uint64_t seq, std::uint64_t position) { return seq == position; }

  void after() {
    RL_ASSERT(received <= sent && sent - received <= kCapacity);
    for (std::uint64_t i = 0; i < kCapacity; ++i) {
      const std::uint64_t seq = slots[i].seq(RL_INFO).load(rl::mo_relaxed);
      if (i >= sent) {
        RL_ASSERT(slot_is_free(seq));  // never written
        continue;
      }
      const std::uint64_t last = sent - 1 - (sent - 1 - i) % kCapacity;  // the slot's latest position
      if (last < received) {
        RL_ASSERT(slot_is_free(seq));
      } else {
        RL_ASSERT(slot_holds(seq, last));  // sent, not yet received: still there, whole
        take(last);
      }
    }
  }
};

TEST(SpscRelacy, MixedSendsAndReceivesDeliverEveryEventOnceInOrder) {
  expect_holds<ring<ring_kind::code, mixed> >();
}

TEST(SpscRelacy, BatchFirstSendsAndSingleFirstReceivesDeliverEveryEventOnceInOrder) {
  expect_holds<ring<ring_kind::code, batch_first> >();
}

TEST(SpscRelacy, WideBatchesOnFourSlotsDeliverEveryEventOnceInOrder) {
  expect_holds<ring<ring_kind::code, wide> >();
}

TEST(SpscRelacy, RetriesAfterFullAndEmptyDeliverEveryEventOnceInOrder) {
  expect_holds<ring<ring_kind::code, retries> >();
}

TEST(SpscRelacy, ALapOfBatchesDeliversEveryEventOnceInOrderUnderRandomSearch) {
  expect_holds<ring<ring_kind::code, lap_of_batches> >(rl::sched_random, 1000000);
}

TEST(SpscRelacy, LongRunDeliversEveryEventOnceInOrderUnderRandomSearch) {
  expect_holds<ring<ring_kind::code, long_run> >(rl::sched_random, 1000000);
}

TEST(SpscRelacy, WithARelaxedFreeMarkASingleSendRacesTheConsumersCopy) {
  expect_violation<ring<ring_kind::relaxed_mark, mixed> >(rl::test_result_data_race,
                                                          "DATA RACE (data race detected), in fill");
}

TEST(SpscRelacy, WithMarksInDescendingOrderABatchSendRacesAMarkStillToCome) {
  expect_violation<ring<ring_kind::descending_marks, lap_of_batches> >(
      rl::test_result_data_race, "DATA RACE (data race detected), in try_send_batch", rl::sched_random,
      1000000);
}

TEST(SpscRelacy, WhenTheFirstSlotVouchesForTheBatchItOverwritesEventsNotYetReceived) {
  expect_violation<ring<ring_kind::first_slot_vouches, mixed> >(
      rl::test_result_data_race, "DATA RACE (data race detected), in published");
}

TEST(SpscRelacy, WithARelaxedRoomCheckASingleSendRacesTheConsumersCopy) {
  expect_violation<ring<ring_kind::relaxed_room_check, mixed> >(rl::test_result_data_race,
                                                                "DATA RACE (data race detected), in fill");
}

}  // namespace

#endif
