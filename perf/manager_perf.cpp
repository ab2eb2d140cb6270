// manager_perf: stream_manager lookup cost (with and without concurrent churn), create+close throughput and
// memory per idle stream, side by side with the design rill replaces (std::shared_mutex over
// std::unordered_map<std::string, std::shared_ptr<stream>>).
//
//   manager_perf [--streams 1000,1000000] [--lookups N]
//
// Last, "lookup + send": a producer that looks its stream up before each send, against one that looks up
// another stream, while the consumer drains on the other CPU (see lookup_then_send()).
//
// Lookups walk a shuffled list of existing ids (random order, so 1M streams miss the cache as a gateway
// would). "churn" runs a second thread that creates and closes other streams without pause while the
// first thread looks up. Each figure is the median of 5 runs; absolute numbers drift on a shared VM, so
// compare within one run.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "harness.hpp"
#include "rill/detail/layout.hpp"
#include "rill/manager.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long total = 0, resident = 0;
  statm >> total >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

std::string uuid_like(const char* prefix, std::uint64_t i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%08llx-0000-4000-8000-%012llx", prefix, static_cast<unsigned long long>(i),
                static_cast<unsigned long long>(i * 2654435761u));
  return buf;
}

// The replaced design: a reader-writer lock over a hash map of shared pointers.
class locked_map {
 public:
  bool create(const std::string& id, const rill::stream_options& o) {
    auto s = std::make_shared<rill::stream>(o);
    std::unique_lock lock(mutex_);
    return map_.emplace(id, std::move(s)).second;
  }
  // Takes the caller's std::string: no copy of the id per lookup (rill's get takes a string_view).
  std::shared_ptr<rill::stream> get(const std::string& id) const {
    std::shared_lock lock(mutex_);
    auto it = map_.find(id);
    return it == map_.end() ? nullptr : it->second;
  }
  bool close(const std::string& id) {
    std::shared_ptr<rill::stream> s;
    {
      std::unique_lock lock(mutex_);
      auto it = map_.find(id);
      if (it == map_.end()) return false;
      s = std::move(it->second);
      map_.erase(it);
    }
    s->close();
    return true;
  }

 private:
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<rill::stream>> map_;
};

template <class Fn>
double median_ns_per_op(std::size_t ops, Fn&& fn) {
  std::vector<double> runs;
  for (int run = 0; run < 5; ++run) {
    const auto start = clock_type::now();
    fn();
    const auto stop = clock_type::now();
    runs.push_back(static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(stop - start).count()) /
                   static_cast<double>(ops));
  }
  std::sort(runs.begin(), runs.end());
  return runs[2];
}

struct churner {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> pairs{0};
  std::thread thread;
  template <class Fn>
  void start(Fn fn) {
    stop.store(false, std::memory_order_relaxed);  // before the thread starts: its creation orders it
    thread = std::thread([this, fn]() mutable {
      std::uint64_t i = 0;
      while (!stop.load(std::memory_order_relaxed)) fn(i++);  // a stop request only; join() orders the rest
      pairs.fetch_add(i, std::memory_order_relaxed);          // read after join(), which orders it
    });
  }
  void finish() {
    stop.store(true, std::memory_order_relaxed);  // a request only; join() below orders everything after
    thread.join();
  }
};

void run(std::size_t streams, std::size_t lookups) {
  rill::manager_options options;
  options.stream_defaults.capacity = 64;
  std::vector<std::string> ids;
  ids.reserve(streams);
  for (std::size_t i = 0; i < streams; ++i) ids.push_back(uuid_like("sess-", i));
  std::vector<std::uint32_t> order(lookups);
  std::mt19937_64 rng(42);
  for (auto& o : order) o = static_cast<std::uint32_t>(rng() % streams);

  const long rss_before = resident_bytes();
  rill::stream_manager m(options);
  {
    rill::stream_ref r;
    for (const auto& id : ids) {
      if (m.create(id, r) != rill::status::ok) std::abort();
    }
  }
  for (int i = 0; i < 4; ++i) m.reclaim();
  const long rss_after = resident_bytes();
  std::vector<rill::stream_handle> handles;
  handles.reserve(streams);
  for (const auto& id : ids) handles.push_back(m.handle_of(id));

  const long baseline_rss_before = resident_bytes();
  locked_map baseline;
  for (const auto& id : ids) baseline.create(id, options.stream_defaults);
  const long baseline_rss_after = resident_bytes();

  std::printf("\n== %zu streams (ids %zu bytes, %zu shards) ==\n", streams, ids[0].size(), m.shard_count());
  std::printf(
      "RSS growth for %zu idle streams: %.1f bytes/stream in the manager (entries with their ids and the "
      "index), %.1f in the locked map (its nodes, ids and shared_ptr<stream>)\n",
      streams, static_cast<double>(rss_after - rss_before) / static_cast<double>(streams),
      static_cast<double>(baseline_rss_after - baseline_rss_before) / static_cast<double>(streams));

  std::uint64_t sink = 0;
  auto get_loop = [&] {
    rill::stream_ref r;
    for (std::uint32_t i : order) {
      if (m.get(ids[i], r) != rill::status::ok) std::abort();
      sink += r->capacity();
    }
  };
  auto visit_loop = [&] {
    for (std::uint32_t i : order) {
      if (m.visit(ids[i], [&](rill::stream& s) { sink += s.capacity(); }) != rill::status::ok) std::abort();
    }
  };
  auto handle_loop = [&] {
    for (std::uint32_t i : order) {
      if (m.visit(handles[i], [&](rill::stream& s) { sink += s.capacity(); }) != rill::status::ok) std::abort();
    }
  };
  auto handle_get_loop = [&] {
    rill::stream_ref r;
    for (std::uint32_t i : order) {
      if (m.get(handles[i], r) != rill::status::ok) std::abort();
      sink += r->capacity();
    }
  };
  auto locked_loop = [&] {
    for (std::uint32_t i : order) {
      auto s = baseline.get(ids[i]);
      if (!s) std::abort();
      sink += s->capacity();
    }
  };

  struct row {
    const char* name;
    std::function<void()> loop;
  };
  const row rows[] = {{"get(id) -> stream_ref", get_loop},
                      {"visit(id)  (no refcount)", visit_loop},
                      {"get(handle) -> stream_ref", handle_get_loop},
                      {"visit(handle)", handle_loop},
                      {"shared_mutex+unordered_map", locked_loop}};

  std::printf("%-30s %12s %12s\n", "lookup", "quiet ns/op", "churn ns/op");
  for (const row& r : rows) {
    const double quiet = median_ns_per_op(lookups, r.loop);
    churner churn;
    const bool is_baseline = &r == &rows[4];
    if (is_baseline) {
      churn.start([&](std::uint64_t i) {
        const std::string id = uuid_like("churn-", i);
        baseline.create(id, options.stream_defaults);
        baseline.close(id);
      });
    } else {
      churn.start([&](std::uint64_t i) {
        const std::string id = uuid_like("churn-", i);
        rill::stream_ref s;
        (void)m.create(id, s);
        (void)m.close(id);
      });
    }
    const double churned = median_ns_per_op(lookups, r.loop);
    churn.finish();
    std::printf(
        "%-30s %12.1f %12.1f   (churn thread: %llu create+close pairs meanwhile)\n", r.name, quiet, churned,
        static_cast<unsigned long long>(churn.pairs.load(std::memory_order_relaxed)));  // after join()
  }

  // Two threads hammering the same stream: the shared refcount line bounces, visit() touches no shared line.
  for (int variant = 0; variant < 2; ++variant) {
    std::atomic<bool> go{false};
    std::atomic<std::uint64_t> total_ns{0};
    std::atomic<std::uint64_t> hot_sink{0};  // both threads add to it (a plain sink here was a data race)
    const std::size_t per_thread = lookups / 2;
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&] {
        while (!go.load(std::memory_order_acquire)) {  // pairs with the release below: a start line only
        }
        std::uint64_t local = 0;
        rill::stream_ref r;
        const auto start = clock_type::now();
        for (std::size_t i = 0; i < per_thread; ++i) {
          if (variant == 0) {
            (void)m.get(ids[0], r);
            local += r->capacity();
          } else {
            (void)m.visit(ids[0], [&](rill::stream& s) { local += s.capacity(); });
          }
        }
        // Relaxed: read after join(), which orders both adds.
        total_ns.fetch_add(
            static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start).count()),
            std::memory_order_relaxed);
        hot_sink.fetch_add(local, std::memory_order_relaxed);
      });
    }
    go.store(true, std::memory_order_release);
    for (auto& t : threads) t.join();
    sink += hot_sink.load(std::memory_order_relaxed);
    std::printf("%-30s %12.1f ns/op per thread (2 threads, one hot stream)\n",
                variant == 0 ? "get(id) hot stream" : "visit(id) hot stream",
                static_cast<double>(total_ns.load(std::memory_order_relaxed)) / 2.0 /
                    static_cast<double>(per_thread));
  }

  // create + close pairs per second, single thread, with `streams` others present.
  const std::size_t pairs = std::min<std::size_t>(200'000, lookups);
  std::vector<std::string> churn_ids;
  churn_ids.reserve(pairs);
  for (std::size_t i = 0; i < pairs; ++i) churn_ids.push_back(uuid_like("pair-", i));
  const double pair_ns = median_ns_per_op(pairs, [&] {
    rill::stream_ref s;
    for (const auto& id : churn_ids) {
      if (m.create(id, s) != rill::status::ok || m.close(id) != rill::status::ok) std::abort();
    }
  });
  const double locked_pair_ns = median_ns_per_op(pairs, [&] {
    for (const auto& id : churn_ids) {
      if (!baseline.create(id, options.stream_defaults) || !baseline.close(id)) std::abort();
    }
  });
  std::printf("create+close: %.0f ns/pair = %.2f M pairs/s (locked map: %.0f ns/pair)\n", pair_ns, 1e3 / pair_ns,
              locked_pair_ns);
  const rill::reclamation_counters c = m.reclamation();
  std::printf("reclamation: %llu tables retired, %llu freed; %llu entries retired, %llu freed; %llu advance attempts\n",
              static_cast<unsigned long long>(c.tables_retired), static_cast<unsigned long long>(c.tables_reclaimed),
              static_cast<unsigned long long>(c.entries_retired), static_cast<unsigned long long>(c.entries_reclaimed),
              static_cast<unsigned long long>(c.advance_attempts));
  if (sink == 42) std::puts("");
}

// A gateway looks a stream up by id per upstream chunk and sends on it, while the stream's consumer runs on
// another core. "own": the producer (cpu0) looks up each stream right before it sends on it; "other": it
// looks up a stream of a second set (the same lookup cost) and sends on a reference it holds. The consumer
// (cpu1) drains the streams round-robin and checks every stream's sequence. Equal rates mean a lookup does
// not disturb the stream's own data path; before managed_stream kept its reference count off the control
// block's line, "own" ran at about half the rate of "other" whenever an entry's allocation put them on one
// line.
void lookup_then_send() {
  constexpr std::size_t kStreams = 64;
  constexpr std::uint64_t kEvents = 2'000'000;
  rill::manager_options options;
  options.stream_defaults.capacity = 4096;
  rill::stream_manager m(options);
  std::vector<std::string> own_ids, other_ids;
  std::vector<rill::stream_ref> held(kStreams);
  for (std::size_t k = 0; k < kStreams; ++k) {
    own_ids.push_back(uuid_like("send-", k));
    other_ids.push_back(uuid_like("look-", k));
    rill::stream_ref other;
    if (m.create(own_ids.back(), held[k]) != rill::status::ok ||
        m.create(other_ids.back(), other) != rill::status::ok)
      std::abort();
  }
  const rill::event e = rill::event::text_delta(0, "token");
  std::vector<std::uint64_t> next(kStreams, 0);  // each stream's next sequence number, across the runs
  const auto one_run = [&](bool own) {
    std::atomic<bool> ready{false}, sent_all{false};
    std::uint64_t taken = 0, out_of_order = 0;
    std::thread consumer([&] {
      rill_bench::pin_this_thread(1);
      ready.store(true, std::memory_order_release);  // pairs with the producer's acquire: pinned first
      rill::received r;
      // Drains until the producer is done and a whole sweep then finds nothing, so a lost event shows as
      // a short count instead of a consumer waiting for it forever.
      for (bool last_sweep = false;;) {
        bool found = false;
        for (std::size_t k = 0; k < kStreams; ++k) {
          if (held[k]->try_receive(r) == rill::status::ok) {  // one per visit, round-robin
            if (r->seq() != next[k]++) ++out_of_order;
            ++taken;
            found = true;
          }
        }
        if (found) continue;
        if (last_sweep) break;
        // Pairs with the producer's release after its last send: every event is visible to the next sweep.
        last_sweep = sent_all.load(std::memory_order_acquire);
        if (!last_sweep) rill::detail::cpu_relax();
      }
    });
    rill_bench::pin_this_thread(0);
    while (!ready.load(std::memory_order_acquire))
      rill::detail::cpu_relax();  // pairs with the consumer's release
    const auto start = clock_type::now();
    rill::stream_ref looked_up;
    for (std::uint64_t i = 0; i < kEvents; ++i) {
      const std::size_t k = i % kStreams;
      if (m.get(own ? own_ids[k] : other_ids[k], looked_up) != rill::status::ok) std::abort();
      rill::stream& target = own ? *looked_up : *held[k];
      while (target.try_send(e) != rill::status::ok) rill::detail::cpu_relax();  // full: the consumer drains
    }
    // After the last send: pairs with the consumer's acquire, so its final sweep sees every event.
    sent_all.store(true, std::memory_order_release);
    consumer.join();
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    if (taken != kEvents || out_of_order != 0) {
      std::fprintf(stderr, "manager_perf: %llu events sent, %llu taken, %llu out of order\n",
                   static_cast<unsigned long long>(kEvents), static_cast<unsigned long long>(taken),
                   static_cast<unsigned long long>(out_of_order));
      std::exit(1);
    }
    return static_cast<double>(kEvents) / seconds / 1e6;
  };
  std::vector<double> own_rates, other_rates;
  for (int run = 0; run < 5; ++run) {  // interleaved: own, other, own, other, ...
    own_rates.push_back(one_run(true));
    other_rates.push_back(one_run(false));
  }
  const double own_rate = rill_bench::median_of(own_rates), other_rate = rill_bench::median_of(other_rates);
  std::printf(
      "lookup + send (%zu streams, producer cpu0, consumer cpu1): own %.1f M events/s, other %.1f M "
      "events/s (own / other %.2f; medians of 5 interleaved runs)\n",
      kStreams, own_rate, other_rate, own_rate / other_rate);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes = {1000, 1'000'000};
  std::size_t lookups = 2'000'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--streams") == 0) {
      sizes.clear();
      for (char* p = argv[i + 1]; *p != '\0';) {
        sizes.push_back(std::strtoull(p, &p, 10));
        if (*p == ',') ++p;
      }
    } else if (std::strcmp(argv[i], "--lookups") == 0) {
      lookups = std::strtoull(argv[i + 1], nullptr, 10);
    }
  }
#if defined(__clang__)
  std::printf("manager_perf: clang %s", __clang_version__);
#else
  std::printf("manager_perf: g++ %s", __VERSION__);
#endif
  std::printf(", %u hardware threads, sizeof(rill::stream) = %zu, sizeof(managed_stream) = %zu + id\n",
              std::thread::hardware_concurrency(), sizeof(rill::stream), sizeof(rill::detail::managed_stream));
  for (std::size_t n : sizes) run(n, lookups);
  lookup_then_send();
  return 0;
}
