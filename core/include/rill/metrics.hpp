// rill/metrics.hpp: per-stream metrics, the process-wide aggregator, health alerts and workflow progress.
// Part of rill::core. Their exposition as Prometheus text and a JSON snapshot is rill/metrics_exposition.hpp
// (rill::codec, which has the JSON writer).
//
// Model. Metrics are computed by *observing* the events a consumer handles: the consumer calls
// stream_metrics::observe(e) for each event it takes from a stream. Nothing feeds a stream_metrics on its
// own: the stream's send and receive paths never touch it. A stream_manager built with
// manager_options::track_metrics gives each of its streams one (stream_ref::metrics(); its snapshot appears
// in stream_info::metrics); the stream's consumer still feeds it. Times come from the events' own stamps
// (event::steady_time()), so on a stamping stream they measure when the stream accepted each event, not when
// the consumer got round to it. An unstamped event (stream_options::stamping is none by default) is timed
// when observe() sees it, with the coarse clock. With coarse times (clock.hpp) a time has the kernel tick's
// resolution, 1 to 4 ms: a TTFT or an inter-event gap is exact to that tick, and gaps shorter than a tick
// read as 0. Streams stamped with clock_kind::tsc or ::steady give nanosecond figures.
//
// Guarantees
//   - observe() (the per-event path) never allocates or throws: relaxed atomic loads and stores on the
//     stream's own counters, relaxed fetch_adds on the aggregator's per-kind counters, and once per stream
//     (at its stream_start, else at the first message_start or usage) a scan of the provider/model table,
//     which locks the insert mutex only when it inserts a pair not seen before (see below).
//   - Every counter is readable from any thread at any time (relaxed atomics: each value is one the writer
//     stored; values read together are not a consistent cut while the writer runs, and are exact once it
//     has stopped or its thread has been joined). Two cuts are ordered: a snapshot never shows more failed
//     streams than ended ones, and never counts a finished message's tokens twice.
//   - The provider/model table holds kMaxModels pairs; later pairs are counted under provider "other",
//     model "other". Inserting a new pair takes a mutex (once per pair for the process' life, and never once
//     the table is full); lookups never do.
//   - Names are shown as labels (model_usage_snapshot) of at most kMaxNameBytes bytes of valid UTF-8. A name
//     that is valid UTF-8 and fits is its own label. Any other (longer, or with ill-formed bytes) is shown
//     as its start, cut at a character boundary, each ill-formed sequence replaced by U+FFFD, then '~' and 8
//     hex digits of a hash of the whole name that is the same in every process ("arn:aws:...~1f2e3d4c").
//     Pairs are told apart by their whole names (a long one by its length and a keyed 64-bit hash). No two
//     entries of a snapshot have the same labels: a pair whose labels another pair already has (a real pair
//     named other/other, a hash collision, a name spelled like another's label) is counted under "other".
//   - Alerts fire at most once per `min_interval` per threshold, whatever the rate of evaluate() calls.
// Not guaranteed
//   - Histograms have log2 buckets: a percentile is the upper bound of its bucket, at most 2x the true value.
//   - Cost is an estimate: tokens times the configured per-million rates of the model (exact match of the
//     whole name, however long; the "other" entry takes the rates set for "other").
//   - Token usage: provider usage events carry running totals per message; a stream counts the largest
//     values each message reported (a message_start begins a new one). Usage of a message that never
//     reports it is not counted.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rill/event.hpp"
#include "rill/stream.hpp"

namespace rill {

// ---- histogram ------------------------------------------------------------------------------------------

// Fixed-size histogram of nanosecond values with log2 buckets: bucket 0 holds 0 and 1, bucket b (1..62)
// holds (2^(b-1), 2^b], and the last bucket, 63, everything above 2^62. Never allocates. record() is
// single-writer (relaxed load + store); record_shared() may be called from many threads (relaxed fetch_add).
// Readers on other threads see each bucket's latest stored count (relaxed is enough: the counts are
// statistics, nothing is published through them).
class latency_histogram {
 public:
  static constexpr std::size_t kBuckets = 64;
  static constexpr std::size_t bucket_of(std::uint64_t ns) noexcept {
    std::size_t b = 0;
    for (std::uint64_t v = ns > 0 ? ns - 1 : 0; v != 0; v >>= 1) ++b;
    return b < kBuckets ? b : kBuckets - 1;  // values above 2^63 would need a 65th bucket
  }
  // Largest value bucket `b` holds: 1 for bucket 0, 2^b up to bucket 62, UINT64_MAX for the last bucket.
  static constexpr std::uint64_t bucket_upper(std::size_t b) noexcept {
    return b >= kBuckets - 1 ? ~std::uint64_t{0} : (b == 0 ? 1 : std::uint64_t{1} << b);
  }

  // Single writer only. Never blocks.
  void record(std::uint64_t ns) noexcept {
    auto& bucket = buckets_[bucket_of(ns)];
    // Relaxed: single writer; readers only need some recent value.
    bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    sum_.store(sum_.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
  }
  // Any thread. Never blocks.
  void record_shared(std::uint64_t ns) noexcept {
    buckets_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, orders nothing
    sum_.fetch_add(ns, std::memory_order_relaxed);
  }

  struct snapshot {
    std::array<std::uint64_t, kBuckets> counts{};
    std::uint64_t count = 0;
    std::uint64_t sum_ns = 0;
    // Nearest-rank percentile (q in [0, 1]) as its bucket's upper bound; 0 when empty.
    std::uint64_t percentile(double q) const noexcept;
  };
  // Any thread. Never blocks.
  snapshot read() const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
  std::atomic<std::uint64_t> sum_{0};
};

// ---- aggregator -----------------------------------------------------------------------------------------

// Prices per million tokens, in any currency unit (the exposition calls it "usd").
struct model_rates {
  double input_per_mtok = 0;
  double output_per_mtok = 0;
  double cache_read_per_mtok = 0;
  double cache_write_per_mtok = 0;
};

struct token_totals {
  std::uint64_t input = 0, output = 0, cache_read = 0, cache_write = 0;
};

struct model_usage_snapshot {
  std::string provider, model;  // labels (see the banner): valid UTF-8; distinct pairs within a snapshot
  token_totals tokens;
  double cost = 0;  // estimate from the configured rates (0 when the model has none)
};

struct aggregator_snapshot {
  std::array<std::uint64_t, kEventKindCount> events{};  // events observed, by kind
  // failed: ended with an error event
  std::uint64_t streams_started = 0, streams_ended = 0, streams_failed = 0;
  std::uint64_t active_streams = 0;  // started - ended
  double error_rate = 0;             // streams_failed / streams_ended, in [0, 1] (0 before any stream ended)
  latency_histogram::snapshot ttft;  // time to first token of every stream that had one
  std::vector<model_usage_snapshot> models;
  double total_cost = 0;
};

// Process-wide (or per-gateway) totals fed by stream_metrics. Thread-safe: every member may be called from
// any thread at the same time.
class aggregator {
 public:
  static constexpr std::size_t kMaxModels = 64;     // provider/model pairs tracked by name
  static constexpr std::size_t kMaxNameBytes = 63;  // longest label; longer names are shortened (banner)
  static constexpr std::size_t kOverflowSlot = kMaxModels;  // the "other" pair

  aggregator();
  aggregator(const aggregator&) = delete;
  aggregator& operator=(const aggregator&) = delete;

  // Sets the rates of `model` for cost estimates: they apply to the models whose whole name is exactly
  // `model`, whatever its length (not to others that share its label's start). Any thread; takes a mutex;
  // allocates (throws std::bad_alloc).
  void set_rates(std::string_view model, const model_rates& rates);

  // Slot of a provider/model pair: kOverflowSlot when the table is full, when the pair is other/other, or
  // when another pair already has its labels (see the banner). Lock-free when the pair is known; takes a
  // mutex to insert a new one. Never allocates or throws.
  std::size_t model_slot(std::string_view provider, std::string_view model) noexcept;

  // Hot path, any thread: relaxed fetch_adds. Never blocks, allocates or throws.
  void count_event(event_kind kind) noexcept {
    // Relaxed: a statistic.
    events_[static_cast<std::size_t>(kind) % kEventKindCount].fetch_add(1, std::memory_order_relaxed);
  }
  void add_tokens(std::size_t slot, const token_totals& delta) noexcept;
  void stream_started() noexcept { started_.fetch_add(1, std::memory_order_relaxed); }  // a statistic
  // Counts a stream as ended (and as failed when `failed`). Any thread; never blocks.
  void stream_ended(bool failed) noexcept;
  void record_ttft(std::uint64_t ns) noexcept { ttft_.record_shared(ns); }

  // Consistent per counter, not across counters while writers run, except that streams_failed never
  // exceeds streams_ended. Any thread. Allocates (the model list; throws std::bad_alloc).
  aggregator_snapshot snapshot() const;

 private:
  // A name as the table keeps it: its label, and what tells it from other names with the same label.
  struct name_label {
    std::array<char, kMaxNameBytes> text{};  // bytes past `size` stay 0, so == compares labels exactly
    std::uint8_t size = 0;
    bool verbatim = true;         // the label is the whole name; otherwise it is derived (see the banner)
    std::uint64_t full_size = 0;  // derived labels only: the name's length and keyed hash
    std::uint64_t hash = 0;
    std::string_view view() const noexcept { return {text.data(), size}; }
    bool operator==(const name_label&) const noexcept = default;  // the same name
  };
  static name_label label_of(std::string_view name, std::uint64_t seed) noexcept;
  struct model_entry {
    name_label provider, model;
    std::array<std::atomic<std::uint64_t>, 4> tokens{};  // input, output, cache_read, cache_write
  };
  std::array<std::atomic<std::uint64_t>, kEventKindCount> events_{};
  // ended_ is counted before failed_ ([G3], release) and read after it ([G4], acquire): failed <= ended.
  std::atomic<std::uint64_t> started_{0}, ended_{0}, failed_{0};
  latency_histogram ttft_;
  std::uint64_t hash_seed_;  // key of name_label::hash, per aggregator; set at construction
  std::array<model_entry, kMaxModels + 1> models_;
  // [G1] release by the inserter after filling the entry; pairs with [G2], the acquire of lookups.
  std::atomic<std::size_t> model_count_{0};
  std::mutex insert_mutex_;
  mutable std::mutex rates_mutex_;
  std::vector<std::pair<std::string, model_rates>> rates_;
};

// ---- per-stream metrics ---------------------------------------------------------------------------------

struct stream_metrics_snapshot {
  std::array<std::uint64_t, kEventKindCount> events{};
  std::uint64_t total_events = 0;
  std::uint64_t chunks = 0;          // content deltas: text, thinking, signature and tool-argument deltas
  std::int64_t ttft_ns = -1;         // message_start to first text/thinking delta; -1 until known
  std::uint64_t duration_ns = 0;     // first observed event to last
  token_totals tokens;               // see the banner on usage
  double output_tokens_per_sec = 0;  // output tokens / (last event - first token); 0 when unknown
  std::uint64_t errors = 0;          // error events
  latency_histogram::snapshot gaps;  // inter-event gaps
};

// Metrics of one stream, fed by its consumer. observe() is single-writer (the consumer thread; an MPMC
// stream with several consumers needs them to take turns); snapshot() may be called from any thread (see the
// banner). Optionally forwards to an aggregator: the stream counts as started at construction and as ended at
// finish() (or destruction). About 900 bytes, no heap memory of its own. A stream_manager with
// manager_options::track_metrics constructs one beside each stream it creates (stream_ref::metrics()).
class stream_metrics {
 public:
  explicit stream_metrics(aggregator* totals = nullptr) noexcept;
  ~stream_metrics() { finish(); }
  stream_metrics(const stream_metrics&) = delete;
  stream_metrics& operator=(const stream_metrics&) = delete;

  // Single writer. Never allocates or throws; never blocks, except that the first sight of a provider/model
  // pair the aggregator has not seen (while its table has room) locks the aggregator's insert mutex once.
  void observe(const event& e) noexcept;
  // Marks the stream ended in the aggregator (failed if an error event was seen). Idempotent; the writer's
  // thread (or any thread once the writer has stopped and that is ordered before, e.g. by a join). Events
  // observed after it still count here and in the aggregator's per-kind totals.
  void finish() noexcept;
  // Any thread. While the writer runs, `tokens` may miss part or all of the current message's usage, as
  // it moves to the finished messages' total at the next message_start; it never counts a message twice.
  stream_metrics_snapshot snapshot() const noexcept;

 private:
  // All relaxed: single writer; readers take statistics, nothing is published through these.
  std::array<std::atomic<std::uint64_t>, kEventKindCount> events_{};
  std::atomic<std::uint64_t> chunks_{0};
  std::atomic<std::int64_t> first_ns_{-1}, last_ns_{-1}, start_ns_{-1}, first_token_ns_{-1}, ttft_ns_{-1};
  // Except these: a message_start zeroes message_tokens_ before it adds the message to done_tokens_
  // (release, [G5]), and snapshot() reads done_tokens_ first (acquire, [G6]).
  std::array<std::atomic<std::uint64_t>, 4> done_tokens_{};     // usage of finished messages
  std::array<std::atomic<std::uint64_t>, 4> message_tokens_{};  // last usage of the current message
  latency_histogram gaps_;
  aggregator* totals_;
  // Writer-thread only (never read by snapshot()).
  std::size_t slot_ = aggregator::kOverflowSlot;
  bool slot_known_ = false;
  bool saw_error_ = false;
  bool ended_ = false;
};

// ---- health thresholds ----------------------------------------------------------------------------------

enum class health_check : std::uint8_t { error_rate, ttft_p99, queue_depth, drop_rate };
inline constexpr std::size_t kHealthCheckCount = 4;
std::string_view to_string(health_check check) noexcept;

struct health_sample {
  double error_rate = 0;          // aggregator_snapshot::error_rate
  std::uint64_t ttft_p99_ns = 0;  // aggregator_snapshot::ttft.percentile(0.99)
  std::uint64_t queue_depth = 0;  // e.g. the largest stream::approx_size()
  double drop_rate = 0;           // dropped / sent over the streams sampled
};
// Builds a sample from an aggregator snapshot and stream counters (summed over the streams given).
health_sample make_health_sample(const aggregator_snapshot& totals,
                                 std::span<const stream_counters> streams) noexcept;

struct health_alert {
  health_check check;
  double value;  // the observed value (ns for ttft_p99, events for queue_depth)
  double limit;
  std::chrono::steady_clock::time_point at;
};

struct health_options {
  // A check fires when its value exceeds its limit; a limit <= 0 disables the check.
  double max_error_rate = 0;
  std::uint64_t max_ttft_p99_ns = 0;
  std::uint64_t max_queue_depth = 0;
  double max_drop_rate = 0;
  std::chrono::nanoseconds min_interval = std::chrono::seconds(60);  // per check
  std::function<void(const health_alert&)> on_alert;
  std::function<std::chrono::steady_clock::time_point()> now;  // clock; steady_clock::now when empty
};

// Evaluates thresholds against samples and calls on_alert, rate-limited per check. Thread-safe (a mutex:
// evaluate() is a periodic call, not a per-event one). on_alert runs on the caller's thread, outside the
// lock; an exception from it propagates to evaluate()'s caller once every due alert was delivered (the
// first one, when several callbacks throw).
class health_monitor {
 public:
  explicit health_monitor(health_options options);
  // Returns how many alerts fired. Locks briefly; never allocates.
  std::size_t evaluate(const health_sample& sample);

 private:
  health_options options_;
  std::mutex mutex_;
  std::array<std::chrono::steady_clock::time_point, kHealthCheckCount> last_{};
  std::array<bool, kHealthCheckCount> fired_{};
};

// ---- workflow progress ----------------------------------------------------------------------------------

struct progress_snapshot {
  std::uint32_t completed = 0, failed = 0, total = 0;  // total 0: unknown
  std::string current_step;                            // subject of the last step_started
  std::uint16_t current_index = 0;
  bool running = false, finished = false, succeeded = false;
  std::uint64_t elapsed_ns = 0;  // execution_started to the last observed event
};

// Progress of one workflow execution from its lifecycle events. The total is set with set_total() or taken
// from execution_started's detail when that is a decimal number or contains `total=N` (or `steps=N`).
// Not thread-safe: feed and read it on one thread (it copies step names; keep it off token hot paths).
class progress_tracker {
 public:
  void set_total(std::uint32_t total) noexcept { state_.total = total; }
  // Ignores kinds other than execution_* and step_*. Allocates only when a step name outgrows the last.
  void observe(const event& e);
  const progress_snapshot& snapshot() const noexcept { return state_; }

 private:
  progress_snapshot state_;
  std::int64_t started_ns_ = -1;
};

}  // namespace rill
