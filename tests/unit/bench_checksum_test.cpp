// rill-bench's element checksum (tools/bench/workload.hpp) verifies every implementation's payloads at the
// same cost. For a rill event it must cover every byte of its inline text and of its header but the sequence
// number, timestamp and clock bits (which the stream writes); for a peer element every byte but its position
// and its last word (which ring_floor does not carry). The expected sum of a run comes from the pool, not
// from the sender.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "workload.hpp"

namespace {

using rill_bench::bench_item;
using rill_bench::checksum_of;

TEST(BenchChecksum, EveryInlineTextByteTheLengthAndTheIndexChangeIt) {
  for (std::size_t n = 0; n <= rill::event::kInlineTextCapacity; ++n) {
    std::string text(n, 'a');
    for (std::size_t i = 0; i < n; ++i) text[i] = static_cast<char>('a' + i % 26);
    const std::uint64_t base = checksum_of(rill::event::text_delta(7, text));
    for (std::size_t i = 0; i < n; ++i) {
      std::string changed = text;
      changed[i] = static_cast<char>(changed[i] ^ 0x20);
      EXPECT_NE(checksum_of(rill::event::text_delta(7, changed)), base) << "length " << n << ", byte " << i;
    }
    if (n < rill::event::kInlineTextCapacity) {
      EXPECT_NE(checksum_of(rill::event::text_delta(7, text + "b")), base) << "length " << n;
    }
    EXPECT_NE(checksum_of(rill::event::text_delta(8, text)), base) << "length " << n;
    EXPECT_NE(checksum_of(rill::event::thinking_delta(7, text)), base) << "length " << n;
  }
}

TEST(BenchChecksum, SwappedBytesChangeIt) {
  const std::string text = "one delta at a time, in order";
  ASSERT_LE(text.size(), rill::event::kInlineTextCapacity);
  const std::uint64_t base = checksum_of(rill::event::text_delta(0, text));
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] == text[i + 1]) continue;
    std::string swapped = text;
    std::swap(swapped[i], swapped[i + 1]);
    EXPECT_NE(checksum_of(rill::event::text_delta(0, swapped)), base) << "bytes " << i << " and " << i + 1;
  }
}

TEST(BenchChecksum, WhatTheStreamWritesDoesNotChangeIt) {
  const rill::event original = rill::event::text_delta(3, "token");
  rill::event sent = original;
  sent.set_seq(12345);
  sent.set_timestamp(rill::clock_kind::coarse, 987654321);
  EXPECT_EQ(checksum_of(sent), checksum_of(original));
}

TEST(BenchChecksum, EveryPeerByteButItsPositionAndLastWordChangesIt) {
  const bench_item base_item = rill_bench::item_pool()[5];
  const std::uint64_t base = checksum_of(base_item);
  for (std::size_t byte = 0; byte < sizeof(bench_item); ++byte) {
    bench_item changed = base_item;
    unsigned char b;
    std::memcpy(&b, reinterpret_cast<const unsigned char*>(&changed) + byte, 1);
    b ^= 0x40;
    std::memcpy(reinterpret_cast<unsigned char*>(&changed) + byte, &b, 1);
    const bool position_or_last_word = byte < 8 || byte >= 56;
    if (position_or_last_word) {
      EXPECT_EQ(checksum_of(changed), base) << "byte " << byte;
    } else {
      EXPECT_NE(checksum_of(changed), base) << "byte " << byte;
    }
  }
}

TEST(BenchChecksum, EveryPoolElementDiffersFromItsNeighbour) {
  const auto& events = rill_bench::rill_pool();
  for (std::size_t i = 0; i + 1 < events.size(); ++i)
    EXPECT_NE(checksum_of(events[i]), checksum_of(events[i + 1]));
  const auto& items = rill_bench::item_pool();
  for (std::size_t i = 0; i + 1 < items.size(); ++i)
    EXPECT_NE(checksum_of(items[i]), checksum_of(items[i + 1]));
}

template <class Element>
void expect_pool_sums(const std::vector<Element>& pool) {
  std::uint64_t sum = 0;
  for (std::uint64_t n = 0; n <= 3 * rill_bench::kPoolSize + 7; ++n) {
    ASSERT_EQ(rill_bench::pool_checksum_sum(pool, n), sum) << n;
    sum += checksum_of(pool[n & rill_bench::kPoolMask]);
  }
}

TEST(BenchChecksum, PoolSumsMatchTheReceiversSumForAnyCount) {
  expect_pool_sums(rill_bench::rill_pool());
  expect_pool_sums(rill_bench::item_pool());
}

}  // namespace
