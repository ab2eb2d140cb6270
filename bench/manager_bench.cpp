// stream_manager microbenchmarks: lookup by id (with and without a reference count), by handle, and
// create+close pairs, at 1k and 64k streams (perf/manager_perf.cpp covers 1M streams, churn and memory).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "rill/manager.hpp"

namespace {

struct fixture {
  explicit fixture(std::size_t streams) {
    rill::manager_options options;
    options.stream_defaults.capacity = 64;
    manager = std::make_unique<rill::stream_manager>(options);
    for (std::size_t i = 0; i < streams; ++i) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "sess-%08zx-0000-4000-8000-%012zx", i, i * 2654435761u);
      ids.emplace_back(buf);
      rill::stream_ref r;
      if (manager->create(ids.back(), r) != rill::status::ok) std::abort();
      handles.push_back(r.handle());
    }
    std::mt19937_64 rng(7);
    order.resize(4096);
    for (auto& o : order) o = static_cast<std::uint32_t>(rng() % streams);
  }
  std::unique_ptr<rill::stream_manager> manager;
  std::vector<std::string> ids;
  std::vector<rill::stream_handle> handles;
  std::vector<std::uint32_t> order;
};

fixture& shared_fixture(std::size_t streams) {
  static fixture small(1000);
  static fixture large(65536);
  return streams <= 1000 ? small : large;
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
}
BENCHMARK(BM_get_by_id)->Arg(1000)->Arg(65536);

void BM_visit_by_id(benchmark::State& state) {
  fixture& f = shared_fixture(static_cast<std::size_t>(state.range(0)));
  std::size_t i = 0;
  for (auto _ : state) {
    const auto s = f.manager->visit(f.ids[f.order[i++ & 4095]], [](rill::stream& st) { benchmark::DoNotOptimize(&st); });
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_visit_by_id)->Arg(1000)->Arg(65536);

void BM_visit_by_handle(benchmark::State& state) {
  fixture& f = shared_fixture(static_cast<std::size_t>(state.range(0)));
  std::size_t i = 0;
  for (auto _ : state) {
    const auto s =
        f.manager->visit(f.handles[f.order[i++ & 4095]], [](rill::stream& st) { benchmark::DoNotOptimize(&st); });
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_visit_by_handle)->Arg(1000)->Arg(65536);

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
BENCHMARK(BM_create_close_pair)->Arg(1000)->Arg(65536);

}  // namespace

BENCHMARK_MAIN();
