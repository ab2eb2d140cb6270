// The hot paths do not allocate: this executable replaces the global operator new / delete with counting
// versions and checks that none runs inside the window of each hot path (after the one-time set-up each
// path documents: a stream's ring on its first send, a subscriber's text buffer at subscribe).
//
// Sanitizer builds skip it: their runtimes supply operator new and delete themselves (and check that the
// two match), so replacing them there would test the replacement rather than rill.
#include <gtest/gtest.h>

#if defined(RILL_SANITIZER_BUILD)

TEST(HotPathAllocation, SkippedUnderSanitizers) {
  GTEST_SKIP() << "the sanitizer runtimes own operator new/delete; release and debug builds run this test";
}

#else

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "rill/manager.hpp"
#include "rill/multicast.hpp"
#include "rill/stream.hpp"

namespace {
// Relaxed: a counter read by the same thread that allocates, after the window closes.
std::atomic<std::uint64_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  return ::operator new(size);
}
void* operator new(std::size_t size, std::align_val_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t a = static_cast<std::size_t>(align);
  if (void* p = std::aligned_alloc(a, (size + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return ::operator new(size, align);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

namespace {

using rill::event;
using rill::status;

constexpr int kRounds = 10000;
const std::string kLongText(300, 'x');  // arena / text-ring text

// Allocations made by `body`.
template <class Body>
std::uint64_t allocations_in(Body&& body) {
  const std::uint64_t before = g_allocations.load(std::memory_order_relaxed);
  body();
  return g_allocations.load(std::memory_order_relaxed) - before;
}

TEST(HotPathAllocation, CountingReplacementSeesAllocations) {
  // The check can fail. (The pointer escapes so the compiler may not elide the new/delete pair.)
  EXPECT_GT(allocations_in([] {
              int* p = new int(7);
              asm volatile("" : : "g"(p) : "memory");
              delete p;
            }),
            0u);
}

TEST(HotPathAllocation, StreamSendsReceivesBatchesDrainsAndClaimsDoNotAllocate) {
  for (const rill::flavour kind : {rill::flavour::spsc, rill::flavour::mpmc}) {
    rill::stream_options o;
    o.kind = kind;
    rill::stream s(o);
    ASSERT_EQ(s.try_send(event::keep_alive()), status::ok);  // the first send allocates the ring
    rill::received r;
    ASSERT_EQ(s.try_receive(r), status::ok);
    rill::received_batch batch(8);  // its one allocation, before the measured loop
    const event inline_event = event::text_delta(0, "short");
    const event long_event = event::text_delta(0, kLongText);
    std::uint64_t sum = 0;
    const std::uint64_t n = allocations_in([&] {
      for (int i = 0; i < kRounds; ++i) {
        if (s.try_send(i % 4 == 0 ? long_event : inline_event) != status::ok) std::abort();
        if (s.try_receive(r) != status::ok) std::abort();
        sum += r->seq();
        r.reset();
        if (s.try_send(inline_event) != status::ok) std::abort();
        sum += s.try_drain([&](const event& e, bool) { sum += e.seq(); }, 16);
        rill::send_claim claim;
        if (s.try_claim(claim, 64) != status::ok) std::abort();
        ::new (&claim.slot()) event(event::text_delta(0, "claimed"));
        if (s.commit(claim) != status::ok) std::abort();
        if (s.try_receive(r) != status::ok) std::abort();
        const event pair[] = {long_event, inline_event};
        if (s.try_send_batch(pair) != 2) std::abort();
        if (s.try_receive_batch(batch) != status::ok || batch.size() != 2) std::abort();
        sum += batch[1].seq();
      }
    });
    EXPECT_EQ(n, 0u) << rill::to_string(kind);
    EXPECT_GT(sum, 0u);
  }
}

TEST(HotPathAllocation, ManagerLookupsDoNotAllocate) {
  rill::stream_manager m;
  rill::stream_ref ref;
  for (int i = 0; i < 100; ++i) ASSERT_EQ(m.create("stream-" + std::to_string(i), ref), status::ok);
  const std::string id = "stream-42";
  const std::string missing = "stream-missing";
  const std::uint64_t n = allocations_in([&] {
    for (int i = 0; i < kRounds; ++i) {
      if (m.get(id, ref) != status::ok) std::abort();
      if (m.get(missing, ref) != status::not_found) std::abort();
    }
  });
  EXPECT_EQ(n, 0u);
}

TEST(HotPathAllocation, MulticastSendsReceivesAndDrainsDoNotAllocate) {
  rill::multicast_stream s;
  rill::subscription hold, skip;
  ASSERT_EQ(s.subscribe(hold, {rill::slow_reader::hold, rill::start_at::newest}), status::ok);
  ASSERT_EQ(s.subscribe(skip, {rill::slow_reader::skip, rill::start_at::newest}), status::ok);
  const event inline_event = event::text_delta(0, "short");
  const event long_event = event::text_delta(0, kLongText);
  std::uint64_t sum = 0;
  const std::uint64_t n = allocations_in([&] {
    event out;
    for (int i = 0; i < kRounds; ++i) {
      if (s.try_send(i % 4 == 0 ? long_event : inline_event) != status::ok) std::abort();
      if (hold.try_receive(out) != status::ok) std::abort();
      sum += out.seq();
      sum += skip.try_drain([&](const event& e, bool) { sum += e.text().size(); }, 16);
    }
  });
  EXPECT_EQ(n, 0u);
  EXPECT_GT(sum, 0u);
}

}  // namespace

#endif
