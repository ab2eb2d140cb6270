// rill/detail/layout.hpp: cache-line constants shared by rill's ring buffers. Installed, not for users.
#pragma once

#include <cstddef>

namespace rill::detail {

// Distance that keeps two independently written fields from sharing a cache line, including the x86
// adjacent-line prefetcher's pairing of lines. Owned here rather than taken from
// std::hardware_destructive_interference_size, whose value may change between compilers (an ABI hazard).
inline constexpr std::size_t kFalseSharingRange = 128;
inline constexpr std::size_t kCacheLine = 64;

inline constexpr std::size_t round_up_pow2(std::size_t v) noexcept {
  std::size_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

inline constexpr std::size_t align_up(std::size_t v, std::size_t a) noexcept { return (v + a - 1) & ~(a - 1); }

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace rill::detail
