// The processing pipeline: pipeline_overhead, the cost per event of rill::pipeline_runner::process with one
// kind filter and one callback, against the same filter and std::function call written by hand; and
// pipeline_dispatch, the same work end to end through a stream and a pinned dispatcher worker.
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "rill/pipeline.hpp"
#include "workload.hpp"

namespace rill_bench {
namespace {

// Pool: text deltas, every 8th event a keep_alive the filter drops.
const std::vector<rill::event>& pipeline_pool() {
  static const std::vector<rill::event> pool = [] {
    std::vector<rill::event> v;
    v.reserve(kPoolSize);
    for (std::size_t i = 0; i < kPoolSize; ++i) {
      v.push_back(i % 8 == 7 ? rill::event::keep_alive()
                             : rill::event::text_delta(static_cast<std::uint16_t>(i), token_text(i)));
    }
    return v;
  }();
  return pool;
}

constexpr std::uint64_t kPassedPerPool = kPoolSize - kPoolSize / 8;

std::uint64_t checksum_per_pool() {
  std::uint64_t sum = 0;
  for (const auto& e : pipeline_pool()) {
    if (e.kind() == rill::event_kind::text_delta) sum += e.index();
  }
  return sum;
}

// Runs `process(e)` over the pool on cpu0 until the time budget ends; checks the callback saw exactly the
// events passing the filter, with their checksum.
template <class Make>
run_result overhead_run(const run_config& cfg, Make make) {
  std::uint64_t calls = 0, sum = 0, passes = 0;
  auto process = make(calls, sum);
  steady::time_point start, end;
  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>& stop) {
    const auto& pool = pipeline_pool();
    start = steady::now();
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a time-out flag, orders nothing
      for (const auto& e : pool) process(e);
      ++passes;
    }
    end = steady::now();
  });
  run_workers(std::move(workers), cfg.run_time);
  if (calls != passes * kPassedPerPool || sum != passes * checksum_per_pool()) {
    throw verification_error("pipeline_overhead: callback saw " + std::to_string(calls) + " events, expected " +
                             std::to_string(passes * kPassedPerPool));
  }
  run_result r;
  r.events_per_sec = static_cast<double>(passes * kPoolSize) / seconds_between(start, end);
  return r;
}

run_result rill_overhead(const run_config& cfg) {
  rill::pipeline p;
  std::uint64_t* calls_out = nullptr;
  std::uint64_t* sum_out = nullptr;
  p.subscribe({"bench", {rill::event_kind::text_delta}}, [&](const rill::enriched_event& en) {
    ++*calls_out;
    *sum_out += en.e.index();
  });
  rill::pipeline_runner runner(p);
  rill::pipeline_stream stream;
  return overhead_run(cfg, [&](std::uint64_t& calls, std::uint64_t& sum) {
    calls_out = &calls;
    sum_out = &sum;
    return [&](const rill::event& e) { runner.process(e, stream); };
  });
}

// The floor: the same kind test and one std::function call per passing event, no pipeline.
run_result direct_overhead(const run_config& cfg) {
  std::uint64_t* calls_out = nullptr;
  std::uint64_t* sum_out = nullptr;
  const rill::kind_set kinds{rill::event_kind::text_delta};
  const std::function<void(const rill::event&)> callback = [&](const rill::event& e) {
    ++*calls_out;
    *sum_out += e.index();
  };
  return overhead_run(cfg, [&](std::uint64_t& calls, std::uint64_t& sum) {
    calls_out = &calls;
    sum_out = &sum;
    return [&](const rill::event& e) {
      if (kinds.contains(e.kind())) callback(e);
    };
  });
}

// ---- pipeline_dispatch: producer (cpu0) -> stream -> consumer (cpu1) running a filter and a callback ----

// Sends the pool through `s` from cpu0 until the time budget ends, closes it, and waits for `consumed()`;
// the rate counts events from the first send until the consumer has handled the last one.
template <class Start, class Finish>
run_result dispatch_run(const run_config& cfg, rill::stream& s, std::uint64_t& calls, std::uint64_t& sum,
                        Start start_consumer, Finish wait_consumed) {
  std::uint64_t sent = 0, passed = 0, expected_sum = 0;
  steady::time_point start, end;
  failure_note failure;
  start_consumer();
  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>& stop) {
    const auto& pool = pipeline_pool();
    start = steady::now();
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a time-out flag, orders nothing
      for (const auto& e : pool) {
        if (s.send(e) != rill::status::ok) [[unlikely]] failure.fail("send failed");
        if (e.kind() == rill::event_kind::text_delta) {
          ++passed;
          expected_sum += e.index();
        }
      }
      sent += pool.size();
    }
    s.close();
    wait_consumed();
    end = steady::now();
  });
  run_workers(std::move(workers), cfg.run_time, {0});
  failure.throw_if_failed("pipeline_dispatch");
  if (calls != passed || sum != expected_sum) {
    throw verification_error("pipeline_dispatch: callback saw " + std::to_string(calls) + " events, expected " +
                             std::to_string(passed));
  }
  run_result r;
  r.events_per_sec = static_cast<double>(sent) / seconds_between(start, end);
  return r;
}

run_result rill_dispatch(const run_config& cfg) {
  std::uint64_t calls = 0, sum = 0;
  rill::pipeline p;
  p.subscribe({"bench", {rill::event_kind::text_delta}}, [&](const rill::enriched_event& en) {
    ++calls;
    sum += en.e.index();
  });
  rill::dispatcher_options options;
  options.workers = 1;
  options.cpus = {1};
  rill::dispatcher d(p, options);
  rill::stream s;
  // wait_idle() orders the worker's writes to calls/sum before the checks (dispatcher [D5]/[D6]).
  return dispatch_run(
      cfg, s, calls, sum, [&] { d.attach(s, rill::stream_context{}); }, [&] { d.wait_idle(); });
}

// The floor: a plain consumer thread on cpu1 draining the same stream with the same test and std::function.
run_result plain_dispatch(const run_config& cfg) {
  std::uint64_t calls = 0, sum = 0;
  const rill::kind_set kinds{rill::event_kind::text_delta};
  const std::function<void(const rill::event&)> callback = [&](const rill::event& e) {
    ++calls;
    sum += e.index();
  };
  rill::stream s;
  std::thread consumer;
  return dispatch_run(
      cfg, s, calls, sum,
      [&] {
        consumer = std::thread([&] {
          pin_this_thread(1);
          auto handle = [&](const rill::event& e, bool) {
            if (kinds.contains(e.kind())) callback(e);
          };
          while (s.drain_until(handle, 256, rill::stream::time_point::max()) == rill::status::ok) {
          }
        });
      },
      [&] { consumer.join(); });  // join orders the consumer's writes before the checks
}

}  // namespace

std::vector<scenario_entry> pipeline_scenarios() {
  std::vector<scenario_entry> out;
  out.push_back({"pipeline_overhead", [](const run_config&) {
                   scenario_case sc{"pipeline_overhead", {}, metric::throughput, {}, ""};
                   sc.impls = {{"rill", {}, rill_overhead}, {"direct_call", {}, direct_overhead}};
                   sc.one_thread = true;
                   sc.note = "pipeline_runner::process with one kind filter (7/8 of events pass) and one callback, "
                             "one thread (cpu0); ns per event = 1e9 / rate; direct_call: the same test and "
                             "std::function call by hand";
                   return std::vector<scenario_case>{sc};
                 }});
  out.push_back({"pipeline_dispatch", [](const run_config&) {
                   scenario_case sc{"pipeline_dispatch", {}, metric::throughput, {}, ""};
                   sc.impls = {{"rill", {}, rill_dispatch}, {"plain_consumer", {}, plain_dispatch}};
                   sc.note = "producer on cpu0 sends through a default stream; a dispatcher worker pinned to cpu1 "
                             "runs one kind filter and one callback; plain_consumer: a thread on cpu1 draining "
                             "with the same test and std::function; events/s until the last is handled";
                   return std::vector<scenario_case>{sc};
                 }});
  return out;
}

}  // namespace rill_bench
