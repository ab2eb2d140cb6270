// The SPSC batch send's whole-slot writes (internal/slot_writer.hpp), each version the library may choose.
#include "internal/slot_writer.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

using rill::clock_kind;
using rill::event;
using rill::detail::slot_stamp;

using writer = std::size_t (*)(const rill::detail::slot_ring&, std::uint64_t, const event*, std::size_t,
                               const slot_stamp&) noexcept;

struct version {
  const char* name;
  writer write;
};

std::vector<version> versions() {
  std::vector<version> v{{"portable", &rill::detail::write_unpolled_slots_portable},
                         {"dispatched", &rill::detail::write_unpolled_slots}};
#if defined(__x86_64__)
  if (rill::detail::cpu_has_avx2()) v.push_back({"avx2", &rill::detail::write_unpolled_slots_avx2});
#endif
  return v;
}

// Events with every inline text length, several kinds, and stale sequence numbers and stamps.
std::vector<event> sources() {
  std::vector<event> out;
  for (std::uint16_t i = 0; i <= event::kInlineTextCapacity; ++i) {
    event e = i % 3 == 0   ? event::text_delta(i, std::string(i, static_cast<char>('a' + i % 26)))
              : i % 3 == 1 ? event::tool_args_delta(i, std::string(event::kInlineTextCapacity - i, 'z'), 7)
                           : event::usage({i, i, i, i, i, i});
    e.set_seq(~std::uint64_t{0} - i);
    e.set_timestamp(clock_kind::steady, 5000 + i);
    out.push_back(e);
  }
  return out;
}

// What a slot must hold after the write: the source's bytes, its position, and the stamp when there is one.
event expected_slot(const event& source, std::uint64_t position, clock_kind stamping, std::uint64_t now) {
  event e = source;
  e.set_seq(position);
  if (stamping != clock_kind::none) e.set_timestamp(stamping, now);
  return e;
}

TEST(SlotWriter, WritesEachSlotWholeWithItsPositionAndStamp) {
  const std::vector<event> events = sources();
  constexpr std::uint64_t kSlots = 64;
  constexpr std::uint64_t kStart = (std::uint64_t{1} << 40) + 50;  // the run goes round the ring's end
  for (const version& v : versions()) {
    for (const unsigned spacing_log2 : {0u, 1u}) {  // packed and padded rings
      for (const clock_kind stamping :
           {clock_kind::none, clock_kind::coarse, clock_kind::tsc, clock_kind::steady}) {
        SCOPED_TRACE(std::string(v.name) + " spacing " + std::to_string(spacing_log2) + " stamping " +
                     std::to_string(static_cast<int>(stamping)));
        std::vector<event> memory(2 * kSlots);  // a packed ring uses the first half: the rest stays untouched
        std::memset(static_cast<void*>(memory.data()), 0xa5, memory.size() * sizeof(event));
        const event untouched = memory[0];
        const rill::detail::slot_ring ring(memory.data(), kSlots, spacing_log2);
        const std::uint64_t now = 0x0123456789abcdefULL;
        const slot_stamp stamp(stamping, now);
        ASSERT_EQ(v.write(ring, kStart, events.data(), events.size(), stamp), events.size());
        for (std::uint64_t i = 0; i < memory.size(); ++i) {
          // Memory event i is slot p = i >> spacing_log2, or padding (never written) between slots.
          const std::uint64_t p = i >> spacing_log2;
          const std::uint64_t k = (p - (kStart & (kSlots - 1))) & (kSlots - 1);  // which event, if any
          const bool slot = (i & ((std::uint64_t{1} << spacing_log2) - 1)) == 0 && p < kSlots;
          const event want =
              slot && k < events.size() ? expected_slot(events[k], kStart + k, stamping, now) : untouched;
          EXPECT_EQ(std::memcmp(&memory[i], &want, sizeof(event)), 0) << "memory event " << i;
        }
      }
    }
  }
}

// The run ends before the first event that needs more than a copy: a long (borrowed) text, an unknown or
// empty kind, or a kind with required fields. Nothing from that event on is written.
TEST(SlotWriter, StopsAtTheFirstEventThatNeedsMoreThanACopy) {
  const std::string long_text(200, 'x');
  event unknown = event::keep_alive();
  std::memset(static_cast<void*>(&unknown), 0xff, 1);  // kind byte 255
  const event stoppers[] = {event::text_delta(0, long_text), event(), unknown};
  for (const version& v : versions()) {
    for (const event& stopper : stoppers) {
      SCOPED_TRACE(v.name);
      ASSERT_FALSE(stopper.validates_trivially());
      const event run[] = {event::text_delta(1, "a"), event::keep_alive(), stopper,
                           event::text_delta(2, "b")};
      std::vector<event> ring(8);
      std::memset(static_cast<void*>(ring.data()), 0x3c, ring.size() * sizeof(event));
      const event untouched = ring[0];
      const rill::detail::slot_ring geometry(ring.data(), 8, 0);
      EXPECT_EQ(v.write(geometry, 6, run, 4, slot_stamp(clock_kind::none, 0)), 2u);
      const event first = expected_slot(run[0], 6, clock_kind::none, 0);
      const event second = expected_slot(run[1], 7, clock_kind::none, 0);
      EXPECT_EQ(std::memcmp(&ring[6], &first, sizeof(event)), 0);
      EXPECT_EQ(std::memcmp(&ring[7], &second, sizeof(event)), 0);
      for (std::size_t p = 0; p < 6; ++p) EXPECT_EQ(std::memcmp(&ring[p], &untouched, sizeof(event)), 0) << p;
      EXPECT_EQ(v.write(geometry, 0, run + 2, 2, slot_stamp(clock_kind::none, 0)), 0u);
      EXPECT_EQ(std::memcmp(&ring[0], &untouched, sizeof(event)), 0);
    }
  }
}

TEST(SlotWriter, WritesNothingForAnEmptyRun) {
  for (const version& v : versions()) {
    std::vector<event> ring(4);
    std::memset(static_cast<void*>(ring.data()), 0x11, ring.size() * sizeof(event));
    const event untouched = ring[0];
    const event e = event::keep_alive();
    EXPECT_EQ(
        v.write(rill::detail::slot_ring(ring.data(), 4, 0), 0, &e, 0, slot_stamp(clock_kind::coarse, 9)), 0u)
        << v.name;
    for (const event& slot : ring) EXPECT_EQ(std::memcmp(&slot, &untouched, sizeof(event)), 0) << v.name;
  }
}

}  // namespace
