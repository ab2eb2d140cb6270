#include "internal/slot_writer.hpp"

#include <bit>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace rill::detail {

static_assert(std::endian::native == std::endian::little, "the flags byte is found by its shift in word 0");
static_assert(event::kFlagsOffset < 8 && event::kSeqOffset == 8 && event::kTimestampOffset == 16,
              "slot_stamp's words: 0 holds the flags, 1 the sequence number, 2 the timestamp");

slot_stamp::slot_stamp(clock_kind stamping, std::uint64_t now) noexcept {
  if (stamping == clock_kind::none) return;
  constexpr unsigned kFlagsShift = 8 * event::kFlagsOffset;
  keep_word0 = ~(std::uint64_t{event::kClockMask} << kFlagsShift);
  set_word0 = std::uint64_t{static_cast<std::uint8_t>(stamping)} << (event::kClockShift + kFlagsShift);
  keep_timestamp = 0;
  timestamp = now;
}

#if defined(__x86_64__)

std::size_t write_unpolled_slots_portable(const slot_ring& ring, std::uint64_t position, const event* events,
                                          std::size_t count, const slot_stamp& stamp) noexcept {
  static_assert(sizeof(event) == 4 * sizeof(__m128i));
  // Words 0 (flags) and 1 (sequence number) in the first quarter, 2 (timestamp) in the second.
  const __m128i keep_first = _mm_set_epi64x(0, static_cast<long long>(stamp.keep_word0));
  const __m128i keep_second = _mm_set_epi64x(-1, static_cast<long long>(stamp.keep_timestamp));
  __m128i set_first =
      _mm_set_epi64x(static_cast<long long>(position), static_cast<long long>(stamp.set_word0));
  const __m128i set_second = _mm_set_epi64x(0, static_cast<long long>(stamp.timestamp));
  const __m128i next = _mm_set_epi64x(1, 0);
  std::size_t n = 0;
  for (; n < count && events[n].validates_trivially(); ++n) {
    const auto* from = reinterpret_cast<const __m128i*>(&events[n]);
    auto* to = reinterpret_cast<__m128i*>(ring.at(position + n));
    const __m128i first = _mm_or_si128(_mm_and_si128(_mm_loadu_si128(from), keep_first), set_first);
    const __m128i second = _mm_or_si128(_mm_and_si128(_mm_loadu_si128(from + 1), keep_second), set_second);
    const __m128i third = _mm_loadu_si128(from + 2);
    const __m128i fourth = _mm_loadu_si128(from + 3);
    _mm_store_si128(to, first);
    _mm_store_si128(to + 1, second);
    _mm_store_si128(to + 2, third);
    _mm_store_si128(to + 3, fourth);
    set_first = _mm_add_epi64(set_first, next);
  }
  return n;
}

__attribute__((target("avx2"))) std::size_t write_unpolled_slots_avx2(const slot_ring& ring,
                                                                      std::uint64_t position,
                                                                      const event* events, std::size_t count,
                                                                      const slot_stamp& stamp) noexcept {
  static_assert(sizeof(event) == 2 * sizeof(__m256i));
  // Words 0-2 (flags, sequence number, timestamp) all lie in the first half.
  const __m256i keep = _mm256_setr_epi64x(static_cast<long long>(stamp.keep_word0), 0,
                                          static_cast<long long>(stamp.keep_timestamp), -1);
  __m256i set = _mm256_setr_epi64x(static_cast<long long>(stamp.set_word0), static_cast<long long>(position),
                                   static_cast<long long>(stamp.timestamp), 0);
  const __m256i next = _mm256_setr_epi64x(0, 1, 0, 0);
  std::size_t n = 0;
  for (; n < count && events[n].validates_trivially(); ++n) {
    const auto* from = reinterpret_cast<const __m256i*>(&events[n]);
    auto* to = reinterpret_cast<__m256i*>(ring.at(position + n));
    const __m256i header = _mm256_or_si256(_mm256_and_si256(_mm256_loadu_si256(from), keep), set);
    const __m256i text = _mm256_loadu_si256(from + 1);
    _mm256_store_si256(to, header);
    _mm256_store_si256(to + 1, text);
    set = _mm256_add_epi64(set, next);
  }
  return n;
}

// Read once per batch: a load and a bit test of the features libgcc / compiler-rt detected at start-up
// (before that, it reads false and the portable version runs, which is just as correct).
bool cpu_has_avx2() noexcept {
  return __builtin_cpu_supports("avx2");
}

std::size_t write_unpolled_slots(const slot_ring& ring, std::uint64_t position, const event* events,
                                 std::size_t count, const slot_stamp& stamp) noexcept {
  if (cpu_has_avx2()) return write_unpolled_slots_avx2(ring, position, events, count, stamp);
  return write_unpolled_slots_portable(ring, position, events, count, stamp);
}

#else

std::size_t write_unpolled_slots_portable(const slot_ring& ring, std::uint64_t position, const event* events,
                                          std::size_t count, const slot_stamp& stamp) noexcept {
  std::size_t n = 0;
  for (; n < count && events[n].validates_trivially(); ++n) {
    std::uint64_t words[sizeof(event) / sizeof(std::uint64_t)];
    std::memcpy(words, &events[n], sizeof words);
    words[0] = (words[0] & stamp.keep_word0) | stamp.set_word0;
    words[1] = position + n;
    words[2] = (words[2] & stamp.keep_timestamp) | stamp.timestamp;
    std::memcpy(static_cast<void*>(ring.at(position + n)), words, sizeof words);
  }
  return n;
}

bool cpu_has_avx2() noexcept {
  return false;
}

std::size_t write_unpolled_slots(const slot_ring& ring, std::uint64_t position, const event* events,
                                 std::size_t count, const slot_stamp& stamp) noexcept {
  return write_unpolled_slots_portable(ring, position, events, count, stamp);
}

#endif

}  // namespace rill::detail
