// rill/metrics.hpp: per-stream metrics from stamped events, aggregator totals, exposition, alerts, progress.
#include "rill/metrics.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "rill/metrics_exposition.hpp"
#include "stamped_events.hpp"

namespace {

using rill::test::at;
using rill::test::kMs;
using rill::test::small_stream;
using rill::test::usage;
using namespace std::chrono_literals;

TEST(StreamMetrics, TtftDurationAndRateFromStampedEvents) {
  rill::stream_metrics m;
  for (const auto& e : small_stream()) m.observe(e);
  const auto s = m.snapshot();
  EXPECT_EQ(s.ttft_ns, static_cast<std::int64_t>(250 * kMs));
  EXPECT_EQ(s.duration_ns, 1251 * kMs);
  EXPECT_EQ(s.chunks, 2u);
  EXPECT_EQ(s.total_events, 7u);
  EXPECT_EQ(s.tokens.input, 100u);
  EXPECT_EQ(s.tokens.output, 50u);  // running totals: the last value counts, not the sum
  // 50 tokens from the first token (t0 + 251 ms) to the last event (t0 + 1251 ms): 1 s.
  EXPECT_DOUBLE_EQ(s.output_tokens_per_sec, 50.0);
  EXPECT_EQ(s.errors, 0u);
}

// Events from a stream that does not stamp (the default) are timed when observed: a TTFT and a duration
// still come out. The 30 ms sleeps are far above the coarse clock's 1-4 ms tick; only lower bounds are
// checked.
TEST(StreamMetrics, UnstampedEventsAreTimedWhenObserved) {
  rill::stream_metrics m;
  m.observe(rill::event::message_start("msg_1"));
  std::this_thread::sleep_for(30ms);
  m.observe(rill::event::text_delta(0, "Hi"));
  std::this_thread::sleep_for(30ms);
  m.observe(rill::event::message_stop(rill::stop_reason::end_turn));
  const auto s = m.snapshot();
  EXPECT_GE(s.ttft_ns, static_cast<std::int64_t>(20 * kMs));
  EXPECT_GE(s.duration_ns, 40 * kMs);
  EXPECT_EQ(s.total_events, 3u);
}

TEST(StreamMetrics, ExactCountsByKindAndGapHistogram) {
  rill::stream_metrics m;
  for (const auto& e : small_stream()) m.observe(e);
  const auto s = m.snapshot();
  auto count = [&](rill::event_kind k) { return s.events[static_cast<std::size_t>(k)]; };
  EXPECT_EQ(count(rill::event_kind::stream_start), 1u);
  EXPECT_EQ(count(rill::event_kind::message_start), 1u);
  EXPECT_EQ(count(rill::event_kind::text_delta), 2u);
  EXPECT_EQ(count(rill::event_kind::usage), 2u);
  EXPECT_EQ(count(rill::event_kind::message_stop), 1u);
  EXPECT_EQ(count(rill::event_kind::error), 0u);
  // Six gaps: 1, 250, 49, 151, 800 and 0 ms.
  EXPECT_EQ(s.gaps.count, 6u);
  EXPECT_EQ(s.gaps.sum_ns, 1251 * kMs);
  EXPECT_EQ(s.gaps.counts[0], 1u);  // the 0 gap
  EXPECT_EQ(s.gaps.percentile(1.0),
            rill::latency_histogram::bucket_upper(rill::latency_histogram::bucket_of(800 * kMs)));
}

TEST(StreamMetrics, UsageOfSeveralMessagesAddsUp) {
  rill::stream_metrics m;
  m.observe(at(rill::event::message_start("a"), 1));
  m.observe(at(rill::event::usage(usage(10, 5)), 2));
  m.observe(at(rill::event::usage(usage(10, 7)), 3));
  m.observe(at(rill::event::message_start("b"), 4));
  m.observe(at(rill::event::usage(usage(20, 3)), 5));
  const auto s = m.snapshot();
  EXPECT_EQ(s.tokens.input, 30u);
  EXPECT_EQ(s.tokens.output, 10u);
  EXPECT_EQ(s.ttft_ns, -1);  // no text or thinking delta
}

TEST(StreamMetrics, ThinkingDeltaIsAFirstToken) {
  rill::stream_metrics m;
  m.observe(at(rill::event::message_start("a"), 10 * kMs));
  m.observe(at(rill::event::content_block_start(0, rill::block_type::thinking), 11 * kMs));
  m.observe(at(rill::event::thinking_delta(0, "hmm"), 40 * kMs));
  m.observe(at(rill::event::text_delta(1, "x"), 90 * kMs));
  EXPECT_EQ(m.snapshot().ttft_ns, static_cast<std::int64_t>(30 * kMs));
}

TEST(Histogram, BucketsAndPercentiles) {
  using H = rill::latency_histogram;
  EXPECT_EQ(H::bucket_of(0), 0u);
  EXPECT_EQ(H::bucket_of(1), 0u);
  EXPECT_EQ(H::bucket_of(2), 1u);
  EXPECT_EQ(H::bucket_of(3), 2u);
  EXPECT_EQ(H::bucket_of(4), 2u);
  EXPECT_EQ(H::bucket_of(5), 3u);
  EXPECT_EQ(H::bucket_of(std::uint64_t{1} << 62), 62u);
  EXPECT_EQ(H::bucket_of((std::uint64_t{1} << 62) + 1), 63u);
  EXPECT_EQ(H::bucket_of(~std::uint64_t{0}), 63u) << "the last bucket takes everything above 2^62";
  EXPECT_EQ(H::bucket_upper(62), std::uint64_t{1} << 62);
  EXPECT_EQ(H::bucket_upper(63), ~std::uint64_t{0});
  H h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  const auto s = h.read();
  EXPECT_EQ(s.count, 100u);
  EXPECT_EQ(s.sum_ns, 5050u);
  EXPECT_EQ(s.percentile(0.5), 64u);    // the 50th value (50) lies in (32, 64]
  EXPECT_EQ(s.percentile(0.99), 128u);  // the 99th (99) in (64, 128]
  EXPECT_EQ(H::snapshot{}.percentile(0.5), 0u);
  H extreme;  // the largest values land in the last bucket (ASan: not one past it)
  extreme.record(~std::uint64_t{0});
  extreme.record_shared((std::uint64_t{1} << 63) + 1);
  EXPECT_EQ(extreme.read().counts[63], 2u);
  EXPECT_EQ(extreme.read().percentile(1.0), ~std::uint64_t{0});
}

TEST(Aggregator, TotalsByProviderAndModelWithCost) {
  rill::aggregator agg;
  agg.set_rates("claude-x", {3.0, 15.0, 0.3, 3.75});
  {
    rill::stream_metrics m(&agg);
    for (const auto& e : small_stream()) m.observe(e);
    EXPECT_EQ(agg.snapshot().active_streams, 1u);
  }
  {
    rill::stream_metrics m(&agg);
    m.observe(rill::event::stream_start("openai", "gpt-y"));
    m.observe(rill::event::usage(usage(1000, 0, 500)));
    m.observe(rill::event::error("overloaded", "try later"));
  }
  const auto s = agg.snapshot();
  EXPECT_EQ(s.streams_started, 2u);
  EXPECT_EQ(s.streams_ended, 2u);
  EXPECT_EQ(s.streams_failed, 1u);
  EXPECT_EQ(s.active_streams, 0u);
  EXPECT_DOUBLE_EQ(s.error_rate, 0.5);
  EXPECT_EQ(s.events[static_cast<std::size_t>(rill::event_kind::text_delta)], 2u);
  EXPECT_EQ(s.events[static_cast<std::size_t>(rill::event_kind::usage)], 3u);
  ASSERT_EQ(s.models.size(), 2u);
  EXPECT_EQ(s.models[0].provider, "anthropic");
  EXPECT_EQ(s.models[0].model, "claude-x");
  EXPECT_EQ(s.models[0].tokens.input, 100u);
  EXPECT_EQ(s.models[0].tokens.output, 50u);
  EXPECT_DOUBLE_EQ(s.models[0].cost, (100 * 3.0 + 50 * 15.0) / 1e6);
  EXPECT_EQ(s.models[1].model, "gpt-y");
  EXPECT_EQ(s.models[1].tokens.cache_read, 500u);
  EXPECT_EQ(s.models[1].cost, 0.0);  // no rates configured
  EXPECT_EQ(s.ttft.count, 1u);
  EXPECT_EQ(s.ttft.sum_ns, 250 * kMs);
}

TEST(Aggregator, ModelTableOverflowsIntoOther) {
  rill::aggregator agg;
  for (std::size_t i = 0; i < rill::aggregator::kMaxModels; ++i) {
    std::string name = "m";
    name += std::to_string(i);
    EXPECT_EQ(agg.model_slot("p", name), i);
  }
  EXPECT_EQ(agg.model_slot("p", "m3"), 3u);  // known pairs still resolve
  const std::size_t other = agg.model_slot("p", "one-too-many");
  EXPECT_EQ(other, rill::aggregator::kOverflowSlot);
  agg.add_tokens(other, {1, 2, 0, 0});
  const auto s = agg.snapshot();
  ASSERT_EQ(s.models.size(), rill::aggregator::kMaxModels + 1);
  EXPECT_EQ(s.models.back().provider, "other");
  EXPECT_EQ(s.models.back().tokens.output, 2u);
}

TEST(Exposition, PrometheusTextIsExact) {
  rill::aggregator agg;
  agg.set_rates("claude-x", {3.0, 15.0, 0, 0});
  {
    rill::stream_metrics m(&agg);
    for (const auto& e : small_stream()) m.observe(e);
  }
  (void)agg.model_slot("we\"ird\\", "line\nbreak");
  std::string expected =
      "# HELP rill_events_total Events observed, by kind.\n"
      "# TYPE rill_events_total counter\n"
      "rill_events_total{kind=\"message_start\"} 1\n"
      "rill_events_total{kind=\"message_stop\"} 1\n"
      "rill_events_total{kind=\"text_delta\"} 2\n"
      "rill_events_total{kind=\"usage\"} 2\n"
      "rill_events_total{kind=\"stream_start\"} 1\n"
      "# HELP rill_streams_started_total Streams observed.\n"
      "# TYPE rill_streams_started_total counter\n"
      "rill_streams_started_total 1\n"
      "# HELP rill_streams_ended_total Streams that ended.\n"
      "# TYPE rill_streams_ended_total counter\n"
      "rill_streams_ended_total 1\n"
      "# HELP rill_streams_failed_total Streams that ended after an error event.\n"
      "# TYPE rill_streams_failed_total counter\n"
      "rill_streams_failed_total 0\n"
      "# HELP rill_streams_active Streams started and not yet ended.\n"
      "# TYPE rill_streams_active gauge\n"
      "rill_streams_active 0\n"
      "# HELP rill_stream_error_ratio Failed streams over ended streams.\n"
      "# TYPE rill_stream_error_ratio gauge\n"
      "rill_stream_error_ratio 0\n"
      "# HELP rill_tokens_total Tokens reported by usage events, by provider, model and type.\n"
      "# TYPE rill_tokens_total counter\n"
      "rill_tokens_total{provider=\"anthropic\",model=\"claude-x\",type=\"input\"} 100\n"
      "rill_tokens_total{provider=\"anthropic\",model=\"claude-x\",type=\"output\"} 50\n"
      "rill_tokens_total{provider=\"anthropic\",model=\"claude-x\",type=\"cache_read\"} 0\n"
      "rill_tokens_total{provider=\"anthropic\",model=\"claude-x\",type=\"cache_write\"} 0\n"
      "rill_tokens_total{provider=\"we\\\"ird\\\\\",model=\"line\\nbreak\",type=\"input\"} 0\n"
      "rill_tokens_total{provider=\"we\\\"ird\\\\\",model=\"line\\nbreak\",type=\"output\"} 0\n"
      "rill_tokens_total{provider=\"we\\\"ird\\\\\",model=\"line\\nbreak\",type=\"cache_read\"} 0\n"
      "rill_tokens_total{provider=\"we\\\"ird\\\\\",model=\"line\\nbreak\",type=\"cache_write\"} 0\n"
      "# HELP rill_cost_estimate Estimated cost of the tokens so far, from the configured per-model rates.\n"
      "# TYPE rill_cost_estimate gauge\n"
      "rill_cost_estimate{provider=\"anthropic\",model=\"claude-x\"} 0.00105\n"
      "rill_cost_estimate{provider=\"we\\\"ird\\\\\",model=\"line\\nbreak\"} 0\n"
      "# HELP rill_ttft_seconds Time from message_start to the first text or thinking delta.\n"
      "# TYPE rill_ttft_seconds histogram\n";
  // TTFT 250 ms lies in (2^27, 2^28] ns: buckets from le = 2^28 ns on count it.
  const char* les[] = {"0.001048576",  "0.002097152", "0.004194304", "0.008388608", "0.016777216",
                       "0.033554432",  "0.067108864", "0.134217728", "0.268435456", "0.536870912",
                       "1.073741824",  "2.147483648", "4.294967296", "8.589934592", "17.179869184",
                       "34.359738368", "68.719476736"};
  for (std::size_t i = 0; i < std::size(les); ++i) {
    expected += std::string("rill_ttft_seconds_bucket{le=\"") + les[i] + "\"} " + (i >= 8 ? "1" : "0") + "\n";
  }
  expected +=
      "rill_ttft_seconds_bucket{le=\"+Inf\"} 1\n"
      "rill_ttft_seconds_sum 0.25\n"
      "rill_ttft_seconds_count 1\n";
  EXPECT_EQ(rill::to_prometheus(agg.snapshot()), expected);
}

TEST(Exposition, JsonSnapshotParses) {
  rill::aggregator agg;
  agg.set_rates("claude-x", {3.0, 15.0, 0, 0});
  rill::stream_metrics m(&agg);
  for (const auto& e : small_stream()) m.observe(e);
  const rill::named_stream_metrics streams[] = {{"req \"1\"", m.snapshot()}};
  const std::string json = rill::to_json(agg.snapshot(), streams);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(json).get(root), simdjson::SUCCESS) << json;
  EXPECT_EQ(std::uint64_t(root["streams_started"]), 1u);
  EXPECT_EQ(std::uint64_t(root["active_streams"]), 1u);
  EXPECT_EQ(std::uint64_t(root["events"]["text_delta"]), 2u);
  EXPECT_EQ(std::uint64_t(root["ttft"]["count"]), 1u);
  EXPECT_EQ(std::uint64_t(root["ttft"]["p99_ns"]), std::uint64_t{1} << 28);
  simdjson::dom::array models = root["models"];
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(std::string_view(models.at(0)["model"]), "claude-x");
  EXPECT_EQ(std::uint64_t(models.at(0)["output_tokens"]), 50u);
  EXPECT_DOUBLE_EQ(double(models.at(0)["cost"]), 0.00105);
  simdjson::dom::array per_stream = root["streams"];
  ASSERT_EQ(per_stream.size(), 1u);
  EXPECT_EQ(std::string_view(per_stream.at(0)["id"]), "req \"1\"");
  EXPECT_EQ(std::int64_t(per_stream.at(0)["ttft_ns"]), static_cast<std::int64_t>(250 * kMs));
  EXPECT_EQ(std::uint64_t(per_stream.at(0)["chunks"]), 2u);
  EXPECT_DOUBLE_EQ(double(per_stream.at(0)["output_tokens_per_sec"]), 50.0);
}

TEST(Health, AlertsAreRateLimitedPerCheck) {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  std::vector<rill::health_alert> alerts;
  rill::health_options options;
  options.max_error_rate = 0.1;
  options.max_queue_depth = 100;
  options.min_interval = 10s;
  options.on_alert = [&](const rill::health_alert& a) { alerts.push_back(a); };
  options.now = [&] { return now; };
  rill::health_monitor monitor(options);

  rill::health_sample bad;
  bad.error_rate = 0.5;
  bad.queue_depth = 50;  // under its limit
  EXPECT_EQ(monitor.evaluate(bad), 1u);
  EXPECT_EQ(monitor.evaluate(bad), 0u);  // same instant: suppressed
  now += 9s;
  EXPECT_EQ(monitor.evaluate(bad), 0u);  // still within 10 s
  bad.queue_depth = 500;                 // another check fires independently
  EXPECT_EQ(monitor.evaluate(bad), 1u);
  now += 1s;  // 10 s after the first error_rate alert
  EXPECT_EQ(monitor.evaluate(bad), 1u);
  ASSERT_EQ(alerts.size(), 3u);
  EXPECT_EQ(alerts[0].check, rill::health_check::error_rate);
  EXPECT_DOUBLE_EQ(alerts[0].value, 0.5);
  EXPECT_DOUBLE_EQ(alerts[0].limit, 0.1);
  EXPECT_EQ(alerts[1].check, rill::health_check::queue_depth);
  EXPECT_EQ(alerts[2].check, rill::health_check::error_rate);
  EXPECT_EQ(alerts[2].at, now);
  EXPECT_EQ(rill::to_string(rill::health_check::ttft_p99), "ttft_p99");
}

// A callback that throws does not hold back the other alerts due at the same evaluation.
TEST(Health, ACallbackThatThrowsHoldsBackNoOtherAlert) {
  std::vector<rill::health_check> delivered;
  rill::health_options options;
  options.max_error_rate = 0.1;
  options.max_queue_depth = 100;
  options.on_alert = [&](const rill::health_alert& a) {
    delivered.push_back(a.check);
    if (a.check == rill::health_check::error_rate) throw std::runtime_error("pager down");
  };
  rill::health_monitor monitor(options);
  rill::health_sample bad;
  bad.error_rate = 0.5;
  bad.queue_depth = 500;
  EXPECT_THROW((void)monitor.evaluate(bad), std::runtime_error);
  EXPECT_EQ(delivered, (std::vector{rill::health_check::error_rate, rill::health_check::queue_depth}));
}

TEST(Health, SampleFromAggregatorAndStreamCounters) {
  rill::aggregator agg;
  {
    rill::stream_metrics m(&agg);
    for (const auto& e : small_stream()) m.observe(e);
  }
  rill::stream_counters a, b;
  a.sent = 90;
  a.dropped = 5;
  a.buffered = 7;
  b.sent = 10;
  b.dropped = 5;
  b.buffered = 30;
  const rill::stream_counters both[] = {a, b};
  const auto h = rill::make_health_sample(agg.snapshot(), both);
  EXPECT_EQ(h.queue_depth, 30u);
  EXPECT_DOUBLE_EQ(h.drop_rate, 0.1);
  EXPECT_EQ(h.ttft_p99_ns, std::uint64_t{1} << 28);
  EXPECT_EQ(h.error_rate, 0.0);
}

TEST(Progress, StepsOfTotalCurrentStepAndElapsed) {
  rill::progress_tracker p;
  p.observe(
      at(rill::event::lifecycle(rill::event_kind::execution_started, "run-1", "deploy total=3"), 5 * kMs));
  EXPECT_EQ(p.snapshot().total, 3u);
  EXPECT_TRUE(p.snapshot().running);
  p.observe(at(rill::event::lifecycle(rill::event_kind::step_started, "build", {}, 0), 6 * kMs));
  p.observe(at(rill::event::lifecycle(rill::event_kind::step_completed, "build", {}, 0), 20 * kMs));
  p.observe(at(rill::event::lifecycle(rill::event_kind::step_started,
                                      "a step with a name longer than forty bytes", {}, 1),
               21 * kMs));
  p.observe(at(rill::event::text_delta(0, "ignored"), 22 * kMs));
  auto s = p.snapshot();
  EXPECT_EQ(s.completed, 1u);
  EXPECT_EQ(s.current_step, "a step with a name longer than forty bytes");
  EXPECT_EQ(s.current_index, 1u);
  EXPECT_EQ(s.elapsed_ns, 16 * kMs);
  p.observe(at(rill::event::lifecycle(rill::event_kind::step_failed, "test", "boom", 1), 30 * kMs));
  p.observe(at(rill::event::lifecycle(rill::event_kind::execution_failed, "run-1", "boom"), 31 * kMs));
  s = p.snapshot();
  EXPECT_EQ(s.failed, 1u);
  EXPECT_TRUE(s.finished);
  EXPECT_FALSE(s.succeeded);
  EXPECT_FALSE(s.running);
  EXPECT_EQ(s.elapsed_ns, 26 * kMs);

  rill::progress_tracker q;
  q.observe(rill::event::lifecycle(rill::event_kind::execution_started, "run-2", "12"));
  EXPECT_EQ(q.snapshot().total, 12u);
  rill::progress_tracker r;
  r.set_total(4);
  r.observe(rill::event::lifecycle(rill::event_kind::execution_started, "run-3", "nightly"));
  EXPECT_EQ(r.snapshot().total, 4u);  // a detail without a number keeps the user's total
}

// ---- audit fixes: labels, rates of long names, snapshot cuts ----

bool valid_utf8(std::string_view s) {
  return simdjson::validate_utf8(s.data(), s.size());
}

// Every sample line's series (name and labels) appears once, and every metric name is a valid one.
void expect_valid_prometheus(const std::string& text) {
  std::set<std::string> series;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    ASSERT_NE(end, std::string::npos) << "output ends with a line feed";
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.starts_with("#")) continue;
    const std::string key = line.substr(0, line.rfind(' '));
    EXPECT_TRUE(series.insert(key).second) << "duplicate series: " << key;
    const std::string name = key.substr(0, key.find('{'));
    ASSERT_FALSE(name.empty());
    for (std::size_t i = 0; i < name.size(); ++i) {
      const char c = name[i];
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                      (i > 0 && c >= '0' && c <= '9');
      EXPECT_TRUE(ok) << "bad metric name: " << name;
    }
  }
  EXPECT_TRUE(valid_utf8(text));
}

// A real other/other pair would print with the overflow entry's labels: it counts in that entry.
TEST(Aggregator, RealOtherPairCountsInTheOverflowEntry) {
  rill::aggregator agg;
  EXPECT_EQ(agg.model_slot("other", "other"), rill::aggregator::kOverflowSlot);
  EXPECT_EQ(agg.model_slot("other", "x"), 0u);  // only the exact pair
  for (std::size_t i = 1; i < rill::aggregator::kMaxModels; ++i) {
    std::string name = "m";  // appended, not "m" + ...: g++ 12 warns (-Wrestrict) there
    name += std::to_string(i);
    (void)agg.model_slot("p", name);
  }
  agg.add_tokens(agg.model_slot("other", "other"), {1, 0, 0, 0});
  agg.add_tokens(agg.model_slot("p", "one-too-many"), {2, 0, 0, 0});
  const auto s = agg.snapshot();
  ASSERT_EQ(s.models.size(), rill::aggregator::kMaxModels + 1);
  std::size_t others = 0;
  for (const auto& m : s.models) others += m.provider == "other" && m.model == "other";
  EXPECT_EQ(others, 1u);
  EXPECT_EQ(s.models.back().tokens.input, 3u);
  expect_valid_prometheus(rill::to_prometheus(s));
}

// A name over kMaxNameBytes is cut at a character boundary (here 'é' straddles byte 63), and ill-formed
// bytes become U+FFFD: labels are valid UTF-8, distinct per name, and the same for the same name.
TEST(Aggregator, LabelsAreValidUtf8AndCutAtACharacter) {
  rill::aggregator agg;
  const std::string straddling = std::string(62, 'a') + "\xc3\xa9" + "-tail";
  const std::string latin1 = "caf\xe9";  // ill-formed as UTF-8
  const std::string other_latin1 = "caf\xe8";
  const std::size_t a = agg.model_slot("p", straddling);
  const std::size_t b = agg.model_slot("p", latin1);
  const std::size_t c = agg.model_slot("p", other_latin1);
  EXPECT_EQ(agg.model_slot("p", straddling), a);
  EXPECT_EQ(agg.model_slot("p", latin1), b);
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_NE(c, rill::aggregator::kOverflowSlot);
  const auto s = agg.snapshot();
  ASSERT_EQ(s.models.size(), 3u);
  for (const auto& m : s.models) {
    EXPECT_TRUE(valid_utf8(m.model)) << m.model;
    EXPECT_LE(m.model.size(), rill::aggregator::kMaxNameBytes);
  }
  EXPECT_TRUE(s.models[0].model.starts_with(std::string(54, 'a') + "~")) << s.models[0].model;
  EXPECT_TRUE(s.models[1].model.starts_with("caf\xef\xbf\xbd~")) << s.models[1].model;
  EXPECT_NE(s.models[1].model, s.models[2].model);
  expect_valid_prometheus(rill::to_prometheus(s));
}

// The exposition makes labels valid UTF-8 and the prefix a valid name whatever a snapshot holds.
TEST(Exposition, PrometheusLabelsAndPrefixAreSanitized) {
  rill::aggregator_snapshot s;
  s.models.push_back({"\xff", "ok\xc3", {}, 0});
  s.events[static_cast<std::size_t>(rill::event_kind::text_delta)] = 1;
  const std::string text = rill::to_prometheus(s, "my-app.v2");
  expect_valid_prometheus(text);
  EXPECT_NE(
      text.find(
          "my_app_v2_tokens_total{provider=\"\xef\xbf\xbd\",model=\"ok\xef\xbf\xbd\",type=\"input\"} 0\n"),
      std::string::npos)
      << text;
  expect_valid_prometheus(rill::to_prometheus(s, "9lives"));
  EXPECT_TRUE(rill::to_prometheus(s, "9lives").starts_with("# HELP _9lives_events_total "));
  expect_valid_prometheus(rill::to_prometheus(s, ""));
}

// Rates match the whole name: a Bedrock ARN over kMaxNameBytes gets its rates; another ARN with the same
// first 63 bytes, and the 63-byte start itself, do not.
TEST(Aggregator, RatesMatchLongNamesExactly) {
  const std::string arn =
      "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0";
  const std::string sibling =
      "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0";
  ASSERT_GT(arn.size(), rill::aggregator::kMaxNameBytes);
  ASSERT_EQ(arn.substr(0, 63), sibling.substr(0, 63));
  rill::aggregator agg;
  agg.set_rates(arn, {3.0, 15.0, 0, 0});
  agg.set_rates(arn.substr(0, 63), {1000.0, 1000.0, 0, 0});  // must match neither
  for (const auto& [name, in] : {std::pair{arn, 1000u}, std::pair{sibling, 2000u}}) {
    rill::stream_metrics m(&agg);
    m.observe(rill::event::stream_start("bedrock", name));
    m.observe(rill::event::usage(usage(in, 100)));
  }
  const auto s = agg.snapshot();
  ASSERT_EQ(s.models.size(), 2u);
  EXPECT_EQ(s.models[0].tokens.input, 1000u);
  EXPECT_DOUBLE_EQ(s.models[0].cost, (1000 * 3.0 + 100 * 15.0) / 1e6);
  EXPECT_EQ(s.models[1].tokens.input, 2000u);
  EXPECT_EQ(s.models[1].cost, 0.0);
  EXPECT_NE(s.models[0].model, s.models[1].model);
  EXPECT_DOUBLE_EQ(s.total_cost, s.models[0].cost);
}

// A snapshot never shows more failed streams than ended ones (error_rate <= 1). Every stream here fails, so
// failed == ended once the writer stops; while it runs, the old order (failed counted first, ended read
// first) let a snapshot see one more failure than ends. A race, so not every run of a broken build fails.
TEST(Aggregator, SnapshotNeverSeesMoreFailedThanEnded) {
  rill::aggregator agg;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 200'000 && !stop.load(std::memory_order_relaxed); ++i) {
      rill::stream_metrics m(&agg);
      m.observe(rill::event::error("overloaded", "x"));
    }
    stop.store(true, std::memory_order_relaxed);
  });
  std::uint64_t bad = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const auto s = agg.snapshot();
    if (s.streams_failed > s.streams_ended || s.error_rate > 1.0) ++bad;
    if (bad > 0) stop.store(true, std::memory_order_relaxed);
  }
  writer.join();
  EXPECT_EQ(bad, 0u);
  const auto s = agg.snapshot();
  EXPECT_EQ(s.streams_failed, s.streams_ended);
  EXPECT_DOUBLE_EQ(s.error_rate, 1.0);
}

// A snapshot never counts a finished message's usage twice. Each stream reports 10 input tokens for one
// message, then starts another (moving the 10 to the finished total): 20 would be a double count. A race,
// so not every run of a broken build fails.
TEST(StreamMetrics, SnapshotNeverCountsAFinishedMessageTwice) {
  constexpr std::size_t kStreams = 20'000;
  std::vector<std::unique_ptr<rill::stream_metrics>> streams;
  for (std::size_t i = 0; i < kStreams; ++i) streams.push_back(std::make_unique<rill::stream_metrics>());
  std::atomic<std::size_t> current{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (std::size_t i = 0; i < kStreams && !stop.load(std::memory_order_relaxed); ++i) {
      current.store(i, std::memory_order_relaxed);
      auto& m = *streams[i];
      m.observe(at(rill::event::message_start("a"), 1));
      m.observe(at(rill::event::usage(usage(10, 10, 10)), 2));
      m.observe(at(rill::event::message_start("b"), 3));
    }
    stop.store(true, std::memory_order_relaxed);
  });
  std::uint64_t bad = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const auto t = streams[current.load(std::memory_order_relaxed)]->snapshot().tokens;
    if (t.input > 10 || t.output > 10 || t.cache_read > 10) ++bad;
    if (bad > 0) stop.store(true, std::memory_order_relaxed);
  }
  writer.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(streams.back()->snapshot().tokens.input, 10u);
}

}  // namespace
