#include "rill/manager.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "scope_exit.hpp"

namespace {

using namespace std::chrono_literals;
using rill::status;
using rill::stream_manager;
using rill::stream_ref;

rill::manager_options small_manager(std::size_t shards = 16) {
  rill::manager_options o;
  o.shards = shards;
  o.stream_defaults.capacity = 8;
  o.stream_defaults.arena_bytes = 0;
  return o;
}

// Frees everything retired so far (no reader runs): three advances cover the two-epoch grace period.
// "prefix<n>" (built by append: g++ 12 warns falsely on `"s" + std::to_string(n)`).
std::string name(std::string_view prefix, long n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

void drain_reclamation(stream_manager& m) {
  for (int i = 0; i < 4; ++i) m.reclaim();
}

std::uintptr_t line_of(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) / 64;
}

// A managed stream's reference count (written by every lookup) never shares a cache line with its stream's
// control block (read by every send and receive), nor do the metrics (written by the consumer) share one
// with either, for any id length. The entry's read-mostly fields sit in the stream's tail padding, on the
// control block's line.
TEST(StreamManager, LookupsWriteNoLineTheDataPathReads) {
  using rill::detail::managed_stream;
  rill::stream_options options;
  options.capacity = 8;
  options.arena_bytes = 0;
  for (const std::size_t id_size :
       {std::size_t{1}, std::size_t{56}, std::size_t{57}, stream_manager::kMaxIdBytes}) {
    const rill::detail::entry_memory memory =
        rill::detail::allocate_managed_stream(managed_stream::allocation_size(id_size, true));
    ASSERT_EQ(reinterpret_cast<std::uintptr_t>(memory.at) % 64, 0u);
    auto* entry = new (memory.at) managed_stream(std::string(id_size, 'x'), options, 0, memory.shift);
    const auto* base = reinterpret_cast<const unsigned char*>(entry);
    const auto* block_first = reinterpret_cast<const unsigned char*>(&entry->as_stream());
    const auto* block_last = block_first + sizeof(rill::stream) - 1;
    const auto* refs_last = reinterpret_cast<const unsigned char*>(&entry->refs) + sizeof(entry->refs) - 1;
    EXPECT_EQ(block_first, base);
    EXPECT_EQ(reinterpret_cast<const unsigned char*>(&entry->handle) - base, 32);
    EXPECT_EQ(reinterpret_cast<const unsigned char*>(&entry->refs) - base,
              static_cast<std::ptrdiff_t>(managed_stream::kRefsOffset));
    EXPECT_EQ(line_of(block_first), line_of(block_last)) << "id of " << id_size << " bytes";
    EXPECT_LT(line_of(block_last), line_of(&entry->refs)) << "id of " << id_size << " bytes";
    EXPECT_LT(line_of(refs_last), line_of(base + managed_stream::metrics_offset(id_size)))
        << "id of " << id_size << " bytes";
    EXPECT_EQ(entry->id(), std::string(id_size, 'x'));
    EXPECT_FALSE(entry->as_stream().is_closed());
    entry->~managed_stream();
    rill::detail::free_managed_stream(memory.at, memory.shift);
  }
}

// Through the manager: every stream's metrics start on a later line than its control block ends.
TEST(StreamManager, MetricsLiveOffTheControlBlocksLine) {
  rill::manager_options o = small_manager();
  o.track_metrics = true;
  stream_manager m(o);
  for (const std::size_t length : {1, 7, 8, 40, 41, 64, 200, 255}) {
    const std::string id(length, static_cast<char>('a' + length % 26));
    stream_ref r;
    ASSERT_EQ(m.create(id, r), status::ok) << length;
    ASSERT_NE(r.metrics(), nullptr);
    const auto* block_last = reinterpret_cast<const unsigned char*>(r.get()) + sizeof(rill::stream) - 1;
    EXPECT_LT(line_of(block_last), line_of(r.metrics())) << "id length " << length;
    EXPECT_EQ(r.id(), id);
  }
}

TEST(StreamManager, CreateThenGetFindsTheSameStream) {
  stream_manager m(small_manager());
  stream_ref created;
  ASSERT_EQ(m.create("a", created), status::ok);
  ASSERT_TRUE(created);
  EXPECT_EQ(created.id(), "a");
  EXPECT_TRUE(created.handle());
  stream_ref found;
  ASSERT_EQ(m.get("a", found), status::ok);
  EXPECT_EQ(found.get(), created.get());
  EXPECT_EQ(m.count(), 1u);
  EXPECT_FALSE(created->allocated()) << "an idle stream allocates its ring lazily";
}

TEST(StreamManager, CreateRefusesALiveDuplicate) {
  stream_manager m(small_manager());
  stream_ref a, b;
  ASSERT_EQ(m.create("dup", a), status::ok);
  EXPECT_EQ(m.create("dup", b), status::already_exists);
  EXPECT_FALSE(b);
  EXPECT_EQ(m.count(), 1u);
}

TEST(StreamManager, CreateReplacesAStreamClosedThroughItsRef) {
  stream_manager m(small_manager());
  stream_ref a, b;
  ASSERT_EQ(m.create("x", a), status::ok);
  a->close();
  stream_ref still;
  ASSERT_EQ(m.get("x", still), status::ok) << "a closed stream stays indexed until removed";
  EXPECT_TRUE(still->is_closed());
  ASSERT_EQ(m.create("x", b), status::ok);
  EXPECT_NE(a.get(), b.get());
  EXPECT_FALSE(b->is_closed());
  EXPECT_EQ(m.count(), 1u);
  stream_ref by_old_handle;
  EXPECT_EQ(m.get(a.handle(), by_old_handle), status::not_found);
  bool created = false;
  b->close();
  stream_ref c;
  ASSERT_EQ(m.get_or_create("x", c, &created), status::ok);
  EXPECT_TRUE(created);
}

TEST(StreamManager, GetMissingIsNotFound) {
  stream_manager m(small_manager());
  stream_ref r;
  EXPECT_EQ(m.get("nope", r), status::not_found);
  EXPECT_EQ(m.get(rill::stream_handle{12345}, r), status::not_found);
  EXPECT_EQ(m.get(rill::stream_handle{}, r), status::not_found);
  EXPECT_EQ(m.close("nope"), status::not_found);
  rill::stream_info info;
  EXPECT_EQ(m.info("nope", info), status::not_found);
  EXPECT_EQ(m.visit("nope", [](rill::stream&) { FAIL(); }), status::not_found);
  EXPECT_FALSE(m.handle_of("nope"));
}

TEST(StreamManager, InvalidIdsAreRejectedEverywhere) {
  stream_manager m(small_manager());
  const std::string too_long(stream_manager::kMaxIdBytes + 1, 'x');
  stream_ref r;
  bool created = true;
  rill::stream_info info;
  for (std::string_view bad : {std::string_view{}, std::string_view{too_long}}) {
    EXPECT_EQ(m.create(bad, r), status::invalid);
    EXPECT_EQ(m.get(bad, r), status::invalid);
    EXPECT_EQ(m.get_or_create(bad, r, &created), status::invalid);
    EXPECT_FALSE(created);
    EXPECT_EQ(m.close(bad), status::invalid);
    EXPECT_EQ(m.info(bad, info), status::invalid);
    EXPECT_EQ(m.visit(bad, [](rill::stream&) {}), status::invalid);
  }
  EXPECT_EQ(m.count(), 0u);
}

TEST(StreamManager, IdsAtTheLengthLimitWork) {
  stream_manager m(small_manager());
  std::string longest(stream_manager::kMaxIdBytes, 'a');
  std::string other = longest;
  other.back() = 'b';  // differs only in the last byte
  stream_ref a, b, found;
  ASSERT_EQ(m.create(longest, a), status::ok);
  ASSERT_EQ(m.create(other, b), status::ok);
  ASSERT_EQ(m.get(longest, found), status::ok);
  EXPECT_EQ(found.get(), a.get());
  EXPECT_EQ(found.id(), longest);
  ASSERT_EQ(m.get(other, found), status::ok);
  EXPECT_EQ(found.get(), b.get());
  const std::string binary("a\0b", 3);
  ASSERT_EQ(m.create(binary, a), status::ok);
  ASSERT_EQ(m.get(binary, found), status::ok);
  EXPECT_EQ(m.get(std::string_view("a"), found), status::not_found);
  EXPECT_EQ(m.close(longest), status::ok);
  EXPECT_EQ(m.count(), 2u);
}

TEST(StreamManager, OptionsComeFromDefaultsOrTheCreateCall) {
  rill::manager_options o = small_manager();
  o.stream_defaults.capacity = 100;  // rounded to 128
  o.stream_defaults.policy = rill::backpressure::drop;
  stream_manager m(o);
  EXPECT_EQ(m.default_options().capacity, 100u);
  stream_ref d, c;
  ASSERT_EQ(m.create("defaults", d), status::ok);
  EXPECT_EQ(d->capacity(), 128u);
  EXPECT_EQ(d->policy(), rill::backpressure::drop);
  rill::stream_options own;
  own.capacity = 4;
  own.kind = rill::flavour::mpmc;
  ASSERT_EQ(m.create("own", own, c), status::ok);
  EXPECT_EQ(c->capacity(), 4u);
  EXPECT_EQ(c->kind(), rill::flavour::mpmc);
  rill::stream_options bad;
  bad.capacity = std::size_t{1} << 31;
  EXPECT_EQ(m.create("bad", bad, c), status::invalid);
  EXPECT_EQ(m.count(), 2u);
}

TEST(StreamManager, ConstructorRejectsBadConfiguration) {
  rill::manager_options o;
  o.shards = 0;
  EXPECT_THROW(stream_manager{o}, std::invalid_argument);
  o.shards = 3;
  stream_manager rounded(o);
  EXPECT_EQ(rounded.shard_count(), 4u);
  o.stream_defaults.kind = static_cast<rill::flavour>(9);
  EXPECT_THROW(stream_manager{o}, std::invalid_argument);
}

TEST(StreamManager, GetOrCreateCreatesOnceThenFinds) {
  stream_manager m(small_manager());
  stream_ref a, b;
  bool created = false;
  ASSERT_EQ(m.get_or_create("g", a, &created), status::ok);
  EXPECT_TRUE(created);
  ASSERT_EQ(m.get_or_create("g", b, &created), status::ok);
  EXPECT_FALSE(created);
  EXPECT_EQ(a.get(), b.get());
  rill::stream_options own;
  own.capacity = 2;
  ASSERT_EQ(m.get_or_create("h", own, b, &created), status::ok);
  EXPECT_TRUE(created);
  EXPECT_EQ(b->capacity(), 2u);
}

TEST(StreamManager, RacingGetOrCreateCreatesExactlyOne) {
  stream_manager m(small_manager(4));
  constexpr int kThreads = 8;
  for (int round = 0; round < 50; ++round) {
    const std::string id = name("race-", round);
    std::atomic<int> creators{0};
    std::atomic<bool> go{false};
    std::vector<rill::stream*> seen(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();  // pairs with go's release
        stream_ref r;
        bool created = false;
        ASSERT_EQ(m.get_or_create(id, r, &created), status::ok);
        if (created) creators.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after join()
        seen[static_cast<std::size_t>(t)] = r.get();
      });
    }
    go.store(true, std::memory_order_release);  // release: a start signal; pairs with the threads' acquire
    for (auto& th : threads) th.join();
    EXPECT_EQ(creators.load(std::memory_order_relaxed), 1) << id;  // relaxed: join() ordered the adds
    EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [&](rill::stream* s) { return s == seen[0]; }));
  }
  EXPECT_EQ(m.count(), 50u);
}

TEST(StreamManager, CloseRemovesAndClosesButRefsStayUsable) {
  stream_manager m(small_manager());
  stream_ref r;
  ASSERT_EQ(m.create("c", r), status::ok);
  ASSERT_EQ(r->try_send(rill::event::text_delta(0, "buffered")), status::ok);
  const rill::stream_handle handle = r.handle();
  ASSERT_EQ(m.close("c"), status::ok);
  EXPECT_EQ(m.close("c"), status::not_found);
  EXPECT_EQ(m.count(), 0u);
  stream_ref gone;
  EXPECT_EQ(m.get("c", gone), status::not_found);
  EXPECT_EQ(m.get(handle, gone), status::not_found);
  drain_reclamation(m);  // the index's reference is dropped; ours keeps the stream
  EXPECT_TRUE(r->is_closed());
  EXPECT_EQ(r->try_send(rill::event::text_delta(0, "late")), status::closed);
  rill::received ev;
  ASSERT_EQ(r->try_receive(ev), status::ok) << "receivers drain what was buffered";
  EXPECT_EQ(ev->text(), "buffered");
  EXPECT_EQ(r->try_receive(ev), status::closed);
  EXPECT_EQ(r.use_count(), 1u);
}

TEST(StreamManager, HandlesFindStreamsAndGoStaleOnClose) {
  stream_manager m(small_manager());
  stream_ref a, found;
  ASSERT_EQ(m.create("h1", a), status::ok);
  const rill::stream_handle h = m.handle_of("h1");
  EXPECT_EQ(h, a.handle());
  ASSERT_EQ(m.get(h, found), status::ok);
  EXPECT_EQ(found.get(), a.get());
  int visits = 0;
  EXPECT_EQ(m.visit(h, [&](rill::stream& s) { visits += &s == a.get(); }), status::ok);
  EXPECT_EQ(m.visit("h1", [&](rill::stream& s) { visits += &s == a.get(); }), status::ok);
  EXPECT_EQ(visits, 2);
  ASSERT_EQ(m.close("h1"), status::ok);
  stream_ref b;
  ASSERT_EQ(m.create("h2", b), status::ok);  // may reuse the index; the generation differs
  EXPECT_NE(b.handle(), h);
  EXPECT_EQ(m.get(h, found), status::not_found);
}

// Generations are counted per shard: many shards hand out the same generation, and one shard reuses its
// freed indices. Every handle must still name one stream only.
TEST(StreamManager, HandlesStayUniqueAcrossShardsAndReusedIndices) {
  stream_manager m(small_manager(64));
  std::set<std::uint64_t> seen;
  std::vector<rill::stream_handle> stale;
  stream_ref r, found;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 200; ++i) {
      ASSERT_EQ(m.create(name("u", i), r), status::ok);
      EXPECT_TRUE(seen.insert(r.handle().value).second) << "handle given twice: " << name("u", i);
      ASSERT_EQ(m.get(r.handle(), found), status::ok);
      EXPECT_EQ(found.get(), r.get());
      stale.push_back(r.handle());
    }
    for (int i = 0; i < 200; ++i) ASSERT_EQ(m.close(name("u", i)), status::ok);  // frees every index
  }
  for (const rill::stream_handle h : stale) EXPECT_EQ(m.get(h, found), status::not_found);
}

TEST(StreamManager, ListAndCountAgree) {
  stream_manager m(small_manager(8));
  std::set<std::string> expected;
  stream_ref r;
  for (int i = 0; i < 300; ++i) {
    expected.insert(name("s", i));
    ASSERT_EQ(m.create(name("s", i), r), status::ok);
  }
  for (int i = 0; i < 300; i += 3) {
    expected.erase(name("s", i));
    ASSERT_EQ(m.close(name("s", i)), status::ok);
  }
  const auto ids = m.list();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), expected);
  EXPECT_EQ(ids.size(), m.count());
  for (const auto& id : expected) ASSERT_EQ(m.get(id, r), status::ok) << id;
}

TEST(StreamManager, CloseAllClosesEveryStream) {
  stream_manager m(small_manager());
  std::vector<stream_ref> refs(20);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(m.create(name("all", i), refs[static_cast<std::size_t>(i)]), status::ok);
  EXPECT_EQ(m.close_all(), 20u);
  EXPECT_EQ(m.count(), 0u);
  EXPECT_TRUE(m.list().empty());
  for (auto& r : refs) EXPECT_TRUE(r->is_closed());
  EXPECT_EQ(m.close_all(), 0u);
}

TEST(StreamManager, CleanupClosesOnlyInactiveStreams) {
  stream_manager m(small_manager());
  stream_ref busy, idle, drained;
  ASSERT_EQ(m.create("busy", busy), status::ok);
  ASSERT_EQ(m.create("idle", idle), status::ok);
  EXPECT_EQ(m.cleanup_inactive(1h), 0u) << "new streams count as active at creation";
  std::this_thread::sleep_for(30ms);
  ASSERT_EQ(busy->try_send(rill::event::keep_alive()), status::ok);
  EXPECT_EQ(m.cleanup_inactive(20ms), 1u);  // idle has not changed since creation, 30 ms ago
  EXPECT_TRUE(idle->is_closed());
  EXPECT_FALSE(busy->is_closed());
  stream_ref probe;
  EXPECT_EQ(m.get("idle", probe), status::not_found);
  ASSERT_EQ(m.get("busy", probe), status::ok);
  // A receive is activity too.
  std::this_thread::sleep_for(30ms);
  rill::received ev;
  ASSERT_EQ(busy->try_receive(ev), status::ok);
  EXPECT_EQ(m.cleanup_inactive(20ms), 0u);
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(m.cleanup_inactive(20ms), 1u);
  EXPECT_EQ(m.count(), 0u);
  EXPECT_EQ(m.cleanup_inactive(0ns), 0u);
}

// A threshold longer than nanoseconds can hold means "never": it used to overflow on the conversion
// (UBSan) into a negative threshold that removed every stream.
TEST(StreamManager, CleanupWithAnEndlessThresholdRemovesNothing) {
  stream_manager m(small_manager());
  stream_ref a;
  ASSERT_EQ(m.create("a", a), status::ok);
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(m.cleanup_inactive(std::chrono::seconds::max()), 0u);
  EXPECT_EQ(m.cleanup_inactive(std::chrono::hours(24 * 365 * 400)), 0u);
  EXPECT_EQ(m.cleanup_inactive(std::chrono::nanoseconds::max()), 0u);
  EXPECT_EQ(m.count(), 1u);
  EXPECT_EQ(m.cleanup_inactive(std::chrono::seconds::min()), 1u)
      << "a negative threshold: everything is idle";
}

// count() never reads below zero (it used to wrap while a close raced a create of the same id), so list()
// and list_info() never try to reserve ~2^64 entries.
TEST(StreamManager, CountNeverWrapsWhileCreateAndCloseRace) {
  rill::manager_options o = small_manager(1);
  stream_manager m(o);
  std::atomic<bool> stop{false};     // relaxed: a stop request; results travel by join()
  std::vector<std::thread> writers;  // more threads than cores: preemption inside the window helps
  for (int i = 0; i < 2; ++i) {
    writers.emplace_back([&] {
      stream_ref r;
      while (!stop.load(std::memory_order_relaxed)) (void)m.create("x", r);
    });
    writers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) (void)m.close("x");
    });
  }
  std::uint64_t wrapped = 0, list_threw = 0;
  // The race window is a few instructions wide: before the fix, a second of this caught it in every run.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < until) {
    // At most one live "x", plus removals not yet counted out (one per closer): anything far above is a
    // count that went below zero and wrapped.
    if (m.count() > 16) ++wrapped;
    try {
      (void)m.list();
    } catch (const std::length_error&) {
      ++list_threw;
    }
  }
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : writers) t.join();
  EXPECT_EQ(wrapped, 0u);
  EXPECT_EQ(list_threw, 0u);
  EXPECT_EQ(m.count(), m.list().size());
}

TEST(StreamManager, InfoReportsTheStream) {
  rill::manager_options o = small_manager();
  stream_manager m(o);
  stream_ref r;
  const auto before = std::chrono::steady_clock::now();
  ASSERT_EQ(m.create("info", r), status::ok);
  rill::stream_info info;
  ASSERT_EQ(m.info("info", info), status::ok);
  EXPECT_EQ(info.id, "info");
  EXPECT_EQ(info.handle, r.handle());
  EXPECT_GE(info.created, before);
  EXPECT_EQ(info.last_activity, info.created);
  EXPECT_EQ(info.capacity, 8u);
  EXPECT_EQ(info.kind, rill::flavour::spsc);
  EXPECT_EQ(info.policy, rill::backpressure::block);
  EXPECT_FALSE(info.allocated);
  EXPECT_FALSE(info.closed);
  ASSERT_EQ(r->try_send(rill::event::keep_alive()), status::ok);
  ASSERT_EQ(r->try_send(rill::event::keep_alive()), status::ok);
  rill::received ev;
  ASSERT_EQ(r->try_receive(ev), status::ok);
  ASSERT_EQ(m.info("info", info), status::ok);
  EXPECT_EQ(info.sent, 2u);
  EXPECT_EQ(info.received, 1u);
  EXPECT_EQ(info.dropped, 0u);
  EXPECT_EQ(info.approx_size, 1u);
  EXPECT_TRUE(info.allocated);
  EXPECT_GT(info.last_activity, info.created);
  stream_ref other;
  ASSERT_EQ(m.create("other", other), status::ok);
  other->close();
  const auto all = m.list_info();
  ASSERT_EQ(all.size(), 2u);
  const auto& closed = all[0].id == "other" ? all[0] : all[1];
  EXPECT_TRUE(closed.closed);
}

TEST(StreamManager, DestructionClosesStreamsRefsSurvive) {
  stream_ref survivor;
  {
    stream_manager m(small_manager());
    ASSERT_EQ(m.create("s", survivor), status::ok);
    ASSERT_EQ(m.create("t", survivor), status::ok);
  }
  EXPECT_TRUE(survivor->is_closed());
  EXPECT_EQ(survivor.use_count(), 1u);
  EXPECT_EQ(survivor.id(), "t");
}

TEST(StreamManager, RetiredTablesAndEntriesAreEventuallyFreed) {
  stream_manager m(small_manager(2));
  stream_ref r;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(m.create(name("r", i), r), status::ok);
    if (i % 2 == 0) {
      ASSERT_EQ(m.close(name("r", i)), status::ok);
    }
  }
  EXPECT_EQ(m.close_all(), 500u);
  drain_reclamation(m);
  const rill::reclamation_counters c = m.reclamation();
  EXPECT_GT(c.tables_retired, 1000u);
  EXPECT_EQ(c.tables_reclaimed, c.tables_retired);
  EXPECT_EQ(c.entries_retired, 1000u);
  EXPECT_EQ(c.entries_reclaimed, c.entries_retired);
  EXPECT_GT(c.advance_attempts, 0u);
}

// A node is freed two epoch advances after its retirement: one reclaim() makes both when it must.
TEST(StreamManager, OneReclaimFreesABurstWhenNoReaderIsInside) {
  stream_manager m(small_manager(1));
  stream_ref r;
  for (int i = 0; i < 10; ++i) {  // under the 64 retirements after which writers advance on their own
    ASSERT_EQ(m.create(name("b", i), r), status::ok);
    ASSERT_EQ(m.close(name("b", i)), status::ok);
  }
  r.reset();
  m.reclaim();
  const rill::reclamation_counters c = m.reclamation();
  EXPECT_EQ(c.entries_retired, 10u);
  EXPECT_EQ(c.entries_reclaimed, c.entries_retired);
  EXPECT_EQ(c.tables_reclaimed, c.tables_retired);
}

TEST(StreamManager, AReaderInsideASectionHoldsBackReclamation) {
  stream_manager m(small_manager(1));
  stream_ref r;
  ASSERT_EQ(m.create("held", r), status::ok);
  r.reset();
  // Both flags are release/acquire handshakes: `inside` orders the reader's section entry before main's
  // close and drain; `release` orders those before the reader's check of the stream.
  std::atomic<bool> inside{false}, release{false};
  std::thread reader([&] {
    // Release: pairs with main's acquire; visit may fail.
    const rill::test::on_scope_exit unblock_main([&] { inside.store(true, std::memory_order_release); });
    ASSERT_EQ(m.visit("held",
                      [&](rill::stream& s) {
                        inside.store(true, std::memory_order_release);  // release: see the declaration
                        // acquire: see the declaration.
                        while (!release.load(std::memory_order_acquire)) std::this_thread::yield();
                        EXPECT_FALSE(s.allocated());  // still alive: ASan would catch a use after free
                      }),
              status::ok);
  });
  const rill::test::on_scope_exit finish_reader([&] {  // a failed ASSERT below must not leave it spinning
    release.store(true, std::memory_order_release);    // release: see the declaration
    if (reader.joinable()) reader.join();
  });
  while (!inside.load(std::memory_order_acquire)) std::this_thread::yield();  // acquire: see the declaration
  ASSERT_EQ(m.close("held"), status::ok);
  drain_reclamation(m);
  EXPECT_EQ(m.reclamation().entries_reclaimed, 0u) << "the reader's section protects the entry";
  release.store(true, std::memory_order_release);  // release: see the declaration
  reader.join();
  drain_reclamation(m);
  EXPECT_EQ(m.reclamation().entries_reclaimed, 1u);
}

TEST(StreamManager, NestedSectionsAndManyThreads) {
  stream_manager m(small_manager());
  stream_ref a, b;
  ASSERT_EQ(m.create("outer", a), status::ok);
  ASSERT_EQ(m.create("inner", b), status::ok);
  int inner_seen = 0;
  EXPECT_EQ(m.visit("outer",
                    [&](rill::stream&) {
                      EXPECT_EQ(m.visit("inner", [&](rill::stream&) { ++inner_seen; }), status::ok);
                    }),
            status::ok);
  EXPECT_EQ(inner_seen, 1);
  // Threads come and go: slots are given back at thread exit and reused.
  for (int i = 0; i < 1200; ++i) {
    std::thread t([&] {
      stream_ref r;
      EXPECT_EQ(m.get("outer", r), status::ok);
      // More threads than slots have come and gone: each still found a free slot (no overflow).
      EXPECT_NE(rill::detail::epoch::t_reader.slot, nullptr) << "thread " << i;
    });
    t.join();
  }
  drain_reclamation(m);
}

}  // namespace
