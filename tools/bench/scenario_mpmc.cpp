// Several producers and consumers on one queue: mpmc_throughput.
#include <concurrentqueue/concurrentqueue.h>

#include <array>
#include <boost/lockfree/queue.hpp>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <thread>

#include "harness.hpp"
#include "rill/stream.hpp"
#include "workload.hpp"

namespace rill_bench {
namespace {

constexpr std::size_t kCapacity = 65536;
constexpr std::size_t kMaxRun = 64;  // mpmc_batch_throughput's events per call

// Per-producer FIFO check: each consumer must see any one producer's sequence numbers strictly increasing.
struct order_tracker {
  explicit order_tracker(std::size_t producers) : next(producers, 0) {}
  bool accept(std::uint64_t producer, std::uint64_t seq) noexcept {
    if (producer >= next.size() || seq < next[producer]) return false;
    next[producer] = seq + 1;
    return true;
  }
  std::vector<std::uint64_t> next;
};

// ---- adapters: producer handle / consumer handle per thread ----

struct rill_mpmc_queue {
  explicit rill_mpmc_queue(std::uint32_t lanes) : stream(options(lanes)) {}
  static rill::stream_options options(std::uint32_t lanes) {
    rill::stream_options o;
    o.capacity = kCapacity;
    o.kind = rill::flavour::mpmc;
    o.lanes = lanes;
    o.allocate_on_first_send = false;
    return o;
  }
  static constexpr bool kChecksOrder = true;
  struct producer {
    explicit producer(rill_mpmc_queue& queue_ref) : q(queue_ref) {}
    // The producer id rides as a prebuilt user event's code and the sequence as its timestamp (clock none:
    // the producer's own value, which a stream without stamping keeps), so each push costs what a peer's
    // does: a copy and two stores, no event factory call.
    bool try_push(std::uint64_t id, std::uint64_t seq) noexcept {
      if (message.kind() == rill::event_kind::none) [[unlikely]] {  // the first push builds it
        message = rill::event::user(static_cast<std::uint16_t>(id), {});
      }
      message.set_timestamp(rill::clock_kind::none, seq);
      return q.stream.try_send(message) == rill::status::ok;
    }
    // mpmc_batch_throughput: `count` events numbered seq, seq + 1, ... in one try_send_batch; how many went
    // in.
    std::size_t try_push_run(std::uint64_t id, std::uint64_t seq, std::size_t count) noexcept {
      if (run[0].kind() == rill::event_kind::none) [[unlikely]] {  // the first push builds them
        for (rill::event& e : run) e = rill::event::user(static_cast<std::uint16_t>(id), {});
      }
      for (std::size_t i = 0; i < count; ++i) run[i].set_timestamp(rill::clock_kind::none, seq + i);
      return q.stream.try_send_batch(std::span<const rill::event>(run.data(), count));
    }
    rill_mpmc_queue& q;
    rill::event message;  // default-constructed (kind none) until the first push
    std::array<rill::event, kMaxRun> run;
  };
  struct consumer {
    explicit consumer(rill_mpmc_queue& queue_ref) : q(queue_ref) {}
    bool try_pop(std::uint64_t& id, std::uint64_t& seq) noexcept {
      if (q.stream.try_receive(slot) != rill::status::ok) return false;
      id = slot->user_code();
      seq = slot->timestamp();
      return true;
    }
    // mpmc_batch_throughput: up to kMaxRun events copied out by one try_receive_batch, each passed to
    // take(id, seq); how many.
    template <class Take>
    std::size_t try_pop_run(Take&& take) noexcept {
      if (q.stream.try_receive_batch(batch) != rill::status::ok) return 0;
      for (const rill::event& e : batch) take(e.user_code(), e.timestamp());
      return batch.size();
    }
    rill_mpmc_queue& q;
    alignas(rill::detail::kFalseSharingRange) rill::received slot;  // consumer-written: off the producer's lines
    rill::received_batch batch{kMaxRun};
  };
  void finish() noexcept {}
  rill::stream stream;
};

struct moodycamel_cq_queue {
  static constexpr bool kChecksOrder = false;
  struct producer {
    explicit producer(moodycamel_cq_queue& queue_ref) : q(queue_ref), token(queue_ref.queue) {}
    bool try_push(std::uint64_t id, std::uint64_t seq) noexcept {
      bench_item item;
      item.producer = id;
      item.seq = seq;
      return q.queue.try_enqueue(token, item);
    }
    // Bulk enqueue with the token: all `count` or none (moodycamel's bulk calls do not split).
    std::size_t try_push_run(std::uint64_t id, std::uint64_t seq, std::size_t count) noexcept {
      for (std::size_t i = 0; i < count; ++i) {
        run[i].producer = id;
        run[i].seq = seq + i;
      }
      return q.queue.try_enqueue_bulk(token, run.begin(), count) ? count : 0;
    }
    moodycamel_cq_queue& q;
    moodycamel::ProducerToken token;
    std::array<bench_item, kMaxRun> run;
  };
  struct consumer {
    explicit consumer(moodycamel_cq_queue& queue_ref) : q(queue_ref), token(queue_ref.queue) {}
    bool try_pop(std::uint64_t& id, std::uint64_t& seq) noexcept {
      // A consumer token visits one producer's sub-queue at a time and can report empty while another
      // sub-queue still holds elements (ConcurrentQueue is not linearizable across producers). The
      // tokenless call scans every producer, so a run can always drain; it costs only on an empty poll.
      if (!q.queue.try_dequeue(token, slot) && !q.queue.try_dequeue(slot)) return false;
      id = slot.producer;
      seq = slot.seq;
      return true;
    }
    // Bulk dequeue with the token, then without it when the token's sub-queue looked empty (as try_pop).
    template <class Take>
    std::size_t try_pop_run(Take&& take) noexcept {
      std::size_t n = q.queue.try_dequeue_bulk(token, run.begin(), kMaxRun);
      if (n == 0) n = q.queue.try_dequeue_bulk(run.begin(), kMaxRun);
      for (std::size_t i = 0; i < n; ++i) take(run[i].producer, run[i].seq);
      return n;
    }
    moodycamel_cq_queue& q;
    moodycamel::ConsumerToken token;
    alignas(rill::detail::kFalseSharingRange) bench_item slot;  // consumer-written: off the producer's lines
    std::array<bench_item, kMaxRun> run;
  };
  void finish() noexcept {}
  moodycamel::ConcurrentQueue<bench_item> queue{kCapacity};
};

struct boost_queue_queue {
  static constexpr bool kChecksOrder = false;
  struct producer {
    explicit producer(boost_queue_queue& queue_ref) : q(queue_ref) {}
    bool try_push(std::uint64_t id, std::uint64_t seq) noexcept {
      bench_item item;
      item.producer = id;
      item.seq = seq;
      return q.queue.bounded_push(item);  // never allocates past the preallocated nodes
    }
    boost_queue_queue& q;
  };
  struct consumer {
    explicit consumer(boost_queue_queue& queue_ref) : q(queue_ref) {}
    bool try_pop(std::uint64_t& id, std::uint64_t& seq) noexcept {
      if (!q.queue.pop(slot)) return false;
      id = slot.producer;
      seq = slot.seq;
      return true;
    }
    boost_queue_queue& q;
    alignas(rill::detail::kFalseSharingRange) bench_item slot;  // consumer-written: off the producer's lines
  };
  void finish() noexcept {}
  boost::lockfree::queue<bench_item> queue{kCapacity};
};

struct mutex_deque_mpmc_queue {
  static constexpr bool kChecksOrder = true;  // a mutex-guarded FIFO keeps every producer's order
  struct producer {
    explicit producer(mutex_deque_mpmc_queue& queue_ref) : q(queue_ref) {}
    bool try_push(std::uint64_t id, std::uint64_t seq) {
      bench_item item;
      item.producer = id;
      item.seq = seq;
      return q.queue.push(item);
    }
    mutex_deque_mpmc_queue& q;
  };
  struct consumer {
    explicit consumer(mutex_deque_mpmc_queue& queue_ref) : q(queue_ref) {}
    bool try_pop(std::uint64_t& id, std::uint64_t& seq) {
      if (!q.queue.pop(slot)) return false;
      id = slot.producer;
      seq = slot.seq;
      return true;
    }
    mutex_deque_mpmc_queue& q;
    alignas(rill::detail::kFalseSharingRange) bench_item slot;  // consumer-written: off the producer's lines
  };
  void finish() { queue.close(); }
  mutex_deque<bench_item> queue{kCapacity};
};

// Batched: mpmc_batch_throughput, kMaxRun events per call (try_push_run / try_pop_run); else one per call.
template <class Queue, bool Batched = false, class... Args>
std::function<run_result(const run_config&)> mpmc_case(std::size_t producers, std::size_t consumers,
                                                       Args... args) {
  return [=](const run_config& cfg) {
    auto q = std::make_unique<Queue>(args...);
    std::vector<std::uint64_t> sent(producers, 0);
    std::vector<std::uint64_t> received(consumers, 0), checksum(consumers, 0);
    std::atomic<std::size_t> producers_left{producers};
    std::atomic<std::uint64_t> total_sent{0};
    std::vector<steady::time_point> started(producers), ended(consumers);
    failure_note failure;
    // Handles (moodycamel's tokens) live until every thread is done: a token destroyed while the other
    // producer still runs strands its blocks in moodycamel's non-allocating mode.
    std::vector<std::unique_ptr<typename Queue::producer>> producer_handles;
    std::vector<std::unique_ptr<typename Queue::consumer>> consumer_handles;
    for (std::size_t p = 0; p < producers; ++p) producer_handles.push_back(std::make_unique<typename Queue::producer>(*q));
    for (std::size_t c = 0; c < consumers; ++c) consumer_handles.push_back(std::make_unique<typename Queue::consumer>(*q));
    std::vector<std::function<void(const std::atomic<bool>&)>> workers;
    for (std::size_t p = 0; p < producers; ++p) {
      workers.emplace_back([&, p](const std::atomic<bool>& stop) {
        auto& handle = *producer_handles[p];
        started[p] = steady::now();
        std::uint64_t seq = 0;
        backoff wait{producers + consumers > std::thread::hardware_concurrency()};
        // The stop flag is also checked while a push keeps failing: in its non-allocating mode moodycamel's
        // ConcurrentQueue can leave one explicit producer without any block for the whole run (the other
        // producer's sub-queue owns them all), and that producer must still end when the run does.
        bool stopped = false;
        // relaxed: a time-out flag, orders nothing.
        while (!stopped && !stop.load(std::memory_order_relaxed)) {
          if constexpr (Batched) {
            std::size_t pushed;
            while ((pushed = handle.try_push_run(p, seq, kMaxRun)) == 0) {
              if (stop.load(std::memory_order_relaxed)) {  // relaxed: a time-out flag, orders nothing
                stopped = true;
                break;
              }
              wait.pause();
            }
            seq += pushed;
            wait.reset();
            continue;
          }
          for (int k = 0; k < 64; ++k, ++seq) {
            while (!handle.try_push(p, seq)) {
              if (stop.load(std::memory_order_relaxed)) {  // relaxed: a time-out flag, orders nothing
                stopped = true;
                break;
              }
              wait.pause();
            }
            if (stopped) break;
            wait.reset();
          }
        }
        sent[p] = seq;
        // acq_rel (relaxed would do): the producers_left decrement below is the release that publishes it.
        total_sent.fetch_add(seq, std::memory_order_acq_rel);
        // The last producer out publishes "all sent" (acq_rel chain: every producer's pushes are visible).
        if (producers_left.fetch_sub(1, std::memory_order_acq_rel) == 1) q->finish();
      });
    }
    std::atomic<std::uint64_t> taken{0};
    for (std::size_t c = 0; c < consumers; ++c) {
      workers.emplace_back([&, c](const std::atomic<bool>&) {
        auto& handle = *consumer_handles[c];
        order_tracker order(producers);
        std::uint64_t n = 0, sum = 0;
        backoff wait{producers + consumers > std::thread::hardware_concurrency()};
        // Counts are published to `taken` in chunks, and always before a consumer decides it is done,
        // so every consumer sees the others' progress.
        auto flush = [&] {
          if (n == 0) return;
          taken.fetch_add(n,
                          std::memory_order_acq_rel);  // acq_rel (relaxed would do): only the count matters
          received[c] += n;
          n = 0;
        };
        auto accept = [&](std::uint64_t id, std::uint64_t seq) {
          if (Queue::kChecksOrder ? !order.accept(id, seq) : id >= producers) [[unlikely]] {
            failure.fail("producer " + std::to_string(id) + " element " + std::to_string(seq) +
                         " arrived out of order");
          }
          sum += seq * 31 + id;
          if ((++n & 1023) == 0) flush();
        };
        while (true) {
          bool took;
          if constexpr (Batched) {
            took = handle.try_pop_run(accept) != 0;
          } else {
            std::uint64_t id = 0, seq = 0;
            took = handle.try_pop(id, seq);
            if (took) accept(id, seq);
          }
          if (took) {
            wait.reset();
          } else {
            flush();
            // acquire: producers_left == 0 pairs with every producer's decrement, so total_sent is final;
            // taken can only lag (the loop polls again), and equals total_sent once all is taken.
            if (producers_left.load(std::memory_order_acquire) == 0 &&
                taken.load(std::memory_order_acquire) == total_sent.load(std::memory_order_acquire)) {
              break;
            }
            wait.pause();
          }
        }
        checksum[c] = sum;
        ended[c] = steady::now();
      });
    }
    run_workers(std::move(workers), cfg.run_time);
    failure.throw_if_failed("mpmc_throughput");
    std::uint64_t expected_sum = 0, total_in = 0, total_out = 0, sum_out = 0;
    for (std::size_t p = 0; p < producers; ++p) {
      total_in += sent[p];
      // sum over seq of (seq * 31 + p) for seq in [0, sent[p])
      expected_sum += 31 * (sent[p] * (sent[p] - 1) / 2) + p * sent[p];  // unsigned: 0 when sent[p] == 0
    }
    for (std::size_t c = 0; c < consumers; ++c) {
      total_out += received[c];
      sum_out += checksum[c];
    }
    if (total_in != total_out || expected_sum != sum_out) {
      throw verification_error("mpmc_throughput: sent " + std::to_string(total_in) + ", received " +
                               std::to_string(total_out) + (expected_sum != sum_out ? ", checksum differs" : ""));
    }
    const auto first = *std::min_element(started.begin(), started.end());
    const auto last = *std::max_element(ended.begin(), ended.end());
    run_result r;
    r.events_per_sec = static_cast<double>(total_out) / seconds_between(first, last);
    r.bytes_per_sec = *r.events_per_sec * 64;
    return r;
  };
}

}  // namespace

std::vector<scenario_entry> mpmc_scenarios() {
  std::vector<scenario_entry> out;
  out.push_back({"mpmc_throughput", [](const run_config&) {
                   std::vector<scenario_case> cases;
                   for (const auto& [producers, consumers] : {std::pair<std::size_t, std::size_t>{2, 1}, {2, 2}}) {
                     scenario_case sc{"mpmc_throughput",
                                      {{"producers", std::to_string(producers)},
                                       {"consumers", std::to_string(consumers)}},
                                      metric::throughput,
                                      {},
                                      ""};
                     // rill_mpmc is one ring (the default); rill_mpmc[lanes=N] gives each producer its own
                     // lane, as moodycamel_cq's producer tokens give each its own sub-queue.
                     const auto lanes = static_cast<std::uint32_t>(producers);
                     sc.impls = {
                         {"rill_mpmc", {{"lanes", std::to_string(lanes)}},
                          mpmc_case<rill_mpmc_queue>(producers, consumers, lanes)},
                         {"moodycamel_cq", {}, mpmc_case<moodycamel_cq_queue>(producers, consumers)},
                         {"boost_queue", {}, mpmc_case<boost_queue_queue>(producers, consumers)},
                         {"rill_mpmc", {}, mpmc_case<rill_mpmc_queue>(producers, consumers, std::uint32_t{1})},
                         {"mutex_deque", {}, mpmc_case<mutex_deque_mpmc_queue>(producers, consumers)},
                     };
                     sc.note = "threads pinned alternately to cpu0/cpu1 (more threads than CPUs: a spinning "
                               "poll yields after 64 misses); rill and mutex_deque verify per-producer order, "
                               "all verify count and checksum; moodycamel_cq uses producer and consumer tokens, "
                               "rill_mpmc[lanes=N] one lane per producer; events/s";
                     cases.push_back(std::move(sc));
                   }
                   return cases;
                 }});
  out.push_back(
      {"mpmc_batch_throughput", [](const run_config&) {
         std::vector<scenario_case> cases;
         for (const auto& [producers, consumers] : {std::pair<std::size_t, std::size_t>{2, 1}, {2, 2}}) {
           scenario_case sc{"mpmc_batch_throughput",
                            {{"producers", std::to_string(producers)},
                             {"consumers", std::to_string(consumers)},
                             {"batch", std::to_string(kMaxRun)}},
                            metric::throughput,
                            {},
                            ""};
           const auto lanes = static_cast<std::uint32_t>(producers);
           sc.impls = {
               {"rill_mpmc", {}, mpmc_case<rill_mpmc_queue, true>(producers, consumers, std::uint32_t{1})},
               {"moodycamel_cq", {}, mpmc_case<moodycamel_cq_queue, true>(producers, consumers)},
               {"rill_mpmc",
                {{"lanes", std::to_string(lanes)}},
                mpmc_case<rill_mpmc_queue, true>(producers, consumers, lanes)},
           };
           sc.note =
               "64 per call: rill try_send_batch + try_receive_batch (one tail or head claim per run "
               "of tickets), moodycamel try_enqueue_bulk + try_dequeue_bulk with tokens (all or "
               "nothing per enqueue); threads and checks as mpmc_throughput; events/s";
           cases.push_back(std::move(sc));
         }
         return cases;
       }});
  return out;
}

}  // namespace rill_bench
