// Per-stream metrics, the aggregator, health alerts and workflow progress (rill/metrics.hpp). Part of
// rill::core; the Prometheus / JSON exposition is in codec/metrics_exposition.cpp (rill::codec).
#include "rill/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>
#include <cstring>

#include "internal/json_out.hpp"  // codec::internal::utf8_sequence, the JSON writer's UTF-8 check
#include "rill/manager.hpp"       // detail::hash_id, detail::random_hash_seed

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

// Copies the start of `name` to `out` as valid UTF-8 (each maximal ill-formed subsequence as U+FFFD, as the
// JSON writer does), stopping before the first character that would not fit in `room` bytes. Returns the
// bytes written; `unchanged` tells whether that is all of `name`, byte for byte.
std::size_t copy_utf8(std::string_view name, char* out, std::size_t room, bool& unchanged) noexcept {
  static constexpr char kReplacement[] = "\xef\xbf\xbd";
  const auto* p = reinterpret_cast<const unsigned char*>(name.data());
  const auto* const end = p + name.size();
  std::size_t n = 0;
  unchanged = true;
  while (p < end) {
    const char* piece = reinterpret_cast<const char*>(p);
    std::size_t piece_size = 1, consumed = 1;
    if (*p >= 0x80) {
      std::size_t bad_length = 0;
      piece_size = consumed = codec::internal::utf8_sequence(p, end, bad_length);
      if (consumed == 0) {
        piece = kReplacement;
        piece_size = 3;
        consumed = bad_length;
        unchanged = false;
      }
    }
    if (piece_size > room - n) {
      unchanged = false;
      break;
    }
    std::memcpy(out + n, piece, piece_size);
    n += piece_size;
    p += consumed;
  }
  return n;
}

// Seed of the hash shown in derived labels: fixed, so a name's label is the same in every process (a
// restart keeps its Prometheus series). Telling names apart uses the aggregator's random key instead.
constexpr std::uint64_t kLabelHashSeed = 0x6c6162656c736565ull;
constexpr std::size_t kLabelSuffixBytes = 9;  // '~' and 8 hex digits

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

aggregator::aggregator() : hash_seed_(detail::random_hash_seed()) {
  auto& other = models_[kOverflowSlot];
  other.provider = other.model = label_of("other", hash_seed_);
}

aggregator::name_label aggregator::label_of(std::string_view name, std::uint64_t seed) noexcept {
  name_label l;
  bool unchanged = false;
  std::size_t n = copy_utf8(name, l.text.data(), kMaxNameBytes, unchanged);
  if (unchanged) {
    l.size = static_cast<std::uint8_t>(n);
    l.full_size = n;
    return l;
  }
  // Derived: the label no longer says which name it was, so the suffix (stable across processes) keeps
  // long names that share a start apart in the exposition, and the keyed hash tells names apart here.
  l = name_label{};
  n = copy_utf8(name, l.text.data(), kMaxNameBytes - kLabelSuffixBytes, unchanged);
  static constexpr char kHex[] = "0123456789abcdef";
  const auto shown = static_cast<std::uint32_t>(detail::hash_id(name, kLabelHashSeed) >> 32);
  l.text[n++] = '~';
  for (int shift = 28; shift >= 0; shift -= 4) l.text[n++] = kHex[(shown >> shift) & 0xf];
  l.size = static_cast<std::uint8_t>(n);
  l.verbatim = false;
  l.full_size = name.size();
  l.hash = detail::hash_id(name, seed);
  return l;
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
  const name_label p = label_of(provider, hash_seed_);
  const name_label m = label_of(model, hash_seed_);
  const auto& other = models_[kOverflowSlot];
  // A real other/other pair would print with the overflow entry's labels: it is counted in that entry.
  if (p == other.provider && m == other.model) return kOverflowSlot;
  // Entries have distinct labels (an insert checks), so the first with these labels decides: this pair's
  // slot, or, when it holds another pair, the overflow entry (two entries must not print alike).
  constexpr std::size_t kAbsent = ~std::size_t{0};
  auto find = [&](std::size_t from, std::size_t to) -> std::size_t {
    for (std::size_t i = from; i < to; ++i) {
      const auto& e = models_[i];
      if (e.provider.view() == p.view() && e.model.view() == m.view()) {
        return e.provider == p && e.model == m ? i : kOverflowSlot;
      }
    }
    return kAbsent;
  };
  // [G2] acquire: entries below the count are fully written (pairs with [G1]).
  const std::size_t known = model_count_.load(std::memory_order_acquire);
  if (const std::size_t i = find(0, known); i != kAbsent) return i;
  if (known == kMaxModels) return kOverflowSlot;  // full for good (the count only grows): no lock
  // At most kMaxModels inserts ever take this lock. std::mutex::lock cannot fail here (pthread_mutex_lock on
  // a default mutex reports errors only for recursive, error-checking or robust mutexes), so the throw that
  // noexcept would turn into terminate does not happen.
  std::lock_guard lock(insert_mutex_);
  // Relaxed under the mutex: only inserters write the count, and they hold this mutex.
  const std::size_t now = model_count_.load(std::memory_order_relaxed);
  if (const std::size_t i = find(known, now); i != kAbsent) return i;
  if (now == kMaxModels) return kOverflowSlot;
  auto& e = models_[now];
  e.provider = p;
  e.model = m;
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
  // Relaxed: a statistic; [G3] below orders it for the failed count.
  ended_.fetch_add(1, std::memory_order_relaxed);
  // [G3] release, after this stream's ended_ increment: a snapshot whose [G4] acquire counts this failure
  // also counts its end (release sequence: later fetch_adds on failed_ keep the synchronization).
  if (failed) failed_.fetch_add(1, std::memory_order_release);
}

aggregator_snapshot aggregator::snapshot() const {
  aggregator_snapshot s;
  for (std::size_t k = 0; k < kEventKindCount; ++k) s.events[k] = events_[k].load(std::memory_order_relaxed);
  // [G4] acquire, failed_ before ended_: pairs with [G3], so every failure counted here has its end counted
  // by the relaxed ended_ load below, which reads a value at least that recent: failed <= ended.
  s.streams_failed = failed_.load(std::memory_order_acquire);
  s.streams_ended = ended_.load(std::memory_order_relaxed);
  // Relaxed: statistics; started and ended may cross while streams run, so active is clamped at 0.
  s.streams_started = started_.load(std::memory_order_relaxed);
  s.active_streams = s.streams_started > s.streams_ended ? s.streams_started - s.streams_ended : 0;
  s.error_rate = s.streams_ended == 0
                     ? 0.0
                     : static_cast<double>(s.streams_failed) / static_cast<double>(s.streams_ended);
  s.error_rate = std::clamp(s.error_rate, 0.0, 1.0);  // a last guard; [G3]/[G4] already keep it <= 1
  s.ttft = ttft_.read();
  std::vector<std::pair<name_label, model_rates>> rates;  // labelled as model_slot() labels names
  {
    std::lock_guard lock(rates_mutex_);
    rates.reserve(rates_.size());
    for (const auto& [name, r] : rates_) rates.emplace_back(label_of(name, hash_seed_), r);
  }
  const std::size_t known = model_count_.load(std::memory_order_acquire);  // [G2]
  auto add = [&](const model_entry& m) {
    model_usage_snapshot u;
    u.tokens.input = m.tokens[kIn].load(std::memory_order_relaxed);
    u.tokens.output = m.tokens[kOut].load(std::memory_order_relaxed);
    u.tokens.cache_read = m.tokens[kCacheRead].load(std::memory_order_relaxed);
    u.tokens.cache_write = m.tokens[kCacheWrite].load(std::memory_order_relaxed);
    u.provider.assign(m.provider.view());
    u.model.assign(m.model.view());
    for (const auto& [name, r] : rates) {
      if (name == m.model) {  // the whole name, not just the label
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
  // Relaxed: statistics; only decides whether the overflow entry is listed.
  if (std::any_of(other.begin(), other.end(),
                  [](const auto& t) { return t.load(std::memory_order_relaxed) != 0; })) {
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
        // Relaxed: the single writer's own value; the zero is ordered for snapshots by [G5] below.
        const std::uint64_t finished = message_tokens_[i].load(std::memory_order_relaxed);
        message_tokens_[i].store(0, std::memory_order_relaxed);
        // [G5] release, after the zero: a snapshot whose [G6] acquire sees the new total then reads the
        // zero (or a later message's usage), never the usage just moved, so it cannot count it twice.
        // The load is relaxed: this thread's own last store.
        const std::uint64_t done = done_tokens_[i].load(std::memory_order_relaxed);
        done_tokens_[i].store(done + finished, std::memory_order_release);
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
    // [G6] acquire, before the current message's count: pairs with [G5] (a message is in one or neither).
    t[i] = done_tokens_[i].load(std::memory_order_acquire);
    t[i] += message_tokens_[i].load(std::memory_order_relaxed);
  }
  s.tokens = {t[kIn], t[kOut], t[kCacheRead], t[kCacheWrite]};
  const std::int64_t first_token = first_token_ns_.load(std::memory_order_relaxed);
  if (first_token >= 0 && last > first_token && s.tokens.output != 0) {
    s.output_tokens_per_sec =
        static_cast<double>(s.tokens.output) * 1e9 / static_cast<double>(last - first_token);
  }
  s.gaps = gaps_.read();
  return s;
}

// ---- health ---------------------------------------------------------------------------------------------

std::string_view to_string(health_check check) noexcept {
  switch (check) {
    case health_check::error_rate:
      return "error_rate";
    case health_check::ttft_p99:
      return "ttft_p99";
    case health_check::queue_depth:
      return "queue_depth";
    case health_check::drop_rate:
      return "drop_rate";
  }
  return "unknown";
}

health_sample make_health_sample(const aggregator_snapshot& totals,
                                 std::span<const stream_counters> streams) noexcept {
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
    check(health_check::ttft_p99, static_cast<double>(sample.ttft_p99_ns),
          static_cast<double>(options_.max_ttft_p99_ns));
    check(health_check::queue_depth, static_cast<double>(sample.queue_depth),
          static_cast<double>(options_.max_queue_depth));
    check(health_check::drop_rate, sample.drop_rate, options_.max_drop_rate);
  }
  if (options_.on_alert) {
    // Every due alert is delivered (each now counts as fired): a callback that throws does not hold back the
    // others; the first exception is rethrown after them.
    std::exception_ptr first_failure;
    for (std::size_t i = 0; i < n; ++i) {
      try {
        options_.on_alert(due[i]);
      } catch (...) {
        if (!first_failure) first_failure = std::current_exception();
      }
    }
    if (first_failure) std::rethrow_exception(first_failure);
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
  if (!d.empty() && std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return parse(d);
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
    case event_kind::step_completed:
      ++state_.completed;
      break;
    case event_kind::step_failed:
      ++state_.failed;
      break;
    default:
      break;
  }
  if (started_ns_ >= 0 && t > started_ns_) state_.elapsed_ns = static_cast<std::uint64_t>(t - started_ns_);
}

}  // namespace rill
