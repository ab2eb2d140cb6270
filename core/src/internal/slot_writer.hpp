// internal/slot_writer.hpp: the SPSC batch send's slot writes (private).
//
// try_send_batch publishes a batch through the sequence word of its first slot, stored last (release). A
// consumer reads a later slot of the batch only after it has acquired that word, so the later slots need no
// store of their own for their sequence word: each is written whole, header, sequence number, stamp and
// text, in full-width vector stores and never touched again ([S1'] plain stores, ordered for the consumer
// by the first slot's [S1]; docs/memory_model.md). Fewer stores per line let the core keep more
// lines' ownership requests in flight (docs/benchmarking.md, "Batches: whole-slot writes").
#pragma once

#include <cstddef>
#include <cstdint>

#include "rill/clock.hpp"
#include "rill/detail/spsc_channel.hpp"
#include "rill/event.hpp"

namespace rill::detail {

// What a batch send changes in each slot it writes whole: word 0 (which holds the flags byte) and word 2
// (the timestamp) become (word & keep) | set; word 1 becomes the slot's sequence number.
struct slot_stamp {
  std::uint64_t keep_word0 = ~std::uint64_t{0};
  std::uint64_t set_word0 = 0;
  std::uint64_t keep_timestamp = ~std::uint64_t{0};
  std::uint64_t timestamp = 0;

  // No stamping leaves words 0 and 2 as the producer built them; a clock writes its kind into the flags
  // and `now` into the timestamp, as event::set_timestamp does.
  slot_stamp(clock_kind stamping, std::uint64_t now) noexcept;
};

// Writes the leading run of `events` (at most `count`) whose events validate trivially (a known kind without
// required fields, inline text: event::validates_trivially) into the ring slots of positions `position`,
// `position` + 1, ... (slot = ring.at(p)), each slot whole: its bytes, its sequence number and `stamp`.
// Returns the run's length. The sequence words are plain stores: only for slots no consumer reads before it
// has acquired an earlier slot's sequence word, stored (release) afterwards. The ring is 64-byte aligned.
// Picks the widest stores the CPU has (AVX2: two a slot; otherwise four).
std::size_t write_unpolled_slots(const slot_ring& ring, std::uint64_t position, const event* events,
                                 std::size_t count, const slot_stamp& stamp) noexcept;

// The versions write_unpolled_slots chooses from, for tests: the portable one (16-byte SSE2 stores on
// x86-64, word copies elsewhere) and, on x86-64 where the CPU has AVX2 (cpu_has_avx2), the 32-byte one.
std::size_t write_unpolled_slots_portable(const slot_ring& ring, std::uint64_t position, const event* events,
                                          std::size_t count, const slot_stamp& stamp) noexcept;
#if defined(__x86_64__)
std::size_t write_unpolled_slots_avx2(const slot_ring& ring, std::uint64_t position, const event* events,
                                      std::size_t count, const slot_stamp& stamp) noexcept;
#endif
bool cpu_has_avx2() noexcept;

}  // namespace rill::detail
