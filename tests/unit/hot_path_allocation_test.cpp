// The hot paths neither allocate nor lock: this executable replaces the global operator new / delete with
// counting versions, and interposes counting versions of the pthread lock calls (std::mutex and
// std::shared_mutex lock through them), then checks that none runs inside the window of each hot path
// (after the one-time set-up each path documents: a stream's ring on its first send, a subscriber's text
// buffer at subscribe).
//
// Sanitizer builds skip it: their runtimes supply operator new and delete themselves (and check that the
// two match), and intercept the pthread calls, so replacing them there would test the replacement rather
// than rill.
#include <gtest/gtest.h>

#if defined(RILL_SANITIZER_BUILD)

TEST(HotPathAllocation, SkippedUnderSanitizers) {
  GTEST_SKIP() << "the sanitizer runtimes own operator new/delete; release and debug builds run this test";
}

#else

#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string>

#include "rill/manager.hpp"
#include "rill/multicast.hpp"
#include "rill/pipeline.hpp"
#include "rill/stream.hpp"

namespace {
// Relaxed: counters read by the same thread that allocates or locks, after the window closes.
std::atomic<std::uint64_t> g_allocations{0};
std::atomic<std::uint64_t> g_locks{0};

// The next definition of `name` (libc's), looked up once. No function-local static: its guard may lock.
template <class Fn>
Fn next_definition(std::atomic<void*>& cache, const char* name) noexcept {
  void* f = cache.load(std::memory_order_acquire);  // pairs with the release below (any thread may fill it)
  if (f == nullptr) {
    f = dlsym(RTLD_NEXT, name);
    if (f == nullptr) std::abort();
    cache.store(f, std::memory_order_release);  // publishes the pointer; dlsym gives the same one to all
  }
  return reinterpret_cast<Fn>(f);
}
std::atomic<void*> g_mutex_lock{nullptr}, g_mutex_trylock{nullptr}, g_rdlock{nullptr}, g_wrlock{nullptr};
}  // namespace

extern "C" {
int pthread_mutex_lock(pthread_mutex_t* m) {
  g_locks.fetch_add(1, std::memory_order_relaxed);
  return next_definition<int (*)(pthread_mutex_t*)>(g_mutex_lock, "pthread_mutex_lock")(m);
}
int pthread_mutex_trylock(pthread_mutex_t* m) {
  g_locks.fetch_add(1, std::memory_order_relaxed);
  return next_definition<int (*)(pthread_mutex_t*)>(g_mutex_trylock, "pthread_mutex_trylock")(m);
}
int pthread_rwlock_rdlock(pthread_rwlock_t* l) {
  g_locks.fetch_add(1, std::memory_order_relaxed);
  return next_definition<int (*)(pthread_rwlock_t*)>(g_rdlock, "pthread_rwlock_rdlock")(l);
}
int pthread_rwlock_wrlock(pthread_rwlock_t* l) {
  g_locks.fetch_add(1, std::memory_order_relaxed);
  return next_definition<int (*)(pthread_rwlock_t*)>(g_wrlock, "pthread_rwlock_wrlock")(l);
}
}

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

// Allocations and lock calls made by `body`.
struct costs {
  std::uint64_t allocations = 0;
  std::uint64_t locks = 0;
};
template <class Body>
costs costs_in(Body&& body) {
  const std::uint64_t allocations = g_allocations.load(std::memory_order_relaxed);
  const std::uint64_t locks = g_locks.load(std::memory_order_relaxed);
  body();
  return {g_allocations.load(std::memory_order_relaxed) - allocations,
          g_locks.load(std::memory_order_relaxed) - locks};
}

TEST(HotPathAllocation, CountingReplacementsSeeAllocationsAndLocks) {
  // The checks can fail. (The pointer escapes so the compiler may not elide the new/delete pair.)
  EXPECT_GT(costs_in([] {
              int* p = new int(7);
              asm volatile("" : : "g"(p) : "memory");
              delete p;
            }).allocations,
            0u);
  std::mutex m;
  std::shared_mutex shared;
  const costs c = costs_in([&] {
    { const std::lock_guard<std::mutex> hold(m); }
    { const std::shared_lock<std::shared_mutex> read(shared); }
    { const std::unique_lock<std::shared_mutex> write(shared); }
  });
  EXPECT_EQ(c.locks, 3u);
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
    const costs c = costs_in([&] {
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
    EXPECT_EQ(c.allocations, 0u) << rill::to_string(kind);
    EXPECT_EQ(c.locks, 0u) << rill::to_string(kind);
    EXPECT_GT(sum, 0u);
  }
}

TEST(HotPathAllocation, ManagerLookupsDoNotAllocate) {
  rill::stream_manager m;
  rill::stream_ref ref;
  for (int i = 0; i < 100; ++i) ASSERT_EQ(m.create("stream-" + std::to_string(i), ref), status::ok);
  const std::string id = "stream-42";
  const std::string missing = "stream-missing";
  const rill::stream_handle handle = m.handle_of(id);
  std::uint64_t sum = 0;
  const costs c = costs_in([&] {
    for (int i = 0; i < kRounds; ++i) {
      if (m.get(id, ref) != status::ok) std::abort();
      if (m.get(missing, ref) != status::not_found) std::abort();
      if (m.get(handle, ref) != status::ok) std::abort();
      if (m.visit(id, [&](rill::stream& s) { sum += s.capacity(); }) != status::ok) std::abort();
      sum += m.handle_of(id) ? 1 : 0;
    }
  });
  EXPECT_EQ(c.allocations, 0u);
  EXPECT_EQ(c.locks, 0u);
  EXPECT_GT(sum, 0u);
}

TEST(HotPathAllocation, MulticastSendsReceivesAndDrainsDoNotAllocate) {
  rill::multicast_stream s;
  rill::subscription hold, skip;
  ASSERT_EQ(s.subscribe(hold, {rill::slow_reader::hold, rill::start_at::newest}), status::ok);
  ASSERT_EQ(s.subscribe(skip, {rill::slow_reader::skip, rill::start_at::newest}), status::ok);
  const event inline_event = event::text_delta(0, "short");
  const event long_event = event::text_delta(0, kLongText);
  std::uint64_t sum = 0;
  const costs c = costs_in([&] {
    event out;
    for (int i = 0; i < kRounds; ++i) {
      if (s.try_send(i % 4 == 0 ? long_event : inline_event) != status::ok) std::abort();
      if (hold.try_receive(out) != status::ok) std::abort();
      sum += out.seq();
      sum += skip.try_drain([&](const event& e, bool) { sum += e.text().size(); }, 16);
    }
  });
  EXPECT_EQ(c.allocations, 0u);
  EXPECT_EQ(c.locks, 0u);
  EXPECT_GT(sum, 0u);
}

// pipeline_runner's per-event path: transformers' results, kind and provider filters, the calls.
TEST(HotPathAllocation, PipelineRunnerProcessDoesNotAllocateOrLock) {
  rill::pipeline p;
  std::uint64_t sum = 0;
  p.subscribe({"all"}, [&](const rill::enriched_event& e) { sum += e.e.seq() + 1; });
  p.subscribe({"deltas", rill::kind_set{rill::event_kind::text_delta}},
              [&](const rill::enriched_event& e) { sum += e.e.text().size(); });
  rill::pipeline_runner runner(p);
  rill::stream_context context;
  context.id.assign("s");
  rill::pipeline_stream stream(context);
  runner.process(event::stream_start("openai", "gpt-x"), stream);  // computes the stream's mask
  const event inline_event = event::text_delta(0, "short");
  const event long_event = event::text_delta(0, kLongText);
  const costs c = costs_in([&] {
    for (int i = 0; i < kRounds; ++i) runner.process(i % 4 == 0 ? long_event : inline_event, stream);
  });
  EXPECT_EQ(c.allocations, 0u);
  EXPECT_EQ(c.locks, 0u);
  EXPECT_GT(sum, 0u);
}

}  // namespace

#endif
