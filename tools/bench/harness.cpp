#include "harness.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <thread>

#include "rill/clock.hpp"
#include "rill/detail/layout.hpp"

namespace rill_bench {

// ---- verification ------------------------------------------------------------------------------------

void failure_note::fail(std::string what) noexcept {
  // acq_rel: elects the one writer of message_ (the first failure); failed_ below publishes what it wrote.
  if (claimed_.exchange(true, std::memory_order_acq_rel)) return;
  message_ = std::move(what);
  failed_.store(true, std::memory_order_release);  // publishes message_; pairs with failed()
}

void failure_note::throw_if_failed(const std::string& context) const {
  if (failed()) throw verification_error(context + ": " + message_);
}

// ---- threads -----------------------------------------------------------------------------------------

bool pin_this_thread(int cpu) noexcept {
  static std::atomic<bool> warned{false};
  const unsigned cpus = std::thread::hardware_concurrency();
  bool ok = cpu >= 0 && (cpus == 0 || static_cast<unsigned>(cpu) < cpus);
  if (ok) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<unsigned>(cpu), &set);
    ok = pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
  }
  if (!ok && !warned.exchange(true, std::memory_order_relaxed)) {  // relaxed: picks who warns; orders nothing
    std::fprintf(stderr, "warning: cannot pin a thread to cpu%d; running unpinned (results are less stable)\n",
                 cpu);
  }
  return ok;
}

int cpu_for_worker(std::size_t worker) noexcept { return static_cast<int>(worker % 2); }

void backoff::pause() noexcept {
  if (!may_yield || ++failures < 64) {
    rill::detail::cpu_relax();
  } else {
    failures = 0;
    sched_yield();
  }
}

constexpr std::chrono::seconds kRunWatchdog{60};

void run_workers(std::vector<std::function<void(const std::atomic<bool>& stop)>> workers,
                 std::chrono::milliseconds time_budget, std::vector<int> cpus) {
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> ready{0};
  std::atomic<bool> go{false};
  std::atomic<std::size_t> finished{0};
  std::vector<std::thread> threads;
  threads.reserve(workers.size());
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const int cpu = i < cpus.size() ? cpus[i] : cpu_for_worker(i);
    threads.emplace_back([&, i, cpu] {
      pin_this_thread(cpu);
      ready.fetch_add(1, std::memory_order_acq_rel);  // acq_rel: a start count the main thread acquires
      // acquire: pairs with go's release below.
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      workers[i](stop);
      finished.fetch_add(1, std::memory_order_acq_rel);  // acq_rel: a done count the main thread acquires
    });
  }
  // acquire: pairs with the workers' ready increments.
  while (ready.load(std::memory_order_acquire) != workers.size()) std::this_thread::yield();
  go.store(true, std::memory_order_release);  // release: the workers' setup above happens before they start
  if (time_budget.count() > 0) {
    std::this_thread::sleep_for(time_budget);
    stop.store(true, std::memory_order_release);  // release: a time-out flag; results travel by the join
  }
  // A run that does not finish is a failure too (a lost element leaves a consumer waiting forever): fail
  // loudly instead of hanging CI.
  const auto deadline = steady::now() + time_budget + kRunWatchdog;
  // acquire: pairs with the workers' finished increments (the join below orders their results anyway).
  while (finished.load(std::memory_order_acquire) != workers.size()) {
    if (steady::now() > deadline) {
      std::fprintf(stderr, "\nrill-bench: VERIFICATION FAILED: a run did not finish within %lld s of its budget "
                           "(lost elements or a stuck queue)\n",
                   static_cast<long long>(kRunWatchdog.count()));
      std::fflush(stderr);
      std::_Exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto& t : threads) t.join();
}

double probe_c2c_ns(int rounds) {
  struct alignas(rill::detail::kFalseSharingRange) padded_flag {
    std::atomic<std::uint64_t> value{0};
  };
  padded_flag ping, pong;
  const int warmup = rounds / 10 + 1;
  const std::uint64_t total = static_cast<std::uint64_t>(warmup + rounds);
  steady::time_point start, end;
  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>&) {
    for (std::uint64_t i = 1; i <= total; ++i) {
      if (i == static_cast<std::uint64_t>(warmup) + 1) start = steady::now();
      // release/acquire: the hand-off a queue pays for; the value alone carries the ping-pong.
      ping.value.store(i, std::memory_order_release);
      while (pong.value.load(std::memory_order_acquire) != i) rill::detail::cpu_relax();
    }
    end = steady::now();
  });
  workers.emplace_back([&](const std::atomic<bool>&) {
    for (std::uint64_t i = 1; i <= total; ++i) {
      // acquire: pairs with the ping thread's release.
      while (ping.value.load(std::memory_order_acquire) != i) rill::detail::cpu_relax();
      pong.value.store(i, std::memory_order_release);  // release: pairs with the ping thread's acquire
    }
  });
  run_workers(std::move(workers), std::chrono::milliseconds(0), {0, 1});
  return std::chrono::duration<double, std::nano>(end - start).count() / (2.0 * rounds);
}

namespace {

// Between re-takes: idle for this long, probe, and again, until a probe reads the home placement or the
// wait is over. The host moves the vCPUs apart after seconds of spinning and back after a while idle.
constexpr std::chrono::milliseconds kPlacementPause{250};
constexpr std::chrono::seconds kPlacementWait{10};

steady::duration g_placement_spent{};  // discarded runs and placement waits so far (main thread only)

bool in_band(double home_ns, double c2c_ns) noexcept {
  return c2c_ns >= home_ns / kPlacementBand && c2c_ns <= home_ns * kPlacementBand;
}

// The median of five probes 20 ms apart, so that neither one outlier nor a placement that lasts a moment
// sets it.
double home_placement_ns(const run_config& cfg) {
  std::vector<double> probes;
  for (int i = 0; i < 5; ++i) {
    if (i != 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    probes.push_back(probe_c2c_ns(cfg.c2c_rounds));
  }
  return median_of(std::move(probes));
}

void wait_for_home_placement(const run_config& cfg, double home_ns) {
  const auto deadline = steady::now() + kPlacementWait;
  do {
    std::this_thread::sleep_for(kPlacementPause);
  } while (!in_band(home_ns, probe_c2c_ns(cfg.c2c_rounds)) && steady::now() < deadline);
}

}  // namespace

// ---- clocks ------------------------------------------------------------------------------------------

double ns_per_tick() noexcept { return rill::clock::tsc_calibration().ns_per_tick; }

namespace {
template <class Read>
double median_pair_cost_ns(Read read) {
  std::vector<double> costs;
  for (int rep = 0; rep < 101; ++rep) {
    constexpr int kReads = 1000;
    const std::uint64_t t0 = tsc();
    for (int i = 0; i < kReads; ++i) read();
    const std::uint64_t t1 = tsc();
    costs.push_back(static_cast<double>(t1 - t0) * ns_per_tick() / kReads);
  }
  std::nth_element(costs.begin(), costs.begin() + 50, costs.end());
  return costs[50];
}
}  // namespace

double measured_tsc_cost_ns() {
  return median_pair_cost_ns([] {
    volatile std::uint64_t sink = tsc();
    (void)sink;
  });
}

double measured_steady_cost_ns() {
  return median_pair_cost_ns([] {
    volatile auto sink = steady::now().time_since_epoch().count();
    (void)sink;
  });
}

// ---- latency histogram -------------------------------------------------------------------------------

latency_histogram::latency_histogram() : buckets_(static_cast<std::size_t>(kPowers) * kSub, 0) {}

std::size_t latency_histogram::bucket_of(std::uint64_t ns) noexcept {
  if (ns < static_cast<std::uint64_t>(kSub)) return static_cast<std::size_t>(ns);
  const int power = 63 - __builtin_clzll(ns);  // >= kSubBits
  const int shift = power - kSubBits;
  const std::size_t sub = static_cast<std::size_t>((ns >> shift) & (kSub - 1));
  const std::size_t b = static_cast<std::size_t>(shift + 1) * kSub + sub;
  return std::min(b, static_cast<std::size_t>(kPowers) * kSub - 1);
}

double latency_histogram::bucket_mid(std::size_t b) noexcept {
  if (b < static_cast<std::size_t>(kSub)) return static_cast<double>(b);
  const int shift = static_cast<int>(b / kSub) - 1;
  const double low = std::ldexp(static_cast<double>(kSub + b % kSub), shift);
  return low + std::ldexp(0.5, shift);
}

void latency_histogram::add(std::uint64_t ns) noexcept {
  ++buckets_[bucket_of(ns)];
  ++count_;
  if (ns > max_) max_ = ns;
}

void latency_histogram::merge(const latency_histogram& other) noexcept {
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

double latency_histogram::percentile(double q) const noexcept {
  if (count_ == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    seen += buckets_[b];
    if (seen >= std::max<std::uint64_t>(rank, 1)) return std::min(bucket_mid(b), static_cast<double>(max_));
  }
  return static_cast<double>(max_);
}

// ---- results -----------------------------------------------------------------------------------------

void run_result::set_latency(const latency_histogram& h) {
  p50_ns = h.percentile(0.50);
  p99_ns = h.percentile(0.99);
  p999_ns = h.percentile(0.999);
  max_ns = h.max();
  latency_samples = h.count();
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

namespace {

std::optional<double> median_field(const std::vector<run_result>& runs, std::optional<double> run_result::*field) {
  std::vector<double> v;
  for (const auto& r : runs) {
    if (r.*field) v.push_back(*(r.*field));
  }
  if (v.empty()) return std::nullopt;
  return median_of(std::move(v));
}

std::optional<double> max_field(const std::vector<run_result>& runs,
                                std::optional<double> run_result::*field) {
  std::optional<double> high;
  for (const auto& r : runs) {
    if (r.*field) high = std::max(high.value_or(*(r.*field)), *(r.*field));
  }
  return high;
}

double primary_of(const run_result& r, metric m) {
  switch (m) {
    case metric::throughput: return r.events_per_sec.value_or(0);
    case metric::latency: return r.p50_ns.value_or(0);
    case metric::bytes: return r.bytes.value_or(0);
    case metric::byte_rate: return r.bytes_per_sec.value_or(0);
  }
  return 0;
}

std::string label_of(const impl_case& ic) {
  std::string label = ic.impl;
  for (const auto& [k, v] : ic.params) label += "[" + k + "=" + v + "]";
  return label;
}

}  // namespace

std::vector<impl_summary> run_interleaved(const scenario_case& sc, const run_config& cfg) {
  const std::size_t n = sc.impls.size();
  std::vector<std::vector<run_result>> runs(n);
  std::vector<std::vector<double>> before(n), after(n);
  std::string title = sc.scenario;
  for (const auto& [k, v] : sc.params) title += " " + k + "=" + v;
  std::vector<int> retaken(n, 0), off_placement(n, 0);
  // Every two-thread table has a home placement and flags runs from another, whatever --retakes says
  // (--retakes 0 only keeps such runs instead of running them again).
  const std::optional<double> home_ns =
      sc.one_thread ? std::nullopt : std::optional<double>(home_placement_ns(cfg));
  for (int rep = 0; rep < cfg.repetitions; ++rep) {
    for (std::size_t i = 0; i < n; ++i) {
      const impl_case& ic = sc.impls[i];
      for (int attempt = 0;; ++attempt) {
        const auto attempt_start = steady::now();
        const double c2c_before = probe_c2c_ns(cfg.c2c_rounds);
        run_result r = ic.run(cfg);
        const double c2c_after = probe_c2c_ns(cfg.c2c_rounds);
        const bool home = !home_ns || (in_band(*home_ns, c2c_before) && in_band(*home_ns, c2c_after));
        const bool again = !home && attempt < cfg.retakes && g_placement_spent < cfg.placement_budget;
        const char* mark = home ? "" : again ? "  (another placement: again)" : "  (another placement: kept)";
        std::fprintf(stderr, "  %-40s run %d/%d  %-28s primary %12.1f  c2c %5.0f/%5.0f ns%s\n", title.c_str(),
                     rep + 1, cfg.repetitions, label_of(ic).c_str(), primary_of(r, sc.primary), c2c_before,
                     c2c_after, mark);
        if (again) {
          ++retaken[i];
          wait_for_home_placement(cfg, *home_ns);
          g_placement_spent += steady::now() - attempt_start;
          continue;
        }
        if (!home) ++off_placement[i];
        runs[i].push_back(std::move(r));
        before[i].push_back(c2c_before);
        after[i].push_back(c2c_after);
        break;
      }
    }
  }
  std::vector<impl_summary> out;
  for (std::size_t i = 0; i < n; ++i) {
    const impl_case& ic = sc.impls[i];
    impl_summary s;
    s.scenario = sc.scenario;
    s.impl = ic.impl;
    s.label = label_of(ic);
    s.params = sc.params;
    s.params.insert(s.params.end(), ic.params.begin(), ic.params.end());
    s.primary = sc.primary;
    s.runs = static_cast<int>(runs[i].size());
    if (home_ns) {
      s.home_c2c_ns = home_ns;
      s.retaken = retaken[i];
      s.off_placement = off_placement[i];
    }
    s.events_per_sec = median_field(runs[i], &run_result::events_per_sec);
    s.bytes_per_sec = median_field(runs[i], &run_result::bytes_per_sec);
    s.p50_ns = median_field(runs[i], &run_result::p50_ns);
    s.p99_ns = median_field(runs[i], &run_result::p99_ns);
    s.p999_ns = median_field(runs[i], &run_result::p999_ns);
    // The maximum is the largest sample of all the kept runs, not a median of the runs' maxima.
    s.max_ns = max_field(runs[i], &run_result::max_ns);
    if (s.p50_ns) {
      std::uint64_t fewest = std::numeric_limits<std::uint64_t>::max();
      for (const auto& r : runs[i]) fewest = std::min(fewest, r.latency_samples);
      s.latency_samples_per_run = static_cast<double>(fewest);
      // A percentile from fewer samples than it needs is the run's top sample or near it (max_ns says that).
      if (fewest < kMinSamplesP99) s.p99_ns.reset();
      if (fewest < kMinSamplesP999) s.p999_ns.reset();
    }
    s.bytes = median_field(runs[i], &run_result::bytes);
    s.lag_events = median_field(runs[i], &run_result::lag_events);
    s.empty_polls_per_batch = median_field(runs[i], &run_result::empty_polls_per_batch);
    s.churn_ops_per_sec = median_field(runs[i], &run_result::churn_ops_per_sec);
    std::vector<double> primary;
    for (const auto& r : runs[i]) primary.push_back(primary_of(r, sc.primary));
    s.primary_median = median_of(primary);
    s.primary_min = s.primary_max = s.primary_median;
    for (const double v : primary) {
      s.primary_min = std::min(s.primary_min, v);
      s.primary_max = std::max(s.primary_max, v);
    }
    if (s.events_per_sec) {
      double low = *s.events_per_sec, high = *s.events_per_sec;
      for (const auto& r : runs[i]) {
        low = std::min(low, r.events_per_sec.value_or(low));
        high = std::max(high, r.events_per_sec.value_or(high));
      }
      s.min = low;
      s.max = high;
    }
    s.c2c_ns_before = median_of(before[i]);
    s.c2c_ns_after = median_of(after[i]);
    out.push_back(std::move(s));
  }
  return out;
}

// ---- measurements in a process of their own ---------------------------------------------------------

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages_total = 0, pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return pages_resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

double measure_in_child(const std::string& name, const std::string& arg) {
  const std::string what = "measurement " + name + " " + arg + " in a child process";
  char exe[4096];
  const ssize_t exe_length = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (exe_length <= 0) throw verification_error(what + ": /proc/self/exe unreadable");
  exe[exe_length] = '\0';
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw verification_error(what + ": pipe: " + std::strerror(errno));
  // The child's stdout is the pipe (dup2 leaves the copy without O_CLOEXEC); both pipe ends themselves
  // close at exec, so the read end sees end-of-file when the child exits.
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  std::string arg0 = exe, arg1 = "--child", arg2 = name, arg3 = arg;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), arg3.data(), nullptr};
  pid_t child = 0;
  const int spawned = ::posix_spawn(&child, exe, &actions, nullptr, argv, environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (spawned != 0) {
    ::close(out[0]);
    throw verification_error(what + ": posix_spawn: " + std::strerror(spawned));
  }
  std::string printed;
  char buffer[256];
  for (;;) {
    const ssize_t n = ::read(out[0], buffer, sizeof buffer);
    if (n > 0) {
      printed.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw verification_error(what + " failed (" +
                             (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                                : "killed by signal " + std::to_string(WTERMSIG(status))) +
                             ")");
  }
  char* end = nullptr;
  const double figure = std::strtod(printed.c_str(), &end);
  if (end == printed.c_str() || (*end != '\n' && *end != '\0')) {
    throw verification_error(what + " printed no number: \"" + printed + "\"");
  }
  return figure;
}

int run_child(const std::vector<child_measurement>& all, const std::string& name, const std::string& arg) {
  const auto it =
      std::find_if(all.begin(), all.end(), [&](const child_measurement& m) { return m.name == name; });
  if (it == all.end()) {
    std::fprintf(stderr, "rill-bench --child: no measurement named %s\n", name.c_str());
    return 1;
  }
  try {
    std::printf("%.17g\n", it->measure(arg));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rill-bench --child %s %s: %s\n", name.c_str(), arg.c_str(), e.what());
    return 1;
  }
  return 0;
}

}  // namespace rill_bench
