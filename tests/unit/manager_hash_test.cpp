// The manager's id hash (detail::hash_id): every byte, the length and the key change it, and it spreads
// gateway-shaped ids evenly over the bits the manager uses (bits 40 and up pick the shard, the low bits
// the slot). The keys are fixed, so every check here is deterministic.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "rill/manager.hpp"

namespace {

using rill::detail::hash_id;

constexpr std::array<std::uint64_t, 3> kKeys = {1, 0x0123456789abcdefull, 0xfedcba9876543210ull};

std::string uuid_id(std::size_t i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "sess-%08zx-0000-4000-8000-%012zx", i, i * 2654435761u);
  return buf;
}

std::string request_id(std::size_t i) {
  return "req_" + std::to_string(i) + "_gateway";
}

TEST(IdHash, TheSameIdAndKeyGiveTheSameHash) {
  for (const std::uint64_t key : kKeys) {
    for (std::size_t i = 0; i < 100; ++i) {
      const std::string id = uuid_id(i);
      const std::string copy = id;
      EXPECT_EQ(hash_id(id, key), hash_id(copy, key));
    }
  }
}

TEST(IdHash, EveryByteAndTheLengthChangeTheHash) {
  for (const std::uint64_t key : kKeys) {
    for (std::size_t length = 1; length <= rill::stream_manager::kMaxIdBytes; ++length) {
      std::string id(length, '\0');
      for (std::size_t k = 0; k < length; ++k) id[k] = static_cast<char>('a' + k % 26);
      const std::uint64_t base = hash_id(id, key);
      for (std::size_t k = 0; k < length; ++k) {
        std::string changed = id;
        changed[k] = static_cast<char>(changed[k] ^ 0x01);
        ASSERT_NE(hash_id(changed, key), base) << "length " << length << ", byte " << k;
      }
      // One byte more or fewer, of any value, is another id.
      ASSERT_NE(hash_id(id + '\0', key), base) << "length " << length;
      ASSERT_NE(hash_id(std::string(length, '\0'), key), hash_id(std::string(length + 1, '\0'), key));
    }
  }
}

TEST(IdHash, AnotherKeyGivesAnotherHashForEveryId) {
  std::size_t same = 0;
  for (std::size_t i = 0; i < 10000; ++i) {
    const std::string id = request_id(i);
    if (hash_id(id, kKeys[1]) == hash_id(id, kKeys[2])) ++same;
  }
  EXPECT_EQ(same, 0u);
}

// Chi-square of `ids` hashed into 4096 buckets taken from the bits at `shift`, and the fullest bucket.
struct spread {
  double chi_square = 0;
  std::size_t fullest = 0;
};

template <class MakeId>
spread spread_of(MakeId make_id, std::size_t ids, std::uint64_t key, unsigned shift) {
  constexpr std::size_t kBuckets = 4096;
  std::vector<std::size_t> counts(kBuckets, 0);
  for (std::size_t i = 0; i < ids; ++i) ++counts[(hash_id(make_id(i), key) >> shift) & (kBuckets - 1)];
  const double expected = static_cast<double>(ids) / kBuckets;
  spread s;
  for (const std::size_t c : counts) {
    const double d = static_cast<double>(c) - expected;
    s.chi_square += d * d / expected;
    s.fullest = std::max(s.fullest, c);
  }
  return s;
}

TEST(IdHash, SpreadsGatewayIdsEvenlyOverShardsAndSlots) {
  // 65536 ids in 4096 buckets: 16 expected in each. A uniform hash gives a chi-square near 4095 (standard
  // deviation 90) and a fullest bucket near 32; the bounds are six standard deviations out.
  constexpr std::size_t kIds = 65536;
  for (const std::uint64_t key : kKeys) {
    for (const unsigned shift : {0u, 40u}) {  // the slot bits and the shard bits
      const spread uuids = spread_of(uuid_id, kIds, key, shift);
      const spread requests = spread_of(request_id, kIds, key, shift);
      EXPECT_LT(uuids.chi_square, 4640.0) << "key " << key << ", shift " << shift;
      EXPECT_LT(requests.chi_square, 4640.0) << "key " << key << ", shift " << shift;
      EXPECT_LE(uuids.fullest, 48u) << "key " << key << ", shift " << shift;
      EXPECT_LE(requests.fullest, 48u) << "key " << key << ", shift " << shift;
    }
  }
}

TEST(IdHash, FlippingOneInputBitFlipsHalfTheOutputBits) {
  // Over 2000 ids x 8 bit positions per id: each output bit flips in 40-60% of the samples (a uniform
  // hash: 50%, standard deviation 0.4%), and 32 bits flip on average.
  std::array<std::size_t, 64> flips{};
  std::size_t samples = 0, total = 0;
  for (std::size_t i = 0; i < 2000; ++i) {
    const std::string id = uuid_id(i);
    const std::uint64_t base = hash_id(id, kKeys[1]);
    for (std::size_t bit = i % 7; bit < id.size() * 8; bit += id.size()) {
      std::string changed = id;
      changed[bit / 8] = static_cast<char>(changed[bit / 8] ^ (1 << (bit % 8)));
      const std::uint64_t diff = base ^ hash_id(changed, kKeys[1]);
      for (std::size_t b = 0; b < 64; ++b) flips[b] += (diff >> b) & 1u;
      total += static_cast<std::size_t>(std::popcount(diff));
      ++samples;
    }
  }
  ASSERT_GT(samples, 10000u);
  for (std::size_t b = 0; b < 64; ++b) {
    const double rate = static_cast<double>(flips[b]) / static_cast<double>(samples);
    EXPECT_GT(rate, 0.4) << "output bit " << b;
    EXPECT_LT(rate, 0.6) << "output bit " << b;
  }
  const double mean = static_cast<double>(total) / static_cast<double>(samples);
  EXPECT_GT(mean, 31.0);
  EXPECT_LT(mean, 33.0);
}

TEST(IdHash, AManagerWithAFixedKeyFindsEveryStream) {
  rill::manager_options o;
  o.shards = 64;
  o.stream_defaults.capacity = 8;
  o.stream_defaults.arena_bytes = 0;
  o.hash_seed = kKeys[2];
  rill::stream_manager m(o);
  rill::stream_ref r;
  std::set<std::string> ids;
  for (std::size_t i = 0; i < 5000; ++i) {
    // Long ids that share all but a few bytes, as generated ids do.
    std::string id(200, 'x');
    id += request_id(i);
    ASSERT_EQ(m.create(id, r), rill::status::ok) << id;
    ids.insert(id);
  }
  for (const std::string& id : ids) {
    ASSERT_EQ(m.get(id, r), rill::status::ok) << id;
    EXPECT_EQ(r.id(), id);
  }
  EXPECT_EQ(m.get(std::string(200, 'x') + request_id(5000), r), rill::status::not_found);
}

}  // namespace
