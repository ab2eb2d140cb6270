// fanout: one producer, N subscribers that each see every event. rill's multicast_stream (one ring, a cursor
// per subscriber, slow_reader::hold so nothing is lost) against the usual way without one: a queue per
// subscriber that the producer copies each event into (moodycamel ReaderWriterQueue; a mutex + condition
// variable deque, the Go design's channel per reader). Reports the producer's events/s and the slowest
// subscriber's lag (events published but not yet read, sampled every 64 events; the median over runs of
// each run's largest sample).
#include <readerwriterqueue/readerwriterqueue.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"
#include "rill/detail/layout.hpp"
#include "rill/multicast.hpp"
#include "workload.hpp"

namespace rill_bench {
namespace {

constexpr std::size_t kFanoutCapacity = 4096;  // ring (rill) or per-subscriber queue (peers) capacity
constexpr std::size_t kRwqFanoutSize = 4088;   // the ReaderWriterQueue argument closest to that capacity
constexpr std::uint64_t kNotDone = ~std::uint64_t{0};
constexpr std::uint64_t kLagSampleEvery = 64;

// ---- adapters: publish (producer), try_take / lag (subscriber i), in_order, finish ----

struct rill_fanout {
  rill_fanout(std::size_t subscribers, rill::clock_kind stamping)
      : stream(options(stamping)), subs(subscribers) {
    for (auto& s : subs) {
      if (stream.subscribe(s.sub, {rill::slow_reader::hold, rill::start_at::newest}) != rill::status::ok) {
        throw verification_error("fanout: subscribe failed");
      }
    }
  }
  static rill::multicast_options options(rill::clock_kind stamping) {
    rill::multicast_options o;
    o.capacity = kFanoutCapacity - 1;  // 4096 slots, as the peers' queues
    o.stamping = stamping;
    return o;
  }
  static const std::vector<rill::event>& pool() { return rill_pool(); }
  void publish(const rill::event& e, backoff& wait) noexcept {
    while (stream.try_send(e) != rill::status::ok) wait.pause();
    wait.reset();
  }
  const rill::event* try_take(std::size_t i) noexcept {
    return subs[i].sub.try_receive(subs[i].slot) == rill::status::ok ? &subs[i].slot : nullptr;
  }
  std::uint64_t lag(std::size_t i) const noexcept { return subs[i].sub.lag(); }
  static bool in_order(const rill::event& e, std::uint64_t k) noexcept {
    return e.seq() == k && e.index() == (k & kPoolMask);
  }
  void finish() noexcept { stream.close(); }

  struct alignas(rill::detail::kFalseSharingRange) subscriber {
    rill::subscription sub;
    rill::event slot;
  };
  rill::multicast_stream stream;
  std::vector<subscriber> subs;
};

// A queue per subscriber; the producer waits on each full queue in turn (nothing is lost, like hold).
struct rwq_fanout {
  explicit rwq_fanout(std::size_t subscribers) {
    for (std::size_t i = 0; i < subscribers; ++i) subs.push_back(std::make_unique<subscriber>());
  }
  static const std::vector<bench_item>& pool() { return item_pool(); }
  void publish(const bench_item& e, backoff& wait) noexcept {
    for (auto& s : subs) {
      while (!s->queue.try_enqueue(e)) wait.pause();
      wait.reset();
    }
  }
  const bench_item* try_take(std::size_t i) noexcept {
    return subs[i]->queue.try_dequeue(subs[i]->slot) ? &subs[i]->slot : nullptr;
  }
  std::uint64_t lag(std::size_t i) const noexcept { return subs[i]->queue.size_approx(); }
  static bool in_order(const bench_item& e, std::uint64_t k) noexcept { return e.seq == (k & kPoolMask); }
  void finish() noexcept {}

  struct alignas(rill::detail::kFalseSharingRange) subscriber {
    subscriber() {
      prefault([&] { return queue.try_enqueue(bench_item{}); }, [&] { return queue.try_dequeue(slot); });
    }
    // ReaderWriterQueue(n) allocates blocks of 511 usable slots: n = 4096 makes ten (4755-5110 elements
    // fit), this makes nine (4244-4599), the fewest that hold as many as rill's ring.
    moodycamel::ReaderWriterQueue<bench_item> queue{kRwqFanoutSize};
    alignas(rill::detail::kFalseSharingRange) bench_item slot;
  };
  std::vector<std::unique_ptr<subscriber>> subs;
};

struct mutex_fanout {
  explicit mutex_fanout(std::size_t subscribers) {
    for (std::size_t i = 0; i < subscribers; ++i) subs.push_back(std::make_unique<subscriber>());
  }
  static const std::vector<bench_item>& pool() { return item_pool(); }
  void publish(const bench_item& e, backoff&) {
    for (auto& s : subs) s->queue.push(e);  // waits for room, as a channel send
  }
  const bench_item* try_take(std::size_t i) {
    return subs[i]->queue.try_pop(subs[i]->slot) ? &subs[i]->slot : nullptr;
  }
  std::uint64_t lag(std::size_t i) { return subs[i]->queue.size(); }
  static bool in_order(const bench_item& e, std::uint64_t k) noexcept { return e.seq == (k & kPoolMask); }
  void finish() {
    for (auto& s : subs) s->queue.close();
  }

  struct alignas(rill::detail::kFalseSharingRange) subscriber {
    mutex_deque<bench_item> queue{kFanoutCapacity};
    alignas(rill::detail::kFalseSharingRange) bench_item slot;
  };
  std::vector<std::unique_ptr<subscriber>> subs;
};

// ---- the run ----

struct alignas(rill::detail::kFalseSharingRange) subscriber_tally {
  std::uint64_t received = 0, sum = 0, max_lag = 0;
};

template <class Fanout, class... Args>
run_result fanout_run(const run_config& cfg, std::size_t subscribers, Args... args) {
  auto f = std::make_unique<Fanout>(subscribers, args...);
  const auto& pool = Fanout::pool();
  (void)pool_checksum_sum(pool, 0);  // builds the expected-sum table before the clock
  std::atomic<std::uint64_t> produced{kNotDone};
  std::uint64_t producer_sum = 0;
  std::vector<subscriber_tally> tallies(subscribers);
  steady::time_point start, end;
  failure_note failure;
  const bool crowded = subscribers + 1 > 2;  // more threads than the two CPUs: waiting loops yield

  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>& stop) {
    backoff wait;
    wait.may_yield = crowded;
    std::uint64_t i = 0;
    start = steady::now();
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a time-out flag, orders nothing
      for (int k = 0; k < 256; ++k, ++i) f->publish(pool[i & kPoolMask], wait);
    }
    end = steady::now();
    producer_sum = pool_checksum_sum(pool, i);
    produced.store(i, std::memory_order_release);  // after the last publish; pairs with the subscribers' load
    f->finish();
  });
  for (std::size_t s = 0; s < subscribers; ++s) {
    workers.emplace_back([&, s](const std::atomic<bool>&) {
      backoff wait;
      wait.may_yield = crowded;
      subscriber_tally t;
      std::uint64_t k = 0;
      while (true) {
        const auto* e = f->try_take(s);
        if (e == nullptr) {
          if (produced.load(std::memory_order_acquire) == kNotDone) {  // pairs with the producer's release
            wait.pause();
            continue;
          }
          // Every publish happened before that store, so nothing to take now means this subscriber is
          // drained; the counts are compared after the join (a lost event fails the run, not hangs it).
          e = f->try_take(s);
          if (e == nullptr) break;
        }
        if (!Fanout::in_order(*e, k)) [[unlikely]]
          failure.fail("subscriber " + std::to_string(s) + ": element " + std::to_string(k) +
                       " out of order");
        t.sum += checksum_of(*e);
        if (++k % kLagSampleEvery == 0) t.max_lag = std::max(t.max_lag, f->lag(s));
        wait.reset();
      }
      t.received = k;
      tallies[s] = t;
    });
  }
  run_workers(std::move(workers), cfg.run_time);
  failure.throw_if_failed("fanout");
  const std::uint64_t sent = produced.load(std::memory_order_relaxed);  // the join ordered it
  std::uint64_t slowest_lag = 0;
  for (const auto& t : tallies) {
    if (t.received != sent || t.sum != producer_sum) {
      throw verification_error("fanout: a subscriber received " + std::to_string(t.received) + " of " +
                               std::to_string(sent) + " events or a wrong checksum");
    }
    slowest_lag = std::max(slowest_lag, t.max_lag);
  }
  run_result r;
  r.events_per_sec = static_cast<double>(sent) / seconds_between(start, end);
  r.lag_events = static_cast<double>(slowest_lag);
  return r;
}

template <class Fanout, class... Args>
std::function<run_result(const run_config&)> fanout_case(std::size_t subscribers, Args... args) {
  return [=](const run_config& cfg) { return fanout_run<Fanout>(cfg, subscribers, args...); };
}

}  // namespace

std::vector<scenario_entry> fanout_scenarios() {
  std::vector<scenario_entry> out;
  out.push_back(
      {"fanout", [](const run_config&) {
         std::vector<scenario_case> cases;
         for (const std::size_t n : {std::size_t{1}, std::size_t{4}}) {
           scenario_case sc{"fanout", {{"subscribers", std::to_string(n)}}, metric::throughput, {}, ""};
           sc.impls = {{"rill", {}, fanout_case<rill_fanout>(n, rill::clock_kind::none)},
                       {"rill", {{"stamping", "coarse"}}, fanout_case<rill_fanout>(n, rill::clock_kind::coarse)},
                       {"moodycamel_rwq", {}, fanout_case<rwq_fanout>(n)},
                       {"mutex_deque", {}, fanout_case<mutex_fanout>(n)}};
           sc.note =
               "producer on cpu0, subscribers alternate cpu1, cpu0, ...; events/s at the producer; "
               "rill: one multicast_stream (4096 slots, hold subscribers; no stamping by default, "
               "or coarse); peers: one queue per subscriber (mutex_deque 4096 elements, moodycamel_rwq "
               "4244-4599, its nearest block count), the producer copies each "
               "event into every queue; lag: the slowest subscriber's largest sampled backlog "
               "(events)";
           cases.push_back(std::move(sc));
         }
         return cases;
       }});
  return out;
}

}  // namespace rill_bench
