// The stream registry: manager_lookup, create_close, memory_idle_stream; rill::stream_manager against the
// replaced design, a std::shared_mutex over a std::unordered_map of mutex + condition variable streams.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "harness.hpp"
#include "rill/manager.hpp"
#include "workload.hpp"

namespace rill_bench {
namespace {

// Gateway-like ids: a request id per stream.
std::string stream_id(const char* prefix, std::size_t i) {
  return std::string(prefix) + "req_" + std::to_string(i * 2654435761u % 1000000007u) + "_" + std::to_string(i);
}

// The replaced design's per-stream object: a Go buffered channel (capacity 100 in the measured Go system).
struct locked_stream {
  mutex_deque<bench_item> channel{100};
  std::string id;
};

class locked_map {
 public:
  // The stream is built before the exclusive lock, which covers only the insert (as the replaced Go
  // design's map insert does). try_emplace leaves `s` untouched when the id exists, so a duplicate's
  // stream is destroyed after the lock is released.
  bool create(const std::string& id) {
    auto s = std::make_shared<locked_stream>();
    s->id = id;
    std::unique_lock write(lock_);
    return map_.try_emplace(id, std::move(s)).second;
  }
  std::shared_ptr<locked_stream> get(const std::string& id) const {
    std::shared_lock read(lock_);
    const auto it = map_.find(id);
    return it == map_.end() ? nullptr : it->second;
  }
  bool close(const std::string& id) {
    std::shared_ptr<locked_stream> victim;  // destroyed outside the lock
    std::unique_lock write(lock_);
    const auto it = map_.find(id);
    if (it == map_.end()) return false;
    victim = std::move(it->second);
    map_.erase(it);
    return true;
  }
  std::size_t size() const {
    std::shared_lock read(lock_);
    return map_.size();
  }

 private:
  mutable std::shared_mutex lock_;
  std::unordered_map<std::string, std::shared_ptr<locked_stream>> map_;
};

// ---- manager_lookup ----

// One registry per implementation and size, built on first use and shared by the churn=false/true cases.
struct populated {
  std::vector<std::string> ids;  // lookup order: shuffled
  std::unique_ptr<rill::stream_manager> manager;
  std::vector<rill::stream_ref> refs;
  std::unique_ptr<locked_map> map;
};

std::shared_ptr<populated> registry_of(bool rill_side, std::size_t streams) {
  static std::map<std::pair<bool, std::size_t>, std::shared_ptr<populated>> cache;
  auto& slot = cache[{rill_side, streams}];
  if (slot) return slot;
  for (auto& [key, value] : cache) {
    if (key.second != streams) value.reset();  // keep one size alive at a time
  }
  auto p = std::make_shared<populated>();
  p->ids.reserve(streams);
  for (std::size_t i = 0; i < streams; ++i) p->ids.push_back(stream_id("", i));
  if (rill_side) {
    p->manager = std::make_unique<rill::stream_manager>();
    rill::stream_ref ref;
    for (const auto& id : p->ids) {
      if (p->manager->create(id, ref) != rill::status::ok) throw verification_error("manager_lookup: create failed");
    }
  } else {
    p->map = std::make_unique<locked_map>();
    for (const auto& id : p->ids) {
      if (!p->map->create(id)) throw verification_error("manager_lookup: map create failed");
    }
  }
  std::mt19937_64 shuffle(42);
  std::shuffle(p->ids.begin(), p->ids.end(), shuffle);
  slot = p;
  return p;
}

// Looks ids up on cpu0 until the run ends; with churn, cpu1 creates and closes other ids without pause
// (unpaced: each implementation's writer churns as fast as its registry lets it, and the run reports that
// rate as churn_ops_per_sec, create + close pairs per second, beside the lookups).
template <class Lookup, class Create, class Close>
run_result lookup_run(const run_config& cfg, const std::vector<std::string>& ids, bool churn, Lookup lookup,
                      Create create, Close close) {
  std::uint64_t lookups = 0, churned = 0;
  steady::time_point start, end, churn_start, churn_end;
  failure_note failure;
  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>& stop) {
    std::uint64_t n = 0;
    std::size_t next = 0;
    start = steady::now();
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a time-out flag, orders nothing
      for (int k = 0; k < 64; ++k) {
        if (!lookup(ids[next])) [[unlikely]] failure.fail("lookup of " + ids[next] + " failed");
        if (++next == ids.size()) next = 0;
      }
      n += 64;
    }
    end = steady::now();
    lookups = n;
  });
  if (churn) {
    workers.emplace_back([&](const std::atomic<bool>& stop) {
      std::uint64_t n = 0;
      churn_start = steady::now();
      while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a time-out flag, orders nothing
        const std::string id = stream_id("churn_", n % 4096);
        if (!create(id) || !close(id)) [[unlikely]] failure.fail("churn create/close of " + id + " failed");
        ++n;
      }
      churn_end = steady::now();
      churned = n;
    });
  }
  run_workers(std::move(workers), cfg.run_time);
  failure.throw_if_failed("manager_lookup");
  run_result r;
  r.events_per_sec = static_cast<double>(lookups) / seconds_between(start, end);
  if (churn) r.churn_ops_per_sec = static_cast<double>(churned) / seconds_between(churn_start, churn_end);
  return r;
}

std::function<run_result(const run_config&)> rill_lookup(std::size_t streams, bool churn) {
  return [=](const run_config& cfg) {
    auto p = registry_of(true, streams);
    rill::stream_manager& m = *p->manager;
    rill::stream_ref found, made;
    return lookup_run(
        cfg, p->ids, churn,
        [&](const std::string& id) { return m.get(id, found) == rill::status::ok && found.id() == id; },
        [&](const std::string& id) {
          const bool ok = m.create(id, made) == rill::status::ok;
          made.reset();
          return ok;
        },
        [&](const std::string& id) { return m.close(id) == rill::status::ok; });
  };
}

std::function<run_result(const run_config&)> map_lookup(std::size_t streams, bool churn) {
  return [=](const run_config& cfg) {
    auto p = registry_of(false, streams);
    locked_map& m = *p->map;
    return lookup_run(
        cfg, p->ids, churn,
        [&](const std::string& id) {
          const auto s = m.get(id);
          return s != nullptr && s->id == id;
        },
        [&](const std::string& id) { return m.create(id); }, [&](const std::string& id) { return m.close(id); });
  };
}

// ---- create_close ----

template <class Create, class Close, class Count>
run_result create_close_run(const run_config& cfg, Create create, Close close, Count count) {
  const std::size_t before = count();
  std::uint64_t pairs = 0;
  steady::time_point start, end;
  failure_note failure;
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < 4096; ++i) ids.push_back(stream_id("cc_", i));
  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>& stop) {
    std::uint64_t n = 0;
    start = steady::now();
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a time-out flag, orders nothing
      const std::string& id = ids[n & 4095];
      if (!create(id) || !close(id)) [[unlikely]] failure.fail("create/close of " + id + " failed");
      ++n;
    }
    end = steady::now();
    pairs = n;
  });
  run_workers(std::move(workers), cfg.run_time);
  failure.throw_if_failed("create_close");
  if (count() != before) throw verification_error("create_close: streams left behind");
  run_result r;
  r.events_per_sec = static_cast<double>(pairs) / seconds_between(start, end);
  return r;
}

run_result rill_create_close(const run_config& cfg) {
  rill::stream_manager m;
  rill::stream_ref ref;
  return create_close_run(
      cfg,
      [&](const std::string& id) {
        const bool ok = m.create(id, ref) == rill::status::ok;
        ref.reset();
        return ok;
      },
      [&](const std::string& id) { return m.close(id) == rill::status::ok; }, [&] { return m.count(); });
}

run_result map_create_close(const run_config& cfg) {
  locked_map m;
  return create_close_run(
      cfg, [&](const std::string& id) { return m.create(id); }, [&](const std::string& id) { return m.close(id); },
      [&] { return m.size(); });
}

// ---- memory_idle_stream ----
// RSS growth over n idle streams, each measured in a fresh child process (measure_in_child says why).

std::size_t idle_count(const run_config& cfg) { return cfg.quick ? 100000 : 1000000; }

std::vector<std::string> idle_ids(std::size_t n) {
  std::vector<std::string> ids;
  ids.reserve(n);
  for (std::size_t i = 0; i < n; ++i) ids.push_back(stream_id("", i));
  return ids;
}

std::size_t parse_count(const std::string& arg) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(arg.c_str(), &end, 10);
  if (arg.empty() || *end != '\0' || n == 0 || n > (1ull << 32)) {
    throw verification_error("memory_idle_stream: bad stream count \"" + arg + "\"");
  }
  return static_cast<std::size_t>(n);
}

// RSS growth per stream between two readings (negative if the process shrank, so that it shows).
double rss_growth_per_stream(std::size_t before, std::size_t after, std::size_t streams) {
  if (before == 0 || after == 0) throw verification_error("memory_idle_stream: /proc/self/statm unreadable");
  return (static_cast<double>(after) - static_cast<double>(before)) / static_cast<double>(streams);
}

// Child side: bytes of RSS each of `arg` idle streams adds (the ids are built before the first reading).
double rill_idle_rss(const std::string& arg) {
  const std::vector<std::string> ids = idle_ids(parse_count(arg));
  const std::size_t before = resident_bytes();
  auto m = std::make_unique<rill::stream_manager>();
  rill::stream_ref ref;
  for (const auto& id : ids) {
    if (m->create(id, ref) != rill::status::ok) throw verification_error("memory_idle_stream: create failed");
  }
  ref.reset();
  m->reclaim();
  const std::size_t after = resident_bytes();
  if (m->count() != ids.size()) throw verification_error("memory_idle_stream: streams missing");
  return rss_growth_per_stream(before, after, ids.size());
}

double map_idle_rss(const std::string& arg) {
  const std::vector<std::string> ids = idle_ids(parse_count(arg));
  const std::size_t before = resident_bytes();
  auto m = std::make_unique<locked_map>();
  for (const auto& id : ids) {
    if (!m->create(id)) throw verification_error("memory_idle_stream: map create failed");
  }
  const std::size_t after = resident_bytes();
  if (m->size() != ids.size()) throw verification_error("memory_idle_stream: map streams missing");
  return rss_growth_per_stream(before, after, ids.size());
}

// Parent side: one run is one child process.
std::function<run_result(const run_config&)> idle_in_child(const char* measurement) {
  return [measurement](const run_config& cfg) {
    run_result r;
    r.bytes = measure_in_child(measurement, std::to_string(idle_count(cfg)));
    return r;
  };
}

}  // namespace

std::vector<scenario_entry> manager_scenarios() {
  std::vector<scenario_entry> out;
  out.push_back({"manager_lookup", [](const run_config&) {
                   std::vector<scenario_case> cases;
                   for (const std::size_t streams : {std::size_t{1000}, std::size_t{1000000}}) {
                     for (const bool churn : {false, true}) {
                       scenario_case sc{"manager_lookup",
                                        {{"streams", std::to_string(streams)}, {"churn", churn ? "true" : "false"}},
                                        metric::throughput,
                                        {},
                                        ""};
                       sc.one_thread = !churn;
                       sc.impls = {{"rill", {}, rill_lookup(streams, churn)},
                                   {"shared_mutex_map", {}, map_lookup(streams, churn)}};
                       sc.note =
                           "get(id) with a reference (rill::stream_ref / std::shared_ptr) on cpu0 over "
                           "shuffled ids; churn: cpu1 creates and closes other ids nonstop (unpaced; "
                           "its pairs/s in the churn column); lookups/s";
                       cases.push_back(std::move(sc));
                     }
                   }
                   return cases;
                 }});
  out.push_back({"create_close", [](const run_config&) {
                   scenario_case sc{"create_close", {}, metric::throughput, {}, ""};
                   sc.impls = {{"rill", {}, rill_create_close}, {"shared_mutex_map", {}, map_create_close}};
                   sc.one_thread = true;
                   sc.note = "create + close pairs/s on one thread (cpu0)";
                   return std::vector<scenario_case>{sc};
                 }});
  out.push_back({"memory_idle_stream", [](const run_config& cfg) {
                   scenario_case sc{"memory_idle_stream", {{"streams", std::to_string(idle_count(cfg))}},
                                    metric::bytes, {}, ""};
                   sc.impls = {{"rill", {}, idle_in_child("idle_stream_rss.rill")},
                               {"shared_mutex_map", {}, idle_in_child("idle_stream_rss.shared_mutex_map")}};
                   sc.one_thread = true;
                   sc.note =
                       "RSS growth per idle stream, index and id included; each run in a fresh process "
                       "(rill-bench --child)";
                   return std::vector<scenario_case>{sc};
                 }});
  return out;
}

std::vector<child_measurement> manager_child_measurements() {
  return {{"idle_stream_rss.rill", rill_idle_rss}, {"idle_stream_rss.shared_mutex_map", map_idle_rss}};
}

}  // namespace rill_bench
