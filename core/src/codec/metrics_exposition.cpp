// Prometheus text and JSON exposition of metrics snapshots (rill/metrics_exposition.hpp). Part of
// rill::codec: the JSON writer escapes strings.
#include "rill/metrics_exposition.hpp"

#include <charconv>
#include <cmath>
#include <string>

#include "internal/json_out.hpp"

namespace rill {

namespace {

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

// Prometheus label value escaping: backslash, double quote and line feed. Label values must be UTF-8: each
// maximal ill-formed subsequence becomes U+FFFD, as in the JSON writer (whose check this reuses).
void append_label(std::string& out, std::string_view v) {
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  const auto* const end = p + v.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c >= 0x80) {
      std::size_t bad_length = 0;
      if (const std::size_t length = codec::internal::utf8_sequence(p, end, bad_length); length != 0) {
        out.append(reinterpret_cast<const char*>(p), length);
        p += length;
      } else {
        out += "\xef\xbf\xbd";
        p += bad_length;
      }
      continue;
    }
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += static_cast<char>(c);
    ++p;
  }
}

// A metric name: `prefix` then `suffix` (a valid literal). Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, so
// each byte of the prefix outside [a-zA-Z0-9_:] is written as '_', and a prefix that starts with a digit
// gets a '_' before it. Writes straight into `out`: no temporary string.
void append_name(std::string& out, std::string_view prefix, std::string_view suffix) {
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!prefix.empty() && is_digit(prefix.front())) out += '_';
  for (const char c : prefix) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == ':';
    out += ok ? c : '_';
  }
  out += suffix;
}

// `text` as a quoted JSON string. The string escaper itself, not codec::append_json_string: that one is
// noexcept, so a failed allocation there would terminate instead of throwing std::bad_alloc to our caller.
void append_json_text(std::string& out, std::string_view text) {
  codec::internal::string_sink sink{out};
  (void)codec::internal::write_string(sink, text, codec::invalid_utf8::replace);  // replace: never fails
}

}  // namespace

std::string to_prometheus(const aggregator_snapshot& totals, std::string_view prefix) {
  std::string out;
  out.reserve(4096);
  // Every piece is appended to `out` on its own: the result is the only allocation.
  auto name = [&](const char* suffix) { append_name(out, prefix, suffix); };
  auto family = [&](const char* metric, const char* type, const char* help) {
    out += "# HELP ";
    name(metric);
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    name(metric);
    out += ' ';
    out += type;
    out += '\n';
  };
  auto sample = [&](const char* metric, std::uint64_t v) {
    name(metric);
    out += ' ';
    append_uint(out, v);
    out += '\n';
  };

  family("_events_total", "counter", "Events observed, by kind.");
  for (std::size_t k = 0; k < kEventKindCount; ++k) {
    if (totals.events[k] == 0) continue;
    name("_events_total{kind=\"");
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
  name("_stream_error_ratio ");
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
        name("_tokens_total{provider=\"");
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
    family("_cost_estimate", "gauge",
           "Estimated cost of the tokens so far, from the configured per-model rates.");
    for (const auto& m : totals.models) {
      name("_cost_estimate{provider=\"");
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
    name("_ttft_seconds_bucket{le=\"");
    append_double(out, static_cast<double>(latency_histogram::bucket_upper(b)) / 1e9);
    out += "\"} ";
    append_uint(out, cumulative);
    out += '\n';
  }
  name("_ttft_seconds_bucket{le=\"+Inf\"} ");
  append_uint(out, totals.ttft.count);
  out += '\n';
  name("_ttft_seconds_sum ");
  append_double(out, static_cast<double>(totals.ttft.sum_ns) / 1e9);
  out += '\n';
  name("_ttft_seconds_count ");
  append_uint(out, totals.ttft.count);
  out += '\n';
  return out;
}

std::string to_json(const aggregator_snapshot& totals, std::span<const named_stream_metrics> streams) {
  std::string out;
  out.reserve(1024 + streams.size() * 256);
  auto key = [&](std::string_view k) {
    if (out.back() != '{' && out.back() != '[') out += ',';
    append_json_text(out, k);
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
    append_json_text(out, v);
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
