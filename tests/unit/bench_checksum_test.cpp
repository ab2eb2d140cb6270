// rill-bench's checksum of a rill event (tools/bench/workload.hpp) must cover every byte of the text: the
// one-way, fanout and round-trip rows verify rill's payloads with it, so a byte it skipped could arrive
// torn unnoticed.
#include <gtest/gtest.h>

#include <cstddef>
#include <string>

#include "workload.hpp"

namespace {

using rill_bench::checksum_of;

TEST(BenchChecksum, EveryTextByteAndTheLengthChangeIt) {
  for (std::size_t n = 0; n <= rill::event::kInlineTextCapacity + 24; ++n) {  // inline and borrowed text
    std::string text(n, 'a');
    for (std::size_t i = 0; i < n; ++i) text[i] = static_cast<char>('a' + i % 26);
    const std::uint64_t base = checksum_of(rill::event::text_delta(7, text));
    for (std::size_t i = 0; i < n; ++i) {
      std::string changed = text;
      changed[i] = static_cast<char>(changed[i] ^ 0x20);
      EXPECT_NE(checksum_of(rill::event::text_delta(7, changed)), base) << "length " << n << ", byte " << i;
    }
    EXPECT_NE(checksum_of(rill::event::text_delta(7, text + "b")), base) << "length " << n;
    EXPECT_NE(checksum_of(rill::event::text_delta(8, text)), base) << "length " << n;
  }
}

TEST(BenchChecksum, SwappedBytesChangeIt) {
  const std::string text = "responses arrive one delta at a time";
  const std::uint64_t base = checksum_of(rill::event::text_delta(0, text));
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] == text[i + 1]) continue;
    std::string swapped = text;
    std::swap(swapped[i], swapped[i + 1]);
    EXPECT_NE(checksum_of(rill::event::text_delta(0, swapped)), base) << "bytes " << i << " and " << i + 1;
  }
}

TEST(BenchChecksum, EveryPoolEventDiffersFromItsNeighbour) {
  const auto& pool = rill_bench::rill_pool();
  for (std::size_t i = 0; i + 1 < pool.size(); ++i) EXPECT_NE(checksum_of(pool[i]), checksum_of(pool[i + 1]));
}

}  // namespace
