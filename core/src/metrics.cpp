// Per-stream metrics, the aggregator, health alerts and workflow progress (rill/metrics.hpp). Part of
// rill::core; the Prometheus / JSON exposition is in codec/metrics_exposition.cpp (rill::codec).
#include "rill/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

namespace rill {

namespace {

constexpr std::size_t kIn = 0, kOut = 1, kCacheRead = 2, kCacheWrite = 3;

// Single-writer add: relaxed load + store (no locked instruction). Relaxed is enough: statistics only.
inline void bump(std::atomic<std::uint64_t>& a, std::uint64_t by = 1) noexcept {
  a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

// An event's time: its stamp, or, for an unstamped event (a stream with the default stamping = none and a
// producer that did not stamp), the moment it is observed, read from the coarse clock (same epoch).
inline std::int64_t steady_ns(const event& e) noexcept {
  if (e.timestamp_clock() == clock_kind::none) return static_cast<std::int64_t>(clock::coarse_now_ns());
  return std::chrono::duration_cast<std::chrono::nanoseconds>(e.steady_time().time_since_epoch()).count();
}

std::string_view clipped(std::string_view s) noexcept {
  return s.substr(0, std::min(s.size(), aggregator::kMaxNameBytes));
}

bool is_content_delta(event_kind k) noexcept {
  return k == event_kind::text_delta || k == event_kind::thinking_delta || k == event_kind::signature_delta ||
         k == event_kind::tool_args_delta;
}

}  // namespace

// ---- histogram ------------------------------------------------------------------------------------------

std::uint64_t latency_histogram::snapshot::percentile(double q) const noexcept {
  if (count == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count)));
  rank = std::max<std::uint64_t>(rank, 1);
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < kBuckets; ++b) {
    seen += counts[b];
    if (seen >= rank) return bucket_upper(b);
  }
  return bucket_upper(kBuckets - 1);
}

latency_histogram::snapshot latency_histogram::read() const noexcept {
  snapshot s;
  for (std::size_t b = 0; b < kBuckets; ++b) {
    s.counts[b] = buckets_[b].load(std::memory_order_relaxed);  // a statistic
    s.count += s.counts[b];
  }
  s.sum_ns = sum_.load(std::memory_order_relaxed);
  return s;
}

// ---- aggregator -----------------------------------------------------------------------------------------

aggregator::aggregator() {
  auto& other = models_[kOverflowSlot];
  std::memcpy(other.provider.data(), "other", 5);
  std::memcpy(other.model.data(), "other", 5);
  other.provider_size = other.model_size = 5;
}

void aggregator::set_rates(std::string_view model, const model_rates& rates) {
  std::lock_guard lock(rates_mutex_);
  for (auto& [name, r] : rates_) {
    if (name == model) {
      r = rates;
      return;
    }
  }
  rates_.emplace_back(std::string(model), rates);
}

std::size_t aggregator::model_slot(std::string_view provider, std::string_view model) noexcept {
  provider = clipped(provider);
  model = clipped(model);
  auto find = [&](std::size_t from, std::size_t to) -> std::size_t {
    for (std::size_t i = from; i < to; ++i) {
      const auto& m = models_[i];
      if (std::string_view(m.provider.data(), m.provider_size) == provider &&
          std::string_view(m.model.data(), m.model_size) == model) {
        return i;
      }
    }
    return kOverflowSlot;
  };
  // [G2] acquire: entries below the count are fully written (pairs with [G1]).
  const std::size_t known = model_count_.load(std::memory_order_acquire);
  if (const std::size_t i = find(0, known); i != kOverflowSlot) return i;
  if (known == kMaxModels) return kOverflowSlot;  // full for good (the count only grows): no lock
  std::lock_guard lock(insert_mutex_);
  // Relaxed under the mutex: only inserters write the count, and they hold this mutex.
  const std::size_t now = model_count_.load(std::memory_order_relaxed);
  if (const std::size_t i = find(known, now); i != kOverflowSlot) return i;
  if (now == kMaxModels) return kOverflowSlot;
  auto& m = models_[now];
  std::memcpy(m.provider.data(), provider.data(), provider.size());
  std::memcpy(m.model.data(), model.data(), model.size());
  m.provider_size = static_cast<std::uint8_t>(provider.size());
  m.model_size = static_cast<std::uint8_t>(model.size());
  model_count_.store(now + 1, std::memory_order_release);  // [G1] publishes the entry; pairs with [G2]
  return now;
}

void aggregator::add_tokens(std::size_t slot, const token_totals& delta) noexcept {
  auto& t = models_[std::min(slot, kOverflowSlot)].tokens;
  // Relaxed: statistics; nothing is published through the counts.
  if (delta.input != 0) t[kIn].fetch_add(delta.input, std::memory_order_relaxed);
  if (delta.output != 0) t[kOut].fetch_add(delta.output, std::memory_order_relaxed);
  if (delta.cache_read != 0) t[kCacheRead].fetch_add(delta.cache_read, std::memory_order_relaxed);
  if (delta.cache_write != 0) t[kCacheWrite].fetch_add(delta.cache_write, std::memory_order_relaxed);
}

void aggregator::stream_ended(bool failed) noexcept {
  // Relaxed: statistics. A reader may see ended ahead of failed for one stream; error_rate is a snapshot.
  if (failed) failed_.fetch_add(1, std::memory_order_relaxed);
  ended_.fetch_add(1, std::memory_order_relaxed);
}

aggregator_snapshot aggregator::snapshot() const {
  aggregator_snapshot s;
  for (std::size_t k = 0; k < kEventKindCount; ++k) s.events[k] = events_[k].load(std::memory_order_relaxed);
  // Relaxed loads of separate counters may cross while streams run: active is clamped at 0.
  s.streams_ended = ended_.load(std::memory_order_relaxed);
  s.streams_failed = failed_.load(std::memory_order_relaxed);
  s.streams_started = started_.load(std::memory_order_relaxed);
  s.active_streams = s.streams_started > s.streams_ended ? s.streams_started - s.streams_ended : 0;
  s.error_rate = s.streams_ended == 0 ? 0.0
                                      : static_cast<double>(s.streams_failed) / static_cast<double>(s.streams_ended);
  s.ttft = ttft_.read();
  std::vector<std::pair<std::string, model_rates>> rates;
  {
    std::lock_guard lock(rates_mutex_);
    rates = rates_;
  }
  const std::size_t known = model_count_.load(std::memory_order_acquire);  // [G2]
  auto add = [&](const model_entry& m) {
    model_usage_snapshot u;
    u.tokens.input = m.tokens[kIn].load(std::memory_order_relaxed);
    u.tokens.output = m.tokens[kOut].load(std::memory_order_relaxed);
    u.tokens.cache_read = m.tokens[kCacheRead].load(std::memory_order_relaxed);
    u.tokens.cache_write = m.tokens[kCacheWrite].load(std::memory_order_relaxed);
    u.provider.assign(m.provider.data(), m.provider_size);
    u.model.assign(m.model.data(), m.model_size);
    for (const auto& [name, r] : rates) {
      if (name == u.model) {
        u.cost = (static_cast<double>(u.tokens.input) * r.input_per_mtok +
                  static_cast<double>(u.tokens.output) * r.output_per_mtok +
                  static_cast<double>(u.tokens.cache_read) * r.cache_read_per_mtok +
                  static_cast<double>(u.tokens.cache_write) * r.cache_write_per_mtok) /
                 1e6;
      }
    }
    s.total_cost += u.cost;
    s.models.push_back(std::move(u));
  };
  for (std::size_t i = 0; i < known; ++i) add(models_[i]);
  const auto& other = models_[kOverflowSlot].tokens;
  if (std::any_of(other.begin(), other.end(), [](const auto& t) { return t.load(std::memory_order_relaxed) != 0; })) {
    add(models_[kOverflowSlot]);
  }
  return s;
}

// ---- stream_metrics -------------------------------------------------------------------------------------

stream_metrics::stream_metrics(aggregator* totals) noexcept : totals_(totals) {
  if (totals_ != nullptr) totals_->stream_started();
}

void stream_metrics::observe(const event& e) noexcept {
  const event_kind kind = e.kind();
  const auto k = static_cast<std::size_t>(kind) % kEventKindCount;
  bump(events_[k]);
  if (totals_ != nullptr) totals_->count_event(kind);
  const std::int64_t t = steady_ns(e);
  // Relaxed throughout: this thread is the only writer; readers want statistics.
  const std::int64_t last = last_ns_.load(std::memory_order_relaxed);
  if (last < 0) {
    first_ns_.store(t, std::memory_order_relaxed);
  } else {
    gaps_.record(t > last ? static_cast<std::uint64_t>(t - last) : 0);
  }
  last_ns_.store(std::max(t, last), std::memory_order_relaxed);
  if (is_content_delta(kind)) bump(chunks_);

  switch (kind) {
    case event_kind::stream_start:
      if (totals_ != nullptr && !slot_known_) {
        slot_ = totals_->model_slot(e.provider(), e.model());
        slot_known_ = true;
      }
      break;
    case event_kind::message_start: {
      if (start_ns_.load(std::memory_order_relaxed) < 0) start_ns_.store(t, std::memory_order_relaxed);
      if (totals_ != nullptr && !slot_known_ && !e.model().empty()) {
        slot_ = totals_->model_slot("unknown", e.model());
        slot_known_ = true;
      }
      for (std::size_t i = 0; i < 4; ++i) {  // a new message: the last one's usage is final
        bump(done_tokens_[i], message_tokens_[i].load(std::memory_order_relaxed));
        message_tokens_[i].store(0, std::memory_order_relaxed);
      }
      break;
    }
    case event_kind::text_delta:
    case event_kind::thinking_delta: {
      const std::int64_t start = start_ns_.load(std::memory_order_relaxed);
      if (start >= 0 && first_token_ns_.load(std::memory_order_relaxed) < 0) {
        first_token_ns_.store(t, std::memory_order_relaxed);
        const std::int64_t ttft = std::max<std::int64_t>(0, t - start);
        ttft_ns_.store(ttft, std::memory_order_relaxed);
        if (totals_ != nullptr) totals_->record_ttft(static_cast<std::uint64_t>(ttft));
      }
      break;
    }
    case event_kind::usage: {
      const usage_counts u = e.usage_values();
      const std::array<std::uint64_t, 4> now = {u.input_tokens, u.output_tokens, u.cache_read_tokens,
                                                u.cache_write_tokens};
      std::array<std::uint64_t, 4> delta{};
      for (std::size_t i = 0; i < 4; ++i) {
        const std::uint64_t before = message_tokens_[i].load(std::memory_order_relaxed);
        if (now[i] > before) {
          delta[i] = now[i] - before;
          message_tokens_[i].store(now[i], std::memory_order_relaxed);
        }
      }
      if (totals_ != nullptr) {
        if (!slot_known_) {
          slot_ = totals_->model_slot("unknown", "unknown");
          slot_known_ = true;
        }
        totals_->add_tokens(slot_, {delta[kIn], delta[kOut], delta[kCacheRead], delta[kCacheWrite]});
      }
      break;
    }
    case event_kind::error:
      saw_error_ = true;
      break;
    default:
      break;
  }
}

void stream_metrics::finish() noexcept {
  if (ended_) return;
  ended_ = true;
  if (totals_ != nullptr) totals_->stream_ended(saw_error_);
}

stream_metrics_snapshot stream_metrics::snapshot() const noexcept {
  stream_metrics_snapshot s;
  // Relaxed: statistics (see the header banner).
  for (std::size_t k = 0; k < kEventKindCount; ++k) {
    s.events[k] = events_[k].load(std::memory_order_relaxed);
    s.total_events += s.events[k];
  }
  s.errors = s.events[static_cast<std::size_t>(event_kind::error)];
  s.chunks = chunks_.load(std::memory_order_relaxed);
  s.ttft_ns = ttft_ns_.load(std::memory_order_relaxed);
  const std::int64_t first = first_ns_.load(std::memory_order_relaxed);
  const std::int64_t last = last_ns_.load(std::memory_order_relaxed);
  s.duration_ns = first >= 0 && last > first ? static_cast<std::uint64_t>(last - first) : 0;
  std::array<std::uint64_t, 4> t{};
  for (std::size_t i = 0; i < 4; ++i) {
    t[i] = done_tokens_[i].load(std::memory_order_relaxed) + message_tokens_[i].load(std::memory_order_relaxed);
  }
  s.tokens = {t[kIn], t[kOut], t[kCacheRead], t[kCacheWrite]};
  const std::int64_t first_token = first_token_ns_.load(std::memory_order_relaxed);
  if (first_token >= 0 && last > first_token && s.tokens.output != 0) {
    s.output_tokens_per_sec = static_cast<double>(s.tokens.output) * 1e9 / static_cast<double>(last - first_token);
  }
  s.gaps = gaps_.read();
  return s;
}

// ---- health ---------------------------------------------------------------------------------------------

std::string_view to_string(health_check check) noexcept {
  switch (check) {
    case health_check::error_rate: return "error_rate";
    case health_check::ttft_p99: return "ttft_p99";
    case health_check::queue_depth: return "queue_depth";
    case health_check::drop_rate: return "drop_rate";
  }
  return "unknown";
}

health_sample make_health_sample(const aggregator_snapshot& totals, std::span<const stream_counters> streams) noexcept {
  health_sample h;
  h.error_rate = totals.error_rate;
  h.ttft_p99_ns = totals.ttft.percentile(0.99);
  std::uint64_t sent = 0, dropped = 0;
  for (const auto& c : streams) {
    h.queue_depth = std::max(h.queue_depth, c.buffered);
    sent += c.sent;
    dropped += c.dropped;
  }
  h.drop_rate = sent == 0 ? 0.0 : static_cast<double>(dropped) / static_cast<double>(sent);
  return h;
}

health_monitor::health_monitor(health_options options) : options_(std::move(options)) {}

std::size_t health_monitor::evaluate(const health_sample& sample) {
  const auto now = options_.now ? options_.now() : std::chrono::steady_clock::now();
  std::array<health_alert, kHealthCheckCount> due;
  std::size_t n = 0;
  {
    std::lock_guard lock(mutex_);
    auto check = [&](health_check which, double value, double limit) {
      if (limit <= 0 || value <= limit) return;
      const auto i = static_cast<std::size_t>(which);
      if (fired_[i] && now - last_[i] < options_.min_interval) return;
      fired_[i] = true;
      last_[i] = now;
      due[n++] = {which, value, limit, now};
    };
    check(health_check::error_rate, sample.error_rate, options_.max_error_rate);
    check(health_check::ttft_p99, static_cast<double>(sample.ttft_p99_ns), static_cast<double>(options_.max_ttft_p99_ns));
    check(health_check::queue_depth, static_cast<double>(sample.queue_depth),
          static_cast<double>(options_.max_queue_depth));
    check(health_check::drop_rate, sample.drop_rate, options_.max_drop_rate);
  }
  if (options_.on_alert) {
    for (std::size_t i = 0; i < n; ++i) options_.on_alert(due[i]);
  }
  return n;
}

// ---- progress -------------------------------------------------------------------------------------------

namespace {

// A decimal number, or the N of a `total=N` / `steps=N` token; 0 when neither is there.
std::uint32_t total_from_detail(std::string_view d) noexcept {
  auto parse = [](std::string_view digits) -> std::uint32_t {
    std::uint32_t v = 0;
    const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    return r.ec == std::errc{} ? v : 0;
  };
  if (!d.empty() && std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; })) return parse(d);
  for (const std::string_view key : {std::string_view("total="), std::string_view("steps=")}) {
    const auto at = d.find(key);
    if (at == std::string_view::npos) continue;
    if (at != 0 && std::string_view(" ,;").find(d[at - 1]) == std::string_view::npos) continue;
    std::string_view rest = d.substr(at + key.size());
    std::size_t len = 0;
    while (len < rest.size() && rest[len] >= '0' && rest[len] <= '9') ++len;
    if (len != 0) return parse(rest.substr(0, len));
  }
  return 0;
}

}  // namespace

void progress_tracker::observe(const event& e) {
  const event_kind k = e.kind();
  if (k < event_kind::execution_started || k > event_kind::step_failed) return;
  const std::int64_t t = steady_ns(e);
  switch (k) {
    case event_kind::execution_started:
      started_ns_ = t;
      state_.running = true;
      state_.finished = false;
      if (const std::uint32_t total = total_from_detail(e.detail()); total != 0) state_.total = total;
      break;
    case event_kind::execution_completed:
    case event_kind::execution_failed:
      state_.running = false;
      state_.finished = true;
      state_.succeeded = k == event_kind::execution_completed;
      break;
    case event_kind::step_started:
      state_.current_step.assign(e.subject());
      state_.current_index = e.index();
      break;
    case event_kind::step_completed: ++state_.completed; break;
    case event_kind::step_failed: ++state_.failed; break;
    default: break;
  }
  if (started_ns_ >= 0 && t > started_ns_) state_.elapsed_ns = static_cast<std::uint64_t>(t - started_ns_);
}

}  // namespace rill
