// rill/detail/assert.hpp: debug-build contract checks. Installed, not for users.
//
// RILL_ASSERT(cond, reason) aborts with the reason in debug builds (no NDEBUG) and compiles to nothing
// otherwise. Used for misuse that is a programming error, such as releasing an arena record twice or
// reading the wrong payload of an event.
#pragma once

#if !defined(NDEBUG) || defined(RILL_ENABLE_ASSERTS)
#define RILL_ASSERTS_ENABLED 1
#include <cstdio>
#include <cstdlib>
#define RILL_ASSERT(cond, reason)                                                                        \
  do {                                                                                                   \
    if (!(cond)) [[unlikely]] {                                                                          \
      std::fprintf(stderr, "rill: assertion failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, (reason),  \
                   #cond);                                                                               \
      std::abort();                                                                                      \
    }                                                                                                    \
  } while (0)
#else
#define RILL_ASSERTS_ENABLED 0
#define RILL_ASSERT(cond, reason) \
  do {                            \
  } while (0)
#endif
