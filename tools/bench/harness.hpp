// rill-bench harness: pinned threads, the core-to-core probe, latency histograms, interleaved repetition of
// the implementations a scenario compares, and the result records the tables and JSON are made from.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace rill_bench {

using steady = std::chrono::steady_clock;

// ---- settings ----------------------------------------------------------------------------------------

struct run_config {
  std::chrono::milliseconds run_time{200};  // time budget of one timed run (time-bounded scenarios)
  int repetitions = 5;                      // runs per implementation, interleaved
  bool quick = false;                       // CI/smoke sizes
  int c2c_rounds = 20000;                   // round trips per core-to-core probe
  // Each table measures one vCPU placement, its home: the median of five core-to-core probes taken as the
  // table starts. A run whose probe before or after falls outside [home / kPlacementBand, home *
  // kPlacementBand] ran on another placement; it is run again once a probe reads the home placement
  // again (idle pauses of 250 ms, at most 10 s), up to `retakes` times (0: keep every run). Runs kept
  // from another placement are counted either way (impl_summary::off_placement).
  int retakes = 3;
  // Wall time the whole process may spend on runs it discards and on waiting for the placement; once it
  // is spent, runs from another placement are kept (and counted as such).
  std::chrono::seconds placement_budget{180};
};

// How far a probe may stray from the home core-to-core latency and still be the same vCPU placement. This
// VM's placements differ by 1.7x or more (SMT siblings 15-29 ns, near 40-60 ns, 85-150 ns, far 190-350 ns).
inline constexpr double kPlacementBand = 1.6;

// ---- verification ------------------------------------------------------------------------------------

// Thrown (on the main thread) when a run delivered the wrong count, order or checksum.
struct verification_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Collects the first failure seen on any worker thread; checked after the threads are joined.
class failure_note {
 public:
  void fail(std::string what) noexcept;
  // acquire: pairs with fail()'s release, so message_ is complete once this reads true.
  bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }
  // Throws verification_error with the first recorded message, prefixed with `context`.
  void throw_if_failed(const std::string& context) const;

 private:
  std::atomic<bool> failed_{false};
  std::atomic<bool> claimed_{false};
  std::string message_;
};

// ---- threads -----------------------------------------------------------------------------------------

// Pins the calling thread to `cpu`. Returns false (and warns once per process) when that CPU is missing or
// the call fails; the run then continues unpinned.
bool pin_this_thread(int cpu) noexcept;
// CPU a worker with this index runs on: 0, 1, 0, 1, ... (the machine pair the design notes measure).
int cpu_for_worker(std::size_t worker) noexcept;
// What a polling loop does after a failed poll. Two threads on two CPUs only pause (a yield would hand the
// CPU to unrelated work for a whole time slice); with more threads than CPUs a loop yields after 64 misses
// in a row so the thread it waits for can run. Every implementation in a scenario uses the same policy.
struct backoff {
  bool may_yield = false;
  std::uint32_t failures = 0;
  void pause() noexcept;
  void reset() noexcept { failures = 0; }
};

// Runs each worker on its own pinned thread (worker i on cpu_for_worker(i) unless `cpus` says otherwise).
// Workers start together; `stop` becomes true after `time_budget` (zero: never; the workers then end by
// themselves). Returns after all workers are joined.
void run_workers(std::vector<std::function<void(const std::atomic<bool>& stop)>> workers,
                 std::chrono::milliseconds time_budget, std::vector<int> cpus = {});

// One-way core-to-core latency (ns): an atomic ping-pong between cpu0 and cpu1, round trip time / 2.
double probe_c2c_ns(int rounds);

// ---- clocks ------------------------------------------------------------------------------------------

inline std::uint64_t tsc() noexcept { return __builtin_ia32_rdtsc(); }
double ns_per_tick() noexcept;                 // from rill's one-time TSC calibration
double measured_tsc_cost_ns();                 // median cost of one rdtsc, back to back
double measured_steady_cost_ns();              // median cost of one steady_clock::now()
inline double seconds_between(steady::time_point a, steady::time_point b) noexcept {
  return std::chrono::duration<double>(b - a).count();
}

// ---- latency histogram -------------------------------------------------------------------------------

// Log-linear buckets (64 per power of two, about 1.6% resolution) from 1 ns to about 70 s. Fixed size,
// so recording never allocates inside a timed loop.
class latency_histogram {
 public:
  latency_histogram();
  void add(std::uint64_t ns) noexcept;
  void merge(const latency_histogram& other) noexcept;
  std::uint64_t count() const noexcept { return count_; }
  double percentile(double q) const noexcept;  // q in [0, 1]; bucket midpoint
  double max() const noexcept { return static_cast<double>(max_); }

 private:
  static constexpr int kSubBits = 6;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kPowers = 37;
  static std::size_t bucket_of(std::uint64_t ns) noexcept;
  static double bucket_mid(std::size_t b) noexcept;
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

// ---- results -----------------------------------------------------------------------------------------

using param_list = std::vector<std::pair<std::string, std::string>>;

// The median of `v` (the mean of the middle two for an even count; 0 when empty).
double median_of(std::vector<double> v);

// What one timed run measured. Fields that do not apply stay empty (null in JSON).
struct run_result {
  std::optional<double> events_per_sec;  // events (or operations) per second
  std::optional<double> bytes_per_sec;
  std::optional<double> p50_ns, p99_ns, p999_ns, max_ns;
  std::uint64_t latency_samples = 0;     // samples behind the percentiles above (set_latency)
  std::optional<double> bytes;           // bytes per buffered event / per stream
  std::optional<double> lag_events;      // fanout: the slowest subscriber's largest backlog (events)
  // spsc_batch_throughput: the consumer's polls that found the queue empty, per 64 events it took (under
  // kBacklogEmptyPolls: the backlog regime).
  std::optional<double> empty_polls_per_batch;
  // manager_lookup with churn: the writer's create + close pairs per second during the run.
  std::optional<double> churn_ops_per_sec;
  void set_latency(const latency_histogram& h);
};

// A run's percentile q is kept only when the run took at least 1 / (1 - q) samples (100 for p99, 1000
// for p99.9): below that the "percentile" is the run's largest sample or close to it, which max_ns
// already reports. A row whose runs took fewer (blocking_handoff: 100-300 hand-offs per run) shows it as
// null ("-").
inline constexpr std::uint64_t kMinSamplesP99 = 100;
inline constexpr std::uint64_t kMinSamplesP999 = 1000;

// A batch run whose consumer found the queue empty fewer times than this per 64 events ran in the backlog
// regime (the consumer almost never waits), else caught up (docs/benchmarking.md, "Batches, measured per
// run"). rill-bench's batch table and perf/batch_regime_perf classify runs by it.
inline constexpr double kBacklogEmptyPolls = 1.0;

// The primary figure of a scenario: events_per_sec, p50_ns, bytes, or bytes_per_sec (byte_rate).
enum class metric : std::uint8_t { throughput, latency, bytes, byte_rate };

struct impl_case {
  std::string impl;   // JSON impl name (rill, moodycamel_rwq, ...)
  param_list params;  // extra params of this row (for example stamping=none)
  std::function<run_result(const run_config&)> run;  // throws verification_error on a wrong result
};

struct scenario_case {
  std::string scenario;
  param_list params;
  metric primary = metric::throughput;
  std::vector<impl_case> impls;
  std::string note;   // printed under the table (what the row measures, the clock cost)
  // One thread measures, so where the two vCPUs sit does not matter: no placement re-takes.
  bool one_thread = false;
};

// Aggregate of one implementation's runs.
struct impl_summary {
  std::string scenario, impl, label;
  param_list params;  // scenario params followed by the impl's own
  metric primary = metric::throughput;
  // p50_ns, p99_ns, p999_ns: medians of the runs' own percentiles (p99 and p999 null when a run took too
  // few samples: kMinSamplesP99, kMinSamplesP999); max_ns: the largest sample of all the kept runs.
  std::optional<double> events_per_sec, min, max, bytes_per_sec, p50_ns, p99_ns, p999_ns, max_ns, bytes,
      lag_events, empty_polls_per_batch, churn_ops_per_sec;
  std::optional<double> latency_samples_per_run;  // the fewest latency samples one kept run took
  int runs = 0;
  // Placement of a two-thread table (all empty for one-thread tables, which are not checked).
  std::optional<double> home_c2c_ns;  // the table's home placement (median of five probes at its start)
  std::optional<int> retaken;         // runs done again because their probes showed another vCPU placement
  std::optional<int> off_placement;   // runs kept although their probes showed another placement
                                      // (re-takes used up, placement budget spent, or --retakes 0)
  double c2c_ns_before = 0, c2c_ns_after = 0;
  double primary_median = 0, primary_min = 0, primary_max = 0;
};

// Runs every implementation of `sc` `cfg.repetitions` times, interleaved (A B C A B C ...), probing the
// core-to-core latency before and after each run. Unless the scenario is one_thread, a run outside the
// home placement is run again when the placement is back (up to cfg.retakes times) and counted as
// off_placement when kept (re-takes used up, or --retakes 0). Prints progress to stderr.
std::vector<impl_summary> run_interleaved(const scenario_case& sc, const run_config& cfg);

// ---- measurements in a process of their own ---------------------------------------------------------

// Resident set size of the calling process in bytes (/proc/self/statm); 0 when it cannot be read.
std::size_t resident_bytes();

// A figure that is only true in a fresh process. RSS growth counts pages: in a process that has run other
// scenarios (or an earlier run of the same one), the allocator keeps freed memory resident and new objects
// reuse it, so the growth reads low. rill-bench therefore starts itself again as
// `rill-bench --child NAME ARG`, and the child runs the measurement NAME with ARG and prints its figure.
struct child_measurement {
  std::string name;
  std::function<double(const std::string& arg)> measure;  // throws verification_error on a wrong result
};

// Parent side: runs this program again as `--child name arg` and returns the figure the child printed.
// Throws verification_error when the child cannot start, fails (its stderr is this process's) or prints
// no number. Only a program whose main dispatches --child to run_child() (rill-bench) can be asked.
double measure_in_child(const std::string& name, const std::string& arg);

// Child side, called by main for `--child NAME ARG`: runs the measurement `name` from `all` and prints its
// figure on stdout. Returns the exit status: 0, or 1 (with a message on stderr) for an unknown name or a
// failed measurement.
int run_child(const std::vector<child_measurement>& all, const std::string& name, const std::string& arg);

// ---- scenario registry -------------------------------------------------------------------------------

struct scenario_entry {
  std::string name;
  std::function<std::vector<scenario_case>(const run_config&)> build;
};
std::vector<scenario_entry> spsc_scenarios();    // spsc_throughput, spsc_batch_throughput, ping_pong_rtt,
                                                 // blocking_handoff
std::vector<scenario_entry> mpmc_scenarios();    // mpmc_throughput, mpmc_batch_throughput
std::vector<scenario_entry> replay_scenarios();  // memory_buffered_event, llm_replay
std::vector<scenario_entry> manager_scenarios(); // manager_lookup, create_close, memory_idle_stream
std::vector<child_measurement> manager_child_measurements();  // what memory_idle_stream runs in a child
std::vector<scenario_entry> codec_scenarios();   // sse_decode, adapter_decode, sse_encode (needs rill_codec)
std::vector<scenario_entry> pipeline_scenarios(); // pipeline_overhead, pipeline_dispatch
std::vector<scenario_entry> fanout_scenarios();   // fanout

}  // namespace rill_bench
