// stream_manager microbenchmarks: lookup by id (with and without a reference count), hit and miss, by
// handle, and create+close pairs, at 1k, 100k and 1M streams (perf/manager_perf.cpp and rill-bench's
// manager_lookup add a concurrent writer and memory).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "rill/manager.hpp"

namespace {

// A session id shaped like a UUID; `tag` 0 for the ids a fixture creates, 1 for ids it never creates.
std::string session_id(std::size_t i, unsigned tag) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "sess-%08zx-000%u-4000-8000-%012zx", i, tag, i * 2654435761u);
  return buf;
}

// `streams` live streams, plus as many ids of the same shape that are not in the manager (for misses).
// Lookups walk a shuffled window of 4096 of them, so at 1M streams most lookups miss the CPU caches.
struct fixture {
  explicit fixture(std::size_t streams) {
    rill::manager_options options;
    options.stream_defaults.capacity = 64;
    manager = std::make_unique<rill::stream_manager>(options);
    ids.reserve(streams);
    for (std::size_t i = 0; i < streams; ++i) {
      ids.push_back(session_id(i, 0));
      rill::stream_ref r;
      if (manager->create(ids.back(), r) != rill::status::ok) std::abort();
      handles.push_back(r.handle());
    }
    std::mt19937_64 rng(7);
    order.resize(4096);
    for (auto& o : order) o = static_cast<std::uint32_t>(rng() % streams);
    for (std::uint32_t o : order) missing_ids.push_back(session_id(o, 1));
  }
  std::unique_ptr<rill::stream_manager> manager;
  std::vector<std::string> ids;
  std::vector<rill::stream_handle> handles;
  std::vector<std::uint32_t> order;
  std::vector<std::string> missing_ids;  // missing_ids[k] looks like ids[order[k]] but was never created
};

// One fixture per size, built on first use and kept for the process (a 1M-stream fixture takes a second).
// Locked: the two-thread benchmarks call this from both threads, and may be the first to (run alone).
fixture& shared_fixture(std::size_t streams) {
  static std::mutex guard;
  static std::map<std::size_t, std::unique_ptr<fixture>> fixtures;
  std::lock_guard lock(guard);
  auto& f = fixtures[streams];
  if (!f) f = std::make_unique<fixture>(streams);
  return *f;
}

void stream_counts(benchmark::internal::Benchmark* b) {
  b->Arg(1000)->Arg(100000)->Arg(1000000);
}

void BM_get_by_id(benchmark::State& state) {
  fixture& f = shared_fixture(static_cast<std::size_t>(state.range(0)));
  rill::stream_ref r;
  std::size_t i = 0;
  for (auto _ : state) {
    const auto s = f.manager->get(f.ids[f.order[i++ & 4095]], r);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(r.get());
  }
  if (r.get() == nullptr) state.SkipWithError("a lookup of a live stream missed");
}
BENCHMARK(BM_get_by_id)->Apply(stream_counts);

// A lookup of an id that is not there: the same hash and probe, ending in not_found.
void BM_get_by_id_miss(benchmark::State& state) {
  fixture& f = shared_fixture(static_cast<std::size_t>(state.range(0)));
  rill::stream_ref r;
  std::size_t i = 0, found = 0;
  for (auto _ : state) {
    const auto s = f.manager->get(f.missing_ids[i++ & 4095], r);
    benchmark::DoNotOptimize(s);
    found += s == rill::status::ok ? 1 : 0;
  }
  if (found != 0) state.SkipWithError("a lookup of a missing id found a stream");
}
BENCHMARK(BM_get_by_id_miss)->Apply(stream_counts);

void BM_visit_by_id(benchmark::State& state) {
  fixture& f = shared_fixture(static_cast<std::size_t>(state.range(0)));
  std::size_t i = 0;
  for (auto _ : state) {
    const auto s = f.manager->visit(f.ids[f.order[i++ & 4095]], [](rill::stream& st) { benchmark::DoNotOptimize(&st); });
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_visit_by_id)->Apply(stream_counts);

void BM_visit_by_handle(benchmark::State& state) {
  fixture& f = shared_fixture(static_cast<std::size_t>(state.range(0)));
  std::size_t i = 0;
  for (auto _ : state) {
    const auto s =
        f.manager->visit(f.handles[f.order[i++ & 4095]], [](rill::stream& st) { benchmark::DoNotOptimize(&st); });
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_visit_by_handle)->Apply(stream_counts);

void BM_get_by_id_hot_stream(benchmark::State& state) {
  fixture& f = shared_fixture(1000);
  rill::stream_ref r;
  for (auto _ : state) {
    const auto s = f.manager->get(f.ids[0], r);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_get_by_id_hot_stream)->Threads(1)->Threads(2);

void BM_visit_by_id_hot_stream(benchmark::State& state) {
  fixture& f = shared_fixture(1000);
  for (auto _ : state) {
    const auto s = f.manager->visit(f.ids[0], [](rill::stream& st) { benchmark::DoNotOptimize(&st); });
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_visit_by_id_hot_stream)->Threads(1)->Threads(2);

void BM_create_close_pair(benchmark::State& state) {
  fixture& f = shared_fixture(static_cast<std::size_t>(state.range(0)));
  std::vector<std::string> ids;
  for (int i = 0; i < 1024; ++i) ids.push_back("pair-" + std::to_string(i) + "-0000-4000-8000-000000000000");
  std::size_t i = 0;
  rill::stream_ref r;
  for (auto _ : state) {
    const std::string& id = ids[i++ & 1023];
    if (f.manager->create(id, r) != rill::status::ok || f.manager->close(id) != rill::status::ok) {
      state.SkipWithError("create/close failed");
      break;
    }
  }
}
BENCHMARK(BM_create_close_pair)->Apply(stream_counts);

}  // namespace

BENCHMARK_MAIN();
