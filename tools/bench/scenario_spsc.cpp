// One producer, one consumer: spsc_throughput, spsc_batch_throughput, ping_pong_rtt, blocking_handoff.
#include <boost/lockfree/spsc_queue.hpp>
#include <concurrentqueue/concurrentqueue.h>
#include <readerwriterqueue/readerwriterqueue.h>

#include <algorithm>
#include <iterator>
#include <span>
#include <string>
#include <thread>

#include "harness.hpp"
#include "rill/detail/layout.hpp"
#include "rill/stream.hpp"
#include "workload.hpp"

namespace rill_bench {
namespace {

constexpr std::size_t kCapacity = 65536;  // the design notes' peer figures use this capacity
constexpr std::size_t kBatch = 64;
constexpr std::uint64_t kNotDone = ~std::uint64_t{0};

rill::stream_options spsc_options(rill::clock_kind stamping, rill::slot_layout layout) {
  rill::stream_options o;
  o.capacity = kCapacity;
  o.stamping = stamping;
  o.layout = layout;
  o.allocate_on_first_send = false;  // allocation is not what these runs measure
  return o;
}

std::string describe_mismatch(std::uint64_t position) {
  return "element " + std::to_string(position) + " arrived out of order or corrupted";
}

// ---- single-element adapters: try_push / try_pop / in_order ----

struct rill_queue {
  explicit rill_queue(rill::clock_kind stamping, rill::slot_layout layout = rill::slot_layout::packed)
      : stream(spsc_options(stamping, layout)) {}
  static const std::vector<rill::event>& pool() { return rill_pool(); }
  bool try_push(const rill::event& e) noexcept { return stream.try_send(e) == rill::status::ok; }
  const rill::event* try_pop() noexcept { return stream.try_receive(slot) == rill::status::ok ? &slot.get() : nullptr; }
  // The stream's own sequence number and the pool position must both match.
  static bool in_order(const rill::event& e, std::uint64_t k) noexcept {
    return e.seq() == k && e.index() == (k & kPoolMask);
  }
  void finish() noexcept {}
  rill::stream stream;
  alignas(rill::detail::kFalseSharingRange) rill::received slot;  // consumer-written: off the producer's lines
};

struct moodycamel_rwq_queue {
  moodycamel_rwq_queue() {
    prefault([&] { return queue.try_enqueue(bench_item{}); }, [&] { return queue.try_dequeue(slot); });
  }
  static const std::vector<bench_item>& pool() { return item_pool(); }
  bool try_push(const bench_item& e) noexcept { return queue.try_enqueue(e); }
  const bench_item* try_pop() noexcept { return queue.try_dequeue(slot) ? &slot : nullptr; }
  static bool in_order(const bench_item& e, std::uint64_t k) noexcept { return e.seq == (k & kPoolMask); }
  void finish() noexcept {}
  moodycamel::ReaderWriterQueue<bench_item> queue{kCapacity};
  alignas(rill::detail::kFalseSharingRange) bench_item slot;  // consumer-written: off the producer's lines
};

struct boost_spsc_queue {
  boost_spsc_queue() {
    prefault([&] { return queue.push(bench_item{}); }, [&] { return queue.pop(slot); });
  }
  static const std::vector<bench_item>& pool() { return item_pool(); }
  bool try_push(const bench_item& e) noexcept { return queue.push(e); }
  const bench_item* try_pop() noexcept { return queue.pop(slot) ? &slot : nullptr; }
  static bool in_order(const bench_item& e, std::uint64_t k) noexcept { return e.seq == (k & kPoolMask); }
  void finish() noexcept {}
  boost::lockfree::spsc_queue<bench_item> queue{kCapacity};
  alignas(rill::detail::kFalseSharingRange) bench_item slot;  // consumer-written: off the producer's lines
};

// Not a peer: rill's ring with nothing else (floor_ring), the floor under the rill row of the same layout.
struct ring_floor_queue {
  explicit ring_floor_queue(rill::slot_layout layout) : ring(kCapacity, layout) {}
  static const std::vector<bench_item>& pool() { return item_pool(); }
  bool try_push(const bench_item& e) noexcept { return ring.try_push(e); }
  const bench_item* try_pop() noexcept { return ring.try_pop(slot) ? &slot : nullptr; }
  static bool in_order(const bench_item& e, std::uint64_t k) noexcept { return e.seq == (k & kPoolMask); }
  void finish() noexcept {}
  floor_ring<bench_item> ring;
  alignas(rill::detail::kFalseSharingRange) bench_item slot;  // consumer-written: off the producer's lines
};

// Blocking on both sides, as a Go channel: push waits for room, pop waits for an element or close.
struct mutex_deque_queue {
  static const std::vector<bench_item>& pool() { return item_pool(); }
  bool try_push(const bench_item& e) { return queue.push(e); }
  const bench_item* try_pop() { return queue.pop(slot) ? &slot : nullptr; }
  static bool in_order(const bench_item& e, std::uint64_t k) noexcept { return e.seq == (k & kPoolMask); }
  void finish() { queue.close(); }
  mutex_deque<bench_item> queue{kCapacity};
  alignas(rill::detail::kFalseSharingRange) bench_item slot;  // consumer-written: off the producer's lines
};

// ---- what both throughput runs share: the consumer loop and the check of what arrived ----

// The two threads' reports for a one-way run; read by verified() once run_workers has joined them.
struct one_way_tally {
  std::atomic<std::uint64_t> produced{kNotDone};  // the producer's count, stored after its last push
  std::uint64_t producer_sum = 0, consumer_sum = 0, received = 0;
  std::uint64_t empty_polls = 0;  // consumer polls that found the queue empty while the producer ran
  steady::time_point start, end;
  failure_note failure;

  // Consumer thread. `pop(handle)` passes each element it takes to `handle` and returns how many it took;
  // runs until the producer is done and the queue drained, checking order and summing checksums.
  template <class Queue, class Pop>
  void consume(Pop&& pop) {
    std::uint64_t k = 0, sum = 0, empty = 0;
    backoff wait;
    auto handle = [&](const auto& e) {
      if (!Queue::in_order(e, k)) [[unlikely]] failure.fail(describe_mismatch(k));
      sum += checksum_of(e);
      ++k;
    };
    while (true) {
      if (pop(handle) != 0) {
        wait.reset();
      } else if (produced.load(std::memory_order_acquire) != kNotDone) {  // pairs with the producer's release
        // Every push happened before that store, so an empty pop now means the queue is drained: stop
        // there, and let verified() compare the counts (a lost element fails the run instead of hanging it).
        if (pop(handle) == 0) break;
      } else {
        ++empty;
        wait.pause();
      }
    }
    end = steady::now();
    consumer_sum = sum;
    received = k;
    empty_polls = empty;
  }

  // The run's rate; throws verification_error on an element out of order, a lost one or a checksum mismatch.
  run_result verified(const std::string& scenario) const {
    failure.throw_if_failed(scenario);
    const std::uint64_t sent = produced.load(std::memory_order_relaxed);  // the join ordered it
    if (received != sent || consumer_sum != producer_sum) {
      throw verification_error(scenario + ": count or checksum mismatch (sent " + std::to_string(sent) +
                               ", received " + std::to_string(received) + ")");
    }
    run_result r;
    r.events_per_sec = static_cast<double>(received) / seconds_between(start, end);
    r.bytes_per_sec = *r.events_per_sec * 64;
    return r;
  }
};

// ---- spsc_throughput ----

template <class Queue>
run_result one_way(Queue& q, const run_config& cfg) {
  const auto& pool = Queue::pool();
  (void)pool_checksum_sum(pool, 0);  // builds the expected-sum table before the clock
  one_way_tally t;
  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>& stop) {
    t.start = steady::now();
    std::uint64_t i = 0;
    backoff wait;
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a time-out flag, orders nothing
      for (int k = 0; k < 256; ++k, ++i) {
        while (!q.try_push(pool[i & kPoolMask])) wait.pause();
      }
    }
    t.producer_sum = pool_checksum_sum(pool, i);
    t.produced.store(i, std::memory_order_release);  // after the last push; pairs with the consumer's load
    q.finish();
  });
  workers.emplace_back([&](const std::atomic<bool>&) {
    t.consume<Queue>([&](auto& handle) -> std::size_t {
      const auto* e = q.try_pop();
      if (e == nullptr) return 0;
      handle(*e);
      return 1;
    });
  });
  run_workers(std::move(workers), cfg.run_time);
  return t.verified("spsc_throughput");
}

template <class Queue, class... Args>
std::function<run_result(const run_config&)> one_way_case(Args... args) {
  return [=](const run_config& cfg) {
    auto q = std::make_unique<Queue>(args...);
    return one_way(*q, cfg);
  };
}

// ---- spsc_batch_throughput: 64 elements per call on both sides ----

struct rill_batch_queue {
  explicit rill_batch_queue(rill::clock_kind stamping, rill::slot_layout layout = rill::slot_layout::packed)
      : stream(spsc_options(stamping, layout)) {}
  static const std::vector<rill::event>& pool() { return rill_pool(); }
  std::size_t push_many(const rill::event* first, std::size_t n) noexcept {
    return stream.try_send_batch(std::span<const rill::event>(first, n));
  }
  template <class Handler>
  std::size_t pop_many(Handler&& handle) {
    return stream.try_drain([&](const rill::event& e, bool) { handle(e); }, kBatch);
  }
  static bool in_order(const rill::event& e, std::uint64_t k) noexcept { return rill_queue::in_order(e, k); }
  rill::stream stream;
};

// The same stream consumed by copying each batch out (try_receive_batch), as boost's range pop does: the
// like-for-like row for the boost_spsc one, as rill_batch_queue is for boost_spsc[consume=in_place].
struct rill_copy_out_batch_queue : rill_batch_queue {
  using rill_batch_queue::rill_batch_queue;
  template <class Handler>
  std::size_t pop_many(Handler&& handle) {
    if (stream.try_receive_batch(batch) != rill::status::ok) return 0;
    for (const rill::event& e : batch) handle(e);
    return batch.size();
  }
  alignas(rill::detail::kFalseSharingRange) rill::received_batch batch{kBatch};  // consumer-written
};

struct boost_spsc_batch_queue {
  boost_spsc_batch_queue() {
    prefault([&] { return queue.push(bench_item{}); }, [&] { return queue.pop(buffer[0]); });
  }
  static const std::vector<bench_item>& pool() { return item_pool(); }
  std::size_t push_many(const bench_item* first, std::size_t n) noexcept { return queue.push(first, n); }
  template <class Handler>
  std::size_t pop_many(Handler&& handle) {
    const std::size_t n = queue.pop(buffer, kBatch);
    for (std::size_t i = 0; i < n; ++i) handle(buffer[i]);
    return n;
  }
  static bool in_order(const bench_item& e, std::uint64_t k) noexcept { return e.seq == (k & kPoolMask); }
  boost::lockfree::spsc_queue<bench_item> queue{kCapacity};
  alignas(rill::detail::kFalseSharingRange) bench_item buffer[kBatch];  // consumer-written: off the producer's lines
};

// The same queue consumed in place (consume_all hands over each element in its slot, as rill's try_drain
// does, but takes everything published rather than 64 per call) instead of copied out: the two consumers
// differ in when the ring lines are read, which the table shows.
struct boost_spsc_in_place_batch_queue : boost_spsc_batch_queue {
  template <class Handler>
  std::size_t pop_many(Handler&& handle) {
    return queue.consume_all([&](const bench_item& e) { handle(e); });
  }
};

struct moodycamel_cq_batch_queue {
  // Through the run's own tokens: an explicit producer keeps the blocks it filled for its next laps.
  moodycamel_cq_batch_queue() {
    prefault([&] { return queue.try_enqueue(producer, bench_item{}); },
             [&] { return queue.try_dequeue(consumer, buffer[0]); });
  }
  static const std::vector<bench_item>& pool() { return item_pool(); }
  // try_enqueue_bulk is all-or-nothing and never allocates past the preallocated blocks (a bounded queue).
  std::size_t push_many(const bench_item* first, std::size_t n) noexcept {
    return queue.try_enqueue_bulk(producer, first, n) ? n : 0;
  }
  template <class Handler>
  std::size_t pop_many(Handler&& handle) {
    const std::size_t n = queue.try_dequeue_bulk(consumer, buffer, kBatch);
    for (std::size_t i = 0; i < n; ++i) handle(buffer[i]);
    return n;
  }
  static bool in_order(const bench_item& e, std::uint64_t k) noexcept { return e.seq == (k & kPoolMask); }
  moodycamel::ConcurrentQueue<bench_item> queue{kCapacity};
  moodycamel::ProducerToken producer{queue};
  moodycamel::ConsumerToken consumer{queue};
  alignas(rill::detail::kFalseSharingRange) bench_item buffer[kBatch];  // consumer-written: off the producer's lines
};

template <class Queue>
run_result batched(Queue& q, const run_config& cfg) {
  const auto& pool = Queue::pool();
  (void)pool_checksum_sum(pool, 0);  // builds the expected-sum table before the clock
  one_way_tally t;
  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>& stop) {
    t.start = steady::now();
    std::uint64_t i = 0;
    backoff wait;
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a time-out flag, orders nothing
      for (int k = 0; k < 16; ++k) {
        const auto* first = &pool[i & kPoolMask];
        std::size_t done = 0;
        while (done < kBatch) {
          const std::size_t n = q.push_many(first + done, kBatch - done);
          if (n == 0) wait.pause();
          done += n;
        }
        i += kBatch;
      }
    }
    t.producer_sum = pool_checksum_sum(pool, i);     // element k is pool entry k mod kPoolSize
    t.produced.store(i, std::memory_order_release);  // after the last push; pairs with the consumer's load
  });
  workers.emplace_back([&](const std::atomic<bool>&) {
    t.consume<Queue>([&](auto& handle) { return q.pop_many(handle); });
  });
  run_workers(std::move(workers), cfg.run_time);
  run_result r = t.verified("spsc_batch_throughput");
  if (t.received != 0) {
    r.empty_polls_per_batch = static_cast<double>(t.empty_polls) * kBatch / static_cast<double>(t.received);
  }
  return r;
}

template <class Queue, class... Args>
std::function<run_result(const run_config&)> batched_case(Args... args) {
  return [=](const run_config& cfg) {
    auto q = std::make_unique<Queue>(args...);
    return batched(*q, cfg);
  };
}

// ---- ping_pong_rtt: ping sends on one queue, pong echoes on a second; ping times each round trip ----

std::uint64_t max_round_trips(const run_config& cfg) { return cfg.quick ? 20000 : 100000; }

template <class Queue, class... Args>
std::function<run_result(const run_config&)> round_trip_case(Args... args) {
  return [=](const run_config& cfg) {
    auto there = std::make_unique<Queue>(args...);
    auto back = std::make_unique<Queue>(args...);
    const auto& pool = Queue::pool();
    const double tick_ns = ns_per_tick();
    const std::uint64_t limit = max_round_trips(cfg);
    latency_histogram histogram;
    std::atomic<bool> done{false};
    std::uint64_t round_trips = 0, echoed = 0;
    failure_note failure;
    std::vector<std::function<void(const std::atomic<bool>&)>> workers;
    workers.emplace_back([&](const std::atomic<bool>& stop) {
      std::uint64_t i = 0;
      // relaxed: a time-out flag, orders nothing.
      for (; i < limit && !stop.load(std::memory_order_relaxed); ++i) {
        const auto& e = pool[i & kPoolMask];
        const std::uint64_t t0 = tsc();
        while (!there->try_push(e)) rill::detail::cpu_relax();
        const auto* reply = back->try_pop();
        while (reply == nullptr) {
          rill::detail::cpu_relax();
          reply = back->try_pop();
        }
        const std::uint64_t t1 = tsc();
        histogram.add(static_cast<std::uint64_t>(static_cast<double>(t1 - t0) * tick_ns));
        if (!Queue::in_order(*reply, i) || checksum_of(*reply) != checksum_of(e)) [[unlikely]] {
          failure.fail(describe_mismatch(i));
        }
      }
      round_trips = i;
      done.store(true, std::memory_order_release);  // release: pairs with the echo's acquire; no ping follows
      there->finish();
    });
    workers.emplace_back([&](const std::atomic<bool>&) {
      std::uint64_t k = 0;
      while (true) {
        if (const auto* e = there->try_pop()) {
          while (!back->try_push(*e)) rill::detail::cpu_relax();
          // Verified after the echo is on its way, outside the trip ping times (as ping checks the reply
          // after its clock read); `e` stays valid until the next try_pop.
          if (!Queue::in_order(*e, k) || checksum_of(*e) != checksum_of(pool[k & kPoolMask])) [[unlikely]] {
            failure.fail(describe_mismatch(k));
          }
          ++k;
        } else if (done.load(std::memory_order_acquire)) {  // acquire: pairs with the ping's release
          break;
        } else {
          rill::detail::cpu_relax();
        }
      }
      echoed = k;
    });
    run_workers(std::move(workers), cfg.run_time);
    failure.throw_if_failed("ping_pong_rtt");
    if (echoed != round_trips || histogram.count() != round_trips) {
      throw verification_error("ping_pong_rtt: " + std::to_string(round_trips) + " pings but " +
                               std::to_string(echoed) + " echoes");
    }
    run_result r;
    r.set_latency(histogram);
    r.events_per_sec = 1e9 / *r.p50_ns;  // round trips per second at the median
    return r;
  };
}

// The floor rows' ping-pong without a queue API: `round_trip(i)` (ping thread, cpu0) sends trip i and waits
// for its echo; `echo_correct(i)`, after the trip's timing as a queue row's check of its reply, says whether
// the echo carried what was sent; `echo(done)` (pong thread, cpu1) echoes trips in order until `done` and
// returns how many it echoed. Trips count from 1. Verified like the queue rows: every echo correct, as many
// echoes as trips.
template <class RoundTrip, class EchoCorrect, class Echo>
run_result timed_floor(const run_config& cfg, const char* impl, RoundTrip round_trip,
                       EchoCorrect echo_correct, Echo echo) {
  const double tick_ns = ns_per_tick();
  const std::uint64_t limit = max_round_trips(cfg);
  latency_histogram histogram;
  std::atomic<bool> done{false};
  std::uint64_t trips = 0, wrong = 0, echoed = 0;  // each written by one worker, read after the join
  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>& stop) {
    std::uint64_t i = 1;
    // relaxed: a time-out flag, orders nothing.
    for (; i <= limit && !stop.load(std::memory_order_relaxed); ++i) {
      const std::uint64_t t0 = tsc();
      round_trip(i);
      const std::uint64_t t1 = tsc();
      histogram.add(static_cast<std::uint64_t>(static_cast<double>(t1 - t0) * tick_ns));
      if (!echo_correct(i)) [[unlikely]] ++wrong;
    }
    trips = i - 1;
    done.store(true, std::memory_order_release);  // pairs with the echo's acquire: no trip follows
  });
  workers.emplace_back([&](const std::atomic<bool>&) { echoed = echo(done); });
  run_workers(std::move(workers), cfg.run_time);
  if (wrong != 0 || echoed != trips || histogram.count() != trips) {
    throw verification_error(std::string("ping_pong_rtt ") + impl + ": " + std::to_string(trips) +
                             " trips, " + std::to_string(echoed) + " echoed, " + std::to_string(wrong) +
                             " echoes wrong");
  }
  run_result r;
  r.set_latency(histogram);
  r.events_per_sec = 1e9 / *r.p50_ns;
  return r;
}

// The physical floor: the same ping-pong on one atomic per direction (two core-to-core hops).
run_result c2c_floor_run(const run_config& cfg) {
  struct alignas(rill::detail::kFalseSharingRange) padded {
    std::atomic<std::uint64_t> value{0};
  };
  padded ping, pong;
  return timed_floor(
      cfg, "c2c_floor",
      [&](std::uint64_t i) {
        // release/acquire: the hand-off a queue pays for; the value alone carries the ping-pong.
        ping.value.store(i, std::memory_order_release);
        while (pong.value.load(std::memory_order_acquire) != i) rill::detail::cpu_relax();
      },
      [](std::uint64_t) { return true; },  // the wait above accepts only the echo of i
      [&](const std::atomic<bool>& done) {
        std::uint64_t seen = 0, in_order = 0;
        while (true) {
          const std::uint64_t v = ping.value.load(std::memory_order_acquire);  // pairs with ping's release
          if (v != seen) {
            pong.value.store(v, std::memory_order_release);  // release: pairs with the ping's acquire
            if (v == seen + 1) ++in_order;  // a skipped or repeated trip leaves the count short
            seen = v;
          } else if (done.load(std::memory_order_acquire)) {  // acquire: pairs with timed_floor's release
            break;
          } else {
            rill::detail::cpu_relax();
          }
        }
        return in_order;
      });
}

// The floor of any ring of 64-byte slots: the same ping-pong through two bare rings of kCapacity slots,
// each slot published by its own sequence word and nothing else (no index, no validation, no API). Unlike
// c2c_floor, every trip writes a line the other core read one lap ago, which costs a coherence transfer
// that reusing one line does not.
run_result ring_floor_run(const run_config& cfg) {
  struct alignas(64) slot {
    std::atomic<std::uint64_t> seq{0};  // trips count from 1: no slot starts published
    std::uint64_t payload[7] = {};
  };
  static_assert(sizeof(slot) == 64);
  std::vector<slot> ping(kCapacity), pong(kCapacity);
  return timed_floor(
      cfg, "ring_floor",
      [&](std::uint64_t i) {
        slot& out = ping[i & (kCapacity - 1)];
        slot& in = pong[i & (kCapacity - 1)];
        for (std::uint64_t& word : out.payload) word = i;
        out.seq.store(i, std::memory_order_release);  // publishes the payload; pairs with the echo's acquire
        // acquire: pairs with the echo's release; the echoed payload is visible to echo_correct(i).
        while (in.seq.load(std::memory_order_acquire) != i) rill::detail::cpu_relax();
      },
      [&](std::uint64_t i) {
        // The echo's payload (made visible by the acquire above; pong rewrites this slot only a lap later,
        // after a ping this thread has not sent yet) is the one sent.
        const slot& in = pong[i & (kCapacity - 1)];
        return std::all_of(std::begin(in.payload), std::begin(in.payload) + 7,
                           [i](std::uint64_t word) { return word == i; });
      },
      [&](const std::atomic<bool>& done) -> std::uint64_t {
        for (std::uint64_t i = 1;; ++i) {
          slot& in = ping[i & (kCapacity - 1)];
          slot& out = pong[i & (kCapacity - 1)];
          while (in.seq.load(std::memory_order_acquire) != i) {  // pairs with the ping's release
            if (done.load(std::memory_order_acquire)) return i - 1;  // pairs with timed_floor's release
            rill::detail::cpu_relax();
          }
          for (std::size_t k = 0; k < 7; ++k) out.payload[k] = in.payload[k];
          out.seq.store(i, std::memory_order_release);  // release: publishes the copied payload to the ping
        }
      });
}

// ---- blocking_handoff: the consumer parks on an empty queue; the producer sends after a pause ----

constexpr auto kHandoffGap = std::chrono::microseconds(100);  // long enough for any spin phase to end

template <class Send, class Receive, class Close>
run_result handoff(const run_config& cfg, Send send, Receive receive, Close close) {
  const std::size_t count = cfg.quick ? 100 : 300;
  std::vector<steady::time_point> sent_at(count);
  latency_histogram histogram;
  std::size_t received = 0;
  failure_note failure;
  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>&) {
    for (std::size_t i = 0; i < count; ++i) {
      std::this_thread::sleep_for(kHandoffGap);
      sent_at[i] = steady::now();  // published to the consumer by the send itself
      send(i);
    }
    close();
  });
  workers.emplace_back([&](const std::atomic<bool>&) {
    std::size_t k = 0;
    while (true) {
      std::uint64_t position = 0;
      if (!receive(position)) break;
      const auto now = steady::now();
      if (k >= count || position != (k & kPoolMask)) {
        failure.fail(describe_mismatch(k));
        break;
      }
      histogram.add(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at[k]).count()));
      ++k;
    }
    received = k;
  });
  run_workers(std::move(workers), std::chrono::milliseconds(0));
  failure.throw_if_failed("blocking_handoff");
  if (received != count) throw verification_error("blocking_handoff: lost hand-offs");
  run_result r;
  r.set_latency(histogram);
  r.events_per_sec = 1e9 / *r.p50_ns;
  return r;
}

run_result rill_handoff(const run_config& cfg) {
  rill::stream_options o;
  o.allocate_on_first_send = false;
  rill::stream s(o);
  rill::received r;
  const auto& pool = rill_pool();
  return handoff(
      cfg, [&](std::size_t i) { (void)s.send(pool[i & kPoolMask]); },
      [&](std::uint64_t& position) {
        if (s.receive(r) != rill::status::ok) return false;
        position = r->index();
        return true;
      },
      [&] { s.close(); });
}

run_result mutex_handoff(const run_config& cfg) {
  mutex_deque<bench_item> q(1024);
  alignas(rill::detail::kFalseSharingRange) bench_item slot;  // consumer-written: off the producer's lines
  const auto& pool = item_pool();
  return handoff(
      cfg, [&](std::size_t i) { (void)q.push(pool[i & kPoolMask]); },
      [&](std::uint64_t& position) {
        if (!q.pop(slot)) return false;
        position = slot.seq;
        return true;
      },
      [&] { q.close(); });
}

const param_list kCoarseStamping = {{"stamping", "coarse"}};
const param_list kPaddedLayout = {{"layout", "padded"}};

}  // namespace

std::vector<scenario_entry> spsc_scenarios() {
  using rill::clock_kind;
  using rill::slot_layout;
  std::vector<scenario_entry> out;
  out.push_back({"spsc_throughput", [](const run_config&) {
                   scenario_case sc{"spsc_throughput", {}, metric::throughput, {}, ""};
                   sc.impls = {
                       {"rill", {}, one_way_case<rill_queue>(clock_kind::none)},
                       {"rill", kPaddedLayout,
                        one_way_case<rill_queue>(clock_kind::none, slot_layout::padded)},
                       {"moodycamel_rwq", {}, one_way_case<moodycamel_rwq_queue>()},
                       {"boost_spsc", {}, one_way_case<boost_spsc_queue>()},
                       {"rill", kCoarseStamping, one_way_case<rill_queue>(clock_kind::coarse)},
                       {"rill", {{"stamping", "tsc"}}, one_way_case<rill_queue>(clock_kind::tsc)},
                       {"mutex_deque", {}, one_way_case<mutex_deque_queue>()},
                       {"ring_floor", {}, one_way_case<ring_floor_queue>(slot_layout::packed)},
                       {"ring_floor", kPaddedLayout, one_way_case<ring_floor_queue>(slot_layout::padded)},
                   };
                   sc.note =
                       "one element per call, capacity 65536, cpu0 -> cpu1; [layout=padded]: each slot on "
                       "its own 128-byte line pair (rill::slot_layout); ring_floor = rill's ring (slots "
                       "published by their sequence words) with nothing else; events/s";
                   return std::vector<scenario_case>{sc};
                 }});
  out.push_back({"spsc_batch_throughput", [](const run_config&) {
                   scenario_case sc{"spsc_batch_throughput", {{"batch", "64"}}, metric::throughput, {}, ""};
                   sc.impls = {
                       {"rill", {}, batched_case<rill_batch_queue>(clock_kind::none)},
                       {"boost_spsc", {}, batched_case<boost_spsc_batch_queue>()},
                       {"moodycamel_cq", {}, batched_case<moodycamel_cq_batch_queue>()},
                       {"rill", kCoarseStamping, batched_case<rill_batch_queue>(clock_kind::coarse)},
                       {"boost_spsc",
                        {{"consume", "in_place"}},
                        batched_case<boost_spsc_in_place_batch_queue>()},
                       {"rill",
                        {{"consume", "copy_out"}},
                        batched_case<rill_copy_out_batch_queue>(clock_kind::none)},
                       {"rill", kPaddedLayout,
                        batched_case<rill_batch_queue>(clock_kind::none, slot_layout::padded)},
                   };
                   sc.note =
                       "64 per call: rill try_send_batch + try_drain ([consume=copy_out]: "
                       "try_receive_batch), "
                       "boost push/pop ranges ([consume=in_place]: consume_all, which takes all that is "
                       "published), moodycamel bulk calls with "
                       "tokens; events/s; empty/batch: the consumer's polls that found the queue empty, per "
                       "64 events (under 1: the backlog regime, else caught up)";
                   return std::vector<scenario_case>{sc};
                 }});
  out.push_back({"ping_pong_rtt", [](const run_config&) {
                   scenario_case sc{"ping_pong_rtt", {}, metric::latency, {}, ""};
                   sc.impls = {
                       {"rill", {}, round_trip_case<rill_queue>(clock_kind::none)},
                       {"c2c_floor", {}, c2c_floor_run},
                       {"ring_floor", {}, ring_floor_run},
                       {"moodycamel_rwq", {}, round_trip_case<moodycamel_rwq_queue>()},
                       {"boost_spsc", {}, round_trip_case<boost_spsc_queue>()},
                       {"rill", kCoarseStamping, round_trip_case<rill_queue>(clock_kind::coarse)},
                       {"rill", kPaddedLayout,
                        round_trip_case<rill_queue>(clock_kind::none, slot_layout::padded)},
                       {"mutex_deque", {}, round_trip_case<mutex_deque_queue>()},
                   };
                   sc.note = "round trip through two queues, timed per trip with rdtsc (one read's cost is in "
                             "each sample); c2c_floor = the same trip on two bare atomics, ring_floor = on two bare rings of "
                             "sequence-published 64-byte slots";
                   return std::vector<scenario_case>{sc};
                 }});
  out.push_back({"blocking_handoff", [](const run_config&) {
                   scenario_case sc{"blocking_handoff", {}, metric::latency, {}, ""};
                   sc.impls = {{"rill", {}, rill_handoff}, {"mutex_deque", {}, mutex_handoff}};
                   sc.note = "consumer blocked in receive()/pop() on an empty queue; one send every 100 us; "
                             "latency send -> consumer running, steady_clock";
                   return std::vector<scenario_case>{sc};
                 }});
  return out;
}

}  // namespace rill_bench
