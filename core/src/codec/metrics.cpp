// Per-stream metrics, the aggregator, health alerts, workflow progress and their exposition (rill/metrics.hpp).
#include "rill/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "rill/codec/json.hpp"

namespace rill {

namespace {

constexpr std::size_t kIn = 0, kOut = 1, kCacheRead = 2, kCacheWrite = 3;

// Single-writer add: relaxed load + store (no locked instruction). Relaxed is enough: statistics only.
inline void bump(std::atomic<std::uint64_t>& a, std::uint64_t by = 1) noexcept {
  a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

inline std::int64_t steady_ns(const event& e) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(e.steady_time().time_since_epoch()).count();
}

std::string_view clipped(std::string_view s) noexcept {
  return s.substr(0, std::min(s.size(), aggregator::kMaxNameBytes));
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

// Shortest round-trip form; non-finite values are written as 0 (JSON has no NaN).
void append_double(std::string& out, double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

// Prometheus label value escaping: backslash, double quote and line feed.
void append_label(std::string& out, std::string_view v) {
  for (const char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
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

// ---- exposition -----------------------------------------------------------------------------------------

std::string to_prometheus(const aggregator_snapshot& totals, std::string_view prefix) {
  std::string out;
  out.reserve(4096);
  const std::string p(prefix);
  auto family = [&](const char* name, const char* type, const char* help) {
    out += "# HELP " + p + name + " " + help + "\n# TYPE " + p + name + " " + type + "\n";
  };
  auto sample = [&](const char* name, std::uint64_t v) {
    out += p + name + " ";
    append_uint(out, v);
    out += '\n';
  };

  family("_events_total", "counter", "Events observed, by kind.");
  for (std::size_t k = 0; k < kEventKindCount; ++k) {
    if (totals.events[k] == 0) continue;
    out += p + "_events_total{kind=\"";
    append_label(out, to_string(static_cast<event_kind>(k)));
    out += "\"} ";
    append_uint(out, totals.events[k]);
    out += '\n';
  }
  family("_streams_started_total", "counter", "Streams observed.");
  sample("_streams_started_total", totals.streams_started);
  family("_streams_ended_total", "counter", "Streams that ended.");
  sample("_streams_ended_total", totals.streams_ended);
  family("_streams_failed_total", "counter", "Streams that ended after an error event.");
  sample("_streams_failed_total", totals.streams_failed);
  family("_streams_active", "gauge", "Streams started and not yet ended.");
  sample("_streams_active", totals.active_streams);
  family("_stream_error_ratio", "gauge", "Failed streams over ended streams.");
  out += p + "_stream_error_ratio ";
  append_double(out, totals.error_rate);
  out += '\n';

  if (!totals.models.empty()) {
    family("_tokens_total", "counter", "Tokens reported by usage events, by provider, model and type.");
    for (const auto& m : totals.models) {
      const std::pair<const char*, std::uint64_t> types[] = {{"input", m.tokens.input},
                                                             {"output", m.tokens.output},
                                                             {"cache_read", m.tokens.cache_read},
                                                             {"cache_write", m.tokens.cache_write}};
      for (const auto& [type, v] : types) {
        out += p + "_tokens_total{provider=\"";
        append_label(out, m.provider);
        out += "\",model=\"";
        append_label(out, m.model);
        out += "\",type=\"";
        out += type;
        out += "\"} ";
        append_uint(out, v);
        out += '\n';
      }
    }
    // A gauge, not a counter: it is recomputed from the current rates, which may change.
    family("_cost_estimate", "gauge", "Estimated cost of the tokens so far, from the configured per-model rates.");
    for (const auto& m : totals.models) {
      out += p + "_cost_estimate{provider=\"";
      append_label(out, m.provider);
      out += "\",model=\"";
      append_label(out, m.model);
      out += "\"} ";
      append_double(out, m.cost);
      out += '\n';
    }
  }

  family("_ttft_seconds", "histogram", "Time from message_start to the first text or thinking delta.");
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b <= 36; ++b) {
    cumulative += totals.ttft.counts[b];
    if (b < 20) continue;
    out += p + "_ttft_seconds_bucket{le=\"";
    append_double(out, static_cast<double>(latency_histogram::bucket_upper(b)) / 1e9);
    out += "\"} ";
    append_uint(out, cumulative);
    out += '\n';
  }
  out += p + "_ttft_seconds_bucket{le=\"+Inf\"} ";
  append_uint(out, totals.ttft.count);
  out += '\n' + p + "_ttft_seconds_sum ";
  append_double(out, static_cast<double>(totals.ttft.sum_ns) / 1e9);
  out += '\n' + p + "_ttft_seconds_count ";
  append_uint(out, totals.ttft.count);
  out += '\n';
  return out;
}

std::string to_json(const aggregator_snapshot& totals, std::span<const named_stream_metrics> streams) {
  std::string out;
  out.reserve(1024 + streams.size() * 256);
  auto key = [&](std::string_view k) {
    if (out.back() != '{' && out.back() != '[') out += ',';
    (void)codec::append_json_string(out, k);
    out += ':';
  };
  auto u = [&](std::string_view k, std::uint64_t v) {
    key(k);
    append_uint(out, v);
  };
  auto d = [&](std::string_view k, double v) {
    key(k);
    append_double(out, v);
  };
  auto str = [&](std::string_view k, std::string_view v) {
    key(k);
    (void)codec::append_json_string(out, v);
  };
  out += '{';
  u("streams_started", totals.streams_started);
  u("streams_ended", totals.streams_ended);
  u("streams_failed", totals.streams_failed);
  u("active_streams", totals.active_streams);
  d("error_rate", totals.error_rate);
  key("events");
  out += '{';
  for (std::size_t k = 0; k < kEventKindCount; ++k) {
    if (totals.events[k] != 0) u(to_string(static_cast<event_kind>(k)), totals.events[k]);
  }
  out += '}';
  key("ttft");
  out += '{';
  u("count", totals.ttft.count);
  u("sum_ns", totals.ttft.sum_ns);
  u("p50_ns", totals.ttft.percentile(0.5));
  u("p90_ns", totals.ttft.percentile(0.9));
  u("p99_ns", totals.ttft.percentile(0.99));
  out += '}';
  key("models");
  out += '[';
  for (const auto& m : totals.models) {
    if (out.back() != '[') out += ',';
    out += '{';
    str("provider", m.provider);
    str("model", m.model);
    u("input_tokens", m.tokens.input);
    u("output_tokens", m.tokens.output);
    u("cache_read_tokens", m.tokens.cache_read);
    u("cache_write_tokens", m.tokens.cache_write);
    d("cost", m.cost);
    out += '}';
  }
  out += ']';
  d("total_cost", totals.total_cost);
  key("streams");
  out += '[';
  for (const auto& s : streams) {
    if (out.back() != '[') out += ',';
    out += '{';
    str("id", s.id);
    u("events", s.metrics.total_events);
    u("chunks", s.metrics.chunks);
    key("ttft_ns");
    append_int(out, s.metrics.ttft_ns);
    u("duration_ns", s.metrics.duration_ns);
    u("input_tokens", s.metrics.tokens.input);
    u("output_tokens", s.metrics.tokens.output);
    d("output_tokens_per_sec", s.metrics.output_tokens_per_sec);
    u("errors", s.metrics.errors);
    u("gap_p50_ns", s.metrics.gaps.percentile(0.5));
    u("gap_p99_ns", s.metrics.gaps.percentile(0.99));
    out += '}';
  }
  out += "]}";
  return out;
}

}  // namespace rill
