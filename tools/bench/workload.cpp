#include "workload.hpp"

#include <array>
#include <cstdlib>
#include <cstring>

namespace rill_bench {

std::string_view token_text(std::size_t i) noexcept {
  static constexpr std::array<std::string_view, 16> kTokens = {
      "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".",
      "\n\n", " streaming", " tokens", ",", " responses arrive", " one delta at a time"};
  return kTokens[i % kTokens.size()];
}

const std::vector<rill::event>& rill_pool() {
  static const std::vector<rill::event> pool = [] {
    std::vector<rill::event> v;
    v.reserve(kPoolSize);
    for (std::size_t i = 0; i < kPoolSize; ++i) {
      v.push_back(rill::event::text_delta(static_cast<std::uint16_t>(i), token_text(i)));
      // checksum_of hashes the event's own words: text outside them would go unchecked.
      if (!v.back().text_is_inline()) std::abort();
    }
    return v;
  }();
  return pool;
}

const std::vector<bench_item>& item_pool() {
  static const std::vector<bench_item> pool = [] {
    std::vector<bench_item> v(kPoolSize);
    std::uint64_t x = 0x9e3779b97f4a7c15u;
    for (std::size_t i = 0; i < kPoolSize; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      v[i].seq = i;
      v[i].value = x;
      // Every word checksum_of reads holds pool-specific bytes, as a rill event's text words do.
      v[i].producer = x * 0xd6e8feb86659fd93u;
      v[i].stamp = x * 0xc4ceb9fe1a85ec53u;
      for (std::size_t w = 0; w < sizeof v[i].pad; w += 8) {
        const std::uint64_t word = x * (0xff51afd7ed558ccdu + 2 * w);
        std::memcpy(v[i].pad + w, &word, sizeof word);
      }
    }
    return v;
  }();
  return pool;
}

}  // namespace rill_bench
