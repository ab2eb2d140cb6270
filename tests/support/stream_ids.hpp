// Test support: stream ids for manager tests that create many streams.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rill::test {

// `prefix` followed by `n` in decimal ("s-" and 42 give "s-42").
inline std::string numbered(std::string_view prefix, std::uint64_t n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

}  // namespace rill::test
