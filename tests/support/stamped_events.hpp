// Test support: events stamped with known times, for metrics tests that compute TTFT, durations and rates.
#pragma once

#include <cstdint>
#include <vector>

#include "rill/event.hpp"

namespace rill::test {

inline constexpr std::uint64_t kMs = 1'000'000;  // nanoseconds

// `e` stamped with steady_clock nanoseconds `ns`, the clock a precise producer uses.
inline event at(const event& e, std::uint64_t ns) {
  event stamped = e;
  stamped.set_timestamp(clock_kind::steady, ns);
  return stamped;
}

inline usage_counts usage(std::uint32_t in, std::uint32_t out, std::uint32_t cache_read = 0) {
  usage_counts u;
  u.input_tokens = in;
  u.output_tokens = out;
  u.cache_read_tokens = cache_read;
  return u;
}

// A small Anthropic-like stream: start at 1 s, message at +1 ms, first token 250 ms later, 50 output tokens
// over the last second (TTFT 250 ms, duration 1251 ms, 2 chunks).
inline std::vector<event> small_stream() {
  const std::uint64_t t0 = 1000 * kMs;
  return {at(event::stream_start("anthropic", "claude-x"), t0),
          at(event::message_start("msg_1", "claude-x"), t0 + 1 * kMs),
          at(event::text_delta(0, "Hel"), t0 + 251 * kMs),
          at(event::usage(usage(100, 10)), t0 + 300 * kMs),
          at(event::text_delta(0, "lo"), t0 + 451 * kMs),
          at(event::usage(usage(100, 50)), t0 + 1251 * kMs),
          at(event::message_stop(stop_reason::end_turn), t0 + 1251 * kMs)};
}

}  // namespace rill::test
