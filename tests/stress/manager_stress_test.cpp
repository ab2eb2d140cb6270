// Stress: lookups racing with creates, closes, cleanups and close_all; a million idle streams.
// Work scales with RILL_STRESS_SCALE (stress_scale.hpp). ASan proves no reader touches a freed stream;
// TSan checks the orderings.
#include "rill/manager.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "stress_scale.hpp"
#include "stream_ids.hpp"

namespace {

using namespace std::chrono_literals;
using rill::status;
using rill::stream_manager;
using rill::stream_ref;
using rill::test::numbered;

long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * ::sysconf(_SC_PAGESIZE);
}

void drain_reclamation(stream_manager& m) {
  for (int i = 0; i < 4; ++i) m.reclaim();
}

TEST(ManagerStress, LookupsRaceWithCreateCloseCleanup) {
  rill::manager_options options;
  options.shards = 64;  // few shards: writers contend and tables churn
  options.stream_defaults.capacity = 16;
  options.stream_defaults.arena_bytes = 0;
  options.stream_defaults.kind = rill::flavour::mpmc;  // both readers send and receive on what they find
  stream_manager m(options);
  constexpr std::uint64_t kIds = 512;
  const auto duration = std::chrono::milliseconds(rill::test::scaled(3000, 60));

  std::atomic<bool> stop{false};  // relaxed: a time-out flag; the counts travel by join()
  // Relaxed statistics: every use is an add on a worker or a read after join().
  std::atomic<std::uint64_t> created{0}, closed_by_id{0}, closed_by_sweep{0}, lookups{0}, found{0}, sweeps{0},
      close_alls{0};
  std::vector<std::thread> threads;
  // Writers: create / close random ids; one of them also sweeps.
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(w) * 7919 + 1);
      std::uint64_t ops = 0;
      // The sweeping writer runs at least until its first close_all, however short the scaled time.
      while (!stop.load(std::memory_order_relaxed) ||
             (w == 0 && ops < 20000)) {  // relaxed: see the declaration
        const std::string id = numbered("id-", rng() % kIds);
        stream_ref r;
        if (rng() % 2 == 0) {
          const status s = m.create(id, r);
          ASSERT_TRUE(s == status::ok || s == status::already_exists) << rill::to_string(s);
          if (s == status::ok) created.fetch_add(1, std::memory_order_relaxed);
        } else {
          const status s = m.close(id);
          ASSERT_TRUE(s == status::ok || s == status::not_found) << rill::to_string(s);
          if (s == status::ok) closed_by_id.fetch_add(1, std::memory_order_relaxed);
        }
        if (w == 0 && ++ops % 2000 == 0) {
          closed_by_sweep.fetch_add(m.cleanup_inactive(1ms), std::memory_order_relaxed);
          sweeps.fetch_add(1, std::memory_order_relaxed);
          if (ops % 20000 == 0) {
            closed_by_sweep.fetch_add(m.close_all(), std::memory_order_relaxed);
            close_alls.fetch_add(1, std::memory_order_relaxed);
          }
        }
      }
    });
  }
  // Readers: get, visit, handle lookups; use what they find, sometimes after it was closed.
  for (int rd = 0; rd < 2; ++rd) {
    threads.emplace_back([&, rd] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(rd) * 104729 + 3);
      std::vector<stream_ref> kept;
      std::uint64_t local_lookups = 0, local_found = 0;
      while (!stop.load(std::memory_order_relaxed)) {  // relaxed: see the declaration
        const std::string id = numbered("id-", rng() % kIds);
        stream_ref r;
        ++local_lookups;
        if (m.get(id, r) == status::ok) {
          ++local_found;
          EXPECT_EQ(r.id(), id);
          const status s = r->try_send(rill::event::keep_alive());
          EXPECT_TRUE(s == status::ok || s == status::full || s == status::closed) << rill::to_string(s);
          rill::received ev;
          (void)r->try_receive(ev);
          stream_ref again;
          if (m.get(r.handle(), again) == status::ok) {
            EXPECT_EQ(again.get(), r.get());
          }
          if (kept.size() < 64) {
            kept.push_back(std::move(r));
          } else {
            kept[rng() % kept.size()] = std::move(r);  // drops a reference, maybe the last
          }
        }
        (void)m.visit(id, [&](rill::stream& s) {
          EXPECT_EQ(s.capacity(), 16u);
          (void)s.counters();
        });
      }
      lookups.fetch_add(local_lookups, std::memory_order_relaxed);  // relaxed: read after join()
      found.fetch_add(local_found, std::memory_order_relaxed);
      for (auto& r : kept) (void)r->try_send(rill::event::keep_alive());  // closed or open, never freed
    });
  }
  std::this_thread::sleep_for(duration);
  stop.store(true, std::memory_order_relaxed);  // relaxed: see the declaration
  for (auto& t : threads) t.join();

  // Relaxed: join() ordered every add (here and below).
  const std::uint64_t live = created.load(std::memory_order_relaxed) -
                             closed_by_id.load(std::memory_order_relaxed) -
                             closed_by_sweep.load(std::memory_order_relaxed);
  EXPECT_EQ(m.count(), live);
  EXPECT_GE(sweeps.load(std::memory_order_relaxed), 10u) << "cleanup_inactive raced the others";
  EXPECT_GE(close_alls.load(std::memory_order_relaxed), 1u) << "close_all raced the others";
  EXPECT_EQ(m.list().size(), live);
  EXPECT_EQ(m.list_info().size(), live);
  std::printf("[ stress   ] %llu creates, %llu closes, %llu swept, %llu lookups (%llu found), %zu live\n",
              static_cast<unsigned long long>(created.load(std::memory_order_relaxed)),
              static_cast<unsigned long long>(closed_by_id.load(std::memory_order_relaxed)),
              static_cast<unsigned long long>(closed_by_sweep.load(std::memory_order_relaxed)),
              static_cast<unsigned long long>(lookups.load(std::memory_order_relaxed)),
              static_cast<unsigned long long>(found.load(std::memory_order_relaxed)), m.count());
  EXPECT_EQ(m.close_all(), live);
  drain_reclamation(m);
  const rill::reclamation_counters c = m.reclamation();
  EXPECT_EQ(c.tables_reclaimed, c.tables_retired);
  EXPECT_EQ(c.entries_reclaimed, c.entries_retired);
  EXPECT_EQ(c.entries_retired, created.load(std::memory_order_relaxed));  // relaxed: after join()
}

TEST(ManagerStress, AMillionIdleStreams) {
  const std::uint64_t n = rill::test::scaled(1'000'000, 2000);
  rill::manager_options options;
  options.stream_defaults.capacity = 64;
  stream_manager m(options);
  std::vector<std::string> ids;
  ids.reserve(n);
  // 36-byte ids, the length of a UUID in text form.
  for (std::uint64_t i = 0; i < n; ++i) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "req-%08llx-0000-4000-8000-%012llx", static_cast<unsigned long long>(i),
                  static_cast<unsigned long long>(i * 2654435761u));
    ids.emplace_back(buf);
  }
  const long before = resident_bytes();
  {
    stream_ref r;
    for (const auto& id : ids) ASSERT_EQ(m.create(id, r), status::ok);
  }
  drain_reclamation(m);
  const long after = resident_bytes();
  ASSERT_EQ(m.count(), n);
  std::printf("[ memory   ] %llu idle streams: RSS grew %ld bytes, %.1f bytes per stream (entry + index + handle)\n",
              static_cast<unsigned long long>(n), after - before,
              static_cast<double>(after - before) / static_cast<double>(n));
  stream_ref r;
  for (const auto& id : ids) {
    ASSERT_EQ(m.get(id, r), status::ok);
    ASSERT_FALSE(r->allocated());
  }
  for (std::uint64_t i = 0; i < n; i += 2) ASSERT_EQ(m.close(ids[i]), status::ok);
  EXPECT_EQ(m.count(), n - (n + 1) / 2);
  for (std::uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(m.get(ids[i], r), i % 2 == 0 ? status::not_found : status::ok);
  }
  EXPECT_EQ(m.close_all(), n / 2);
  r.reset();
  drain_reclamation(m);
  const rill::reclamation_counters c = m.reclamation();
  EXPECT_EQ(c.entries_reclaimed, n);
  EXPECT_EQ(c.tables_reclaimed, c.tables_retired);
}

}  // namespace
