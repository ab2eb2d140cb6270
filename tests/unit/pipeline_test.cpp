// rill/pipeline.hpp: filters, per-kind callbacks, transformers, handler isolation, batching, the dispatcher.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "rill/pipeline.hpp"

namespace {

using namespace std::chrono_literals;

rill::stream_context context(std::string_view id, std::uint64_t correlation = 0) {
  rill::stream_context c;
  c.id = id;
  c.correlation_id = correlation;
  return c;
}

// A typical response: stream_start, message_start, n text deltas, usage, message_stop.
std::vector<rill::event> response(std::string_view provider, std::string_view model, int deltas) {
  std::vector<rill::event> v;
  v.push_back(rill::event::stream_start(provider, model, "req"));
  v.push_back(rill::event::message_start("msg", model));
  for (int i = 0; i < deltas; ++i) v.push_back(rill::event::text_delta(static_cast<std::uint16_t>(i), "tok"));
  v.push_back(rill::event::usage({}));
  v.push_back(rill::event::message_stop(rill::stop_reason::end_turn));
  return v;
}

TEST(Pipeline, FiltersByKindProviderModelAndPredicate) {
  rill::pipeline p;
  int texts = 0, anthropic = 0, claude = 0, even_index = 0, nothing = 0;
  p.subscribe({"texts", {rill::event_kind::text_delta}}, [&](const rill::enriched_event&) { ++texts; });
  rill::subscription_options by_provider;
  by_provider.provider = "anthropic";
  p.subscribe(by_provider, [&](const rill::enriched_event& en) {
    EXPECT_EQ(en.stream->provider.view(), "anthropic");
    ++anthropic;
  });
  rill::subscription_options by_model;
  by_model.model = "claude-x";
  by_model.kinds = {rill::event_kind::text_delta};
  p.subscribe(by_model, [&](const rill::enriched_event&) { ++claude; });
  rill::subscription_options where;
  where.kinds = {rill::event_kind::text_delta};
  where.where = [](const rill::enriched_event& en) { return en.e.index() % 2 == 0; };
  p.subscribe(where, [&](const rill::enriched_event&) { ++even_index; });
  p.subscribe({"none", rill::kind_set{}}, [&](const rill::enriched_event&) { ++nothing; });

  rill::pipeline_runner runner(p);
  rill::pipeline_stream a(context("a")), b(context("b"));
  for (const auto& e : response("anthropic", "claude-x", 5)) runner.process(e, a);
  for (const auto& e : response("openai", "gpt-y", 4)) runner.process(e, b);
  EXPECT_EQ(texts, 9);
  EXPECT_EQ(anthropic, 9);  // all of stream a's events, stream_start included
  EXPECT_EQ(claude, 5);
  EXPECT_EQ(even_index, 3 + 2);
  EXPECT_EQ(nothing, 0);
  EXPECT_EQ(a.context().model.view(), "claude-x");
  EXPECT_EQ(a.context().request_id.view(), "req");
}

TEST(Pipeline, PerKindCallbacksAndTransformerTags) {
  rill::pipeline p;
  p.add_transformer([](rill::enriched_event& en) {
    if (en.e.kind() == rill::event_kind::text_delta) en.tags.tags |= 1;
  });
  p.add_transformer([](rill::enriched_event& en) { en.tags.correlation_id += 1000; });
  int starts = 0, texts = 0, stops = 0;
  p.subscribe({}, rill::kind_callbacks{}
                      .on(rill::event_kind::message_start, [&](const rill::enriched_event&) { ++starts; })
                      .on(rill::event_kind::text_delta,
                          [&](const rill::enriched_event& en) {
                            EXPECT_EQ(en.tags.tags, 1u);
                            EXPECT_EQ(en.tags.correlation_id, 1042u);
                            EXPECT_EQ(en.e.text(), "tok");
                            ++texts;
                          })
                      .on(rill::event_kind::message_stop, [&](const rill::enriched_event& en) {
                        EXPECT_EQ(en.tags.tags, 0u);
                        ++stops;
                      }));
  rill::pipeline_runner runner(p);
  rill::pipeline_stream s(context("s", 42));
  for (const auto& e : response("p", "m", 3)) runner.process(e, s);
  EXPECT_EQ(starts, 1);
  EXPECT_EQ(texts, 3);
  EXPECT_EQ(stops, 1);
  EXPECT_THROW(p.subscribe({}, [](const rill::enriched_event&) {}), std::logic_error);  // in use now
}

TEST(ShortText, KeepsTheFirstBytesAndTellsLongTextsApart) {
  const std::string a(100, 'a');
  std::string b = a;
  b[90] = 'b';  // differs only past the kept bytes
  const rill::short_text kept(a);
  EXPECT_TRUE(kept.truncated());
  EXPECT_EQ(kept.full_size(), 100u);
  EXPECT_EQ(kept.view(), a.substr(0, rill::short_text::kCapacity));
  EXPECT_TRUE(kept.matches(a));
  EXPECT_FALSE(kept.matches(b));
  EXPECT_FALSE(kept.matches(a.substr(0, 99)));
  EXPECT_FALSE(kept.matches(a.substr(0, rill::short_text::kCapacity)));
  const rill::short_text exact(a.substr(0, rill::short_text::kCapacity));
  EXPECT_FALSE(exact.truncated());
  EXPECT_TRUE(exact.matches(a.substr(0, rill::short_text::kCapacity)));
  EXPECT_FALSE(exact.matches(a));
  EXPECT_TRUE(rill::short_text().empty());
  EXPECT_TRUE(rill::short_text().matches(""));
}

// Model ids past short_text's 63 bytes (Bedrock inference-profile ARNs) that differ only near the end.
TEST(Pipeline, ModelFiltersCompareLongModelIdsWhole) {
  const std::string arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x-v";
  const std::string v1 = arn + "1:0", v2 = arn + "2:0";
  ASSERT_GT(v1.size(), rill::short_text::kCapacity);
  rill::pipeline p;
  int got_v1 = 0, got_v2 = 0;
  rill::subscription_options only_v1, only_v2;
  only_v1.model = v1;
  only_v2.model = v2;
  only_v1.kinds = only_v2.kinds = {rill::event_kind::text_delta};
  p.subscribe(only_v1, [&](const rill::enriched_event&) { ++got_v1; });
  p.subscribe(only_v2, [&](const rill::enriched_event&) { ++got_v2; });
  rill::pipeline_runner runner(p);
  // From the stream_start.
  rill::pipeline_stream from_start(context("s"));
  for (const auto& e : response("bedrock", v1, 3)) runner.process(e, from_start);
  EXPECT_EQ(got_v1, 3);
  EXPECT_EQ(got_v2, 0);
  // From the context given at attach, the stream_start naming no model.
  rill::stream_context attached = context("t");
  attached.model.assign(v2);
  rill::pipeline_stream from_attach(attached);
  for (const auto& e : response("bedrock", "", 4)) runner.process(e, from_attach);
  EXPECT_EQ(got_v1, 3);
  EXPECT_EQ(got_v2, 4);
}

TEST(Pipeline, BatchSizeIsBounded) {
  rill::pipeline p;
  const auto ignore = [](std::span<const rill::enriched_event>) {};
  EXPECT_THROW(p.subscribe_batch({}, {rill::pipeline::kMaxBatchEvents + 1, 0ns}, ignore),
               std::invalid_argument);
  EXPECT_THROW(p.subscribe_batch({}, {~std::size_t{0}, 0ns}, ignore), std::invalid_argument);
  EXPECT_EQ(p.subscription_count(), 0u);
  EXPECT_EQ(p.subscribe_batch({}, {rill::pipeline::kMaxBatchEvents, 0ns}, ignore), 0u);
  rill::pipeline_runner runner(p);  // reserves the largest batch
}

TEST(Pipeline, ThrowingHandlerIsIsolatedCountedAndReported) {
  rill::pipeline p;
  std::vector<std::string> reports;
  int before = 0, after = 0, seen_by_thrower = 0;
  p.subscribe({"before"}, [&](const rill::enriched_event&) { ++before; });
  const std::size_t bad = p.subscribe({"thrower"}, [&](const rill::enriched_event& en) {
    ++seen_by_thrower;
    if (en.e.kind() == rill::event_kind::text_delta) throw std::runtime_error("bad delta");
    if (en.e.kind() == rill::event_kind::usage) throw 7;  // not a std::exception
  });
  rill::subscription_options throwing_predicate("bad predicate");
  throwing_predicate.where = [](const rill::enriched_event&) -> bool { throw std::logic_error("p"); };
  const std::size_t bad_predicate = p.subscribe(throwing_predicate, [](const rill::enriched_event&) {});
  p.subscribe({"after"}, [&](const rill::enriched_event&) { ++after; });
  p.add_transformer([](rill::enriched_event& en) {
    if (en.e.kind() == rill::event_kind::message_stop) throw std::runtime_error("transformer");
  });
  p.on_error([&](const rill::handler_error& err) {
    reports.push_back(std::string(err.name) + ":" + std::string(err.what));
    throw std::runtime_error("the reporter throws too");  // swallowed
  });
  rill::pipeline_runner runner(p);
  rill::pipeline_stream s(context("s"));
  const auto events = response("p", "m", 4);
  for (const auto& e : events) runner.process(e, s);
  const int n = static_cast<int>(events.size());
  EXPECT_EQ(before, n);
  EXPECT_EQ(after, n);
  EXPECT_EQ(seen_by_thrower, n);
  EXPECT_EQ(p.errors(bad), 5u);  // 4 deltas + usage
  EXPECT_EQ(p.errors(bad_predicate), static_cast<std::uint64_t>(n));
  EXPECT_EQ(p.errors(rill::pipeline::kTransformers), 1u);
  EXPECT_EQ(p.total_errors(), 5u + static_cast<std::uint64_t>(n) + 1u);
  EXPECT_EQ(reports.size(), p.total_errors());
  EXPECT_NE(std::find(reports.begin(), reports.end(), "thrower:bad delta"), reports.end());
  EXPECT_NE(std::find(reports.begin(), reports.end(), "bad predicate:p"), reports.end());
  EXPECT_NE(std::find(reports.begin(), reports.end(), "thrower:unknown exception"), reports.end());
  EXPECT_NE(std::find(reports.begin(), reports.end(), "transformer:transformer"), reports.end());
}

TEST(Pipeline, BatchesBySizeKeepLongTextFromTheArena) {
  rill::pipeline p;
  std::vector<std::size_t> sizes;
  std::vector<std::string> texts;
  p.subscribe_batch({"batch", {rill::event_kind::text_delta}}, {4, 0ns},
                    [&](std::span<const rill::enriched_event> batch) {
                      sizes.push_back(batch.size());
                      for (const auto& en : batch) texts.emplace_back(en.e.text());
                    });
  rill::stream_options options;
  options.arena_bytes = 4096;
  rill::stream s(options);
  std::vector<std::string> sent;
  for (int i = 0; i < 10; ++i) {
    sent.push_back(std::string(100 + static_cast<std::size_t>(i), static_cast<char>('a' + i)));  // arena text
    ASSERT_EQ(s.try_send(rill::event::text_delta(0, sent.back())), rill::status::ok);
  }
  rill::pipeline_runner runner(p);
  rill::pipeline_stream ps(context("s"));
  // Drain one event at a time: each event's arena text is released before the batch is handed over.
  while (s.try_drain([&](const rill::event& e, bool) { runner.process(e, ps); }, 1) != 0) {
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{4, 4}));
  EXPECT_TRUE(runner.has_pending());
  runner.flush();
  EXPECT_EQ(sizes, (std::vector<std::size_t>{4, 4, 2}));
  EXPECT_EQ(texts, sent);
  EXPECT_FALSE(runner.has_pending());
}

TEST(Pipeline, BatchesByTime) {
  rill::pipeline p;
  std::vector<std::size_t> sizes;
  p.subscribe_batch({"timed"}, {1000, 10s},
                    [&](std::span<const rill::enriched_event> batch) { sizes.push_back(batch.size()); });
  rill::pipeline_runner runner(p);
  rill::pipeline_stream s(context("s"));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(runner.poll(t0), std::chrono::steady_clock::time_point::max());
  std::string borrowed(200, 'x');  // external (borrowed) text is copied too
  runner.process(rill::event::text_delta(0, borrowed), s);
  runner.process(rill::event::keep_alive(), s);
  borrowed.assign(200, 'y');
  const auto deadline = runner.poll(t0);
  EXPECT_TRUE(sizes.empty());
  EXPECT_GE(deadline, t0 + 10s);
  EXPECT_LE(deadline, std::chrono::steady_clock::now() + 10s);
  EXPECT_EQ(runner.poll(deadline + 1ms), std::chrono::steady_clock::time_point::max());
  EXPECT_EQ(sizes, (std::vector<std::size_t>{2}));
}

TEST(Pipeline, BorrowedTextInATimedBatchIsACopy) {
  rill::pipeline p;
  std::string got;
  p.subscribe_batch({"timed"}, {1000, 1h},
                    [&](std::span<const rill::enriched_event> batch) { got = std::string(batch[0].e.text()); });
  rill::pipeline_runner runner(p);
  rill::pipeline_stream s(context("s"));
  std::string borrowed(200, 'x');
  runner.process(rill::event::text_delta(0, borrowed), s);
  borrowed.assign(200, 'y');
  runner.flush();
  EXPECT_EQ(got, std::string(200, 'x'));
}

TEST(Dispatcher, RunsHandlersOnWorkersAndEndsStreams) {
  rill::pipeline p;
  std::mutex m;
  std::vector<std::string> ended;
  // Relaxed counts: read after wait_idle(), which acquires every ended stream's handler work.
  std::atomic<int> events{0}, on_producer_thread{0};
  std::thread::id producer_id = std::this_thread::get_id();
  p.subscribe({"count"}, [&](const rill::enriched_event&) {
    events.fetch_add(1, std::memory_order_relaxed);  // relaxed: see the declaration
    if (std::this_thread::get_id() == producer_id) on_producer_thread.fetch_add(1, std::memory_order_relaxed);
  });
  rill::dispatcher_options options;
  options.workers = 2;
  options.on_stream_end = [&](const rill::stream_context& c) {
    std::lock_guard lock(m);
    ended.emplace_back(c.id.view());
  };
  rill::stream a, b, c;  // before the dispatcher: it is destroyed (its workers joined) first
  rill::dispatcher d(p, options);
  d.attach(a, context("a"));
  d.attach(b, context("b"));
  d.attach(c, context("c"));
  EXPECT_EQ(d.attached_streams(), 3u);
  int sent = 0;
  for (int round = 0; round < 3; ++round) {
    for (rill::stream* s : {&a, &b, &c}) {
      for (const auto& e : response("p", "m", 10)) {
        ASSERT_EQ(s->send(e), rill::status::ok);
        ++sent;
      }
    }
    d.notify();
  }
  a.close();
  b.close();
  c.close();
  d.wait_idle();
  EXPECT_EQ(events.load(std::memory_order_relaxed), sent);  // relaxed: wait_idle() ordered the adds
  EXPECT_EQ(on_producer_thread.load(std::memory_order_relaxed), 0);
  EXPECT_EQ(d.events_dispatched(), static_cast<std::uint64_t>(sent));
  EXPECT_EQ(d.attached_streams(), 0u);
  std::lock_guard lock(m);
  std::sort(ended.begin(), ended.end());
  EXPECT_EQ(ended, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Dispatcher, TimedBatchIsHandedOverWhileTheStreamIsIdle) {
  rill::pipeline p;
  std::atomic<std::size_t> batched{0};
  p.subscribe_batch({"timed"}, {1000, 5ms}, [&](std::span<const rill::enriched_event> batch) {
    batched.fetch_add(batch.size(), std::memory_order_release);  // pairs with the test's acquire
  });
  rill::stream s;  // before the dispatcher: it is destroyed (its workers joined) first
  rill::dispatcher d(p, {});
  d.attach(s, context("s"));
  for (int i = 0; i < 7; ++i) ASSERT_EQ(s.send(rill::event::text_delta(0, "x")), rill::status::ok);
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  // acquire: pairs with the handler's release.
  while (batched.load(std::memory_order_acquire) < 7 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(1ms);
  }
  // acquire: pairs with the handler's release. The stream is still open: time did it.
  EXPECT_EQ(batched.load(std::memory_order_acquire), 7u);
  s.close();
  d.wait_idle();
}

// Idle workers park (one stream: on its futex; several: on the dispatcher's condition variable with a capped
// backoff): 300 ms of idleness must cost far less CPU than two spinning workers (600 ms).
TEST(Dispatcher, IdleWorkersDoNotSpin) {
  auto cpu_now = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  };
  rill::pipeline p;
  std::atomic<int> events{0};  // relaxed: read after wait_idle(), which orders the handlers' adds
  p.subscribe({}, [&](const rill::enriched_event&) { events.fetch_add(1, std::memory_order_relaxed); });
  rill::stream a, b, c;  // before the dispatcher: it is destroyed (its workers joined) first
  rill::dispatcher d(p, {});
  d.attach(a, context("a"));  // one worker ends up with one stream (parks on it), the other with two
  d.attach(b, context("b"));
  d.attach(c, context("c"));
  ASSERT_EQ(a.send(rill::event::keep_alive()), rill::status::ok);
  std::this_thread::sleep_for(20ms);
  const auto before = cpu_now();
  std::this_thread::sleep_for(300ms);
  const auto used = cpu_now() - before;
  EXPECT_LT(used, 150ms) << "idle workers used " << std::chrono::duration_cast<std::chrono::milliseconds>(used).count()
                         << " ms of CPU in 300 ms";
  ASSERT_EQ(b.send(rill::event::keep_alive()), rill::status::ok);  // and they still wake for new events
  a.close();
  b.close();
  c.close();
  d.wait_idle();
  EXPECT_EQ(events.load(std::memory_order_relaxed), 2);  // relaxed: wait_idle() ordered the adds
}

// An MPMC stream closed while a slot is claimed but not yet committed still has events buffered behind
// that slot (invisible to a drain until the commit). The dispatcher must not end the stream then: every
// send that returned ok before close() is delivered, and on_stream_end comes after them.
TEST(Dispatcher, ClosedMpmcStreamEndsOnlyOnceDrained) {
  for (std::size_t streams : {1u, 2u}) {  // one stream: the worker parks on it; two: the polling path
    rill::pipeline p;
    std::atomic<int> delivered{0};  // relaxed: read after wait_idle(), which orders the adds
    p.subscribe({}, [&](const rill::enriched_event&) { delivered.fetch_add(1, std::memory_order_relaxed); });
    std::atomic<int> delivered_at_end{-1};  // relaxed: read after wait_idle()
    rill::stream_options o;
    o.kind = rill::flavour::mpmc;
    rill::stream a(o), other(o);  // before the dispatcher: it is destroyed (its workers joined) first
    rill::dispatcher_options options;
    options.workers = 1;
    options.on_stream_end = [&](const rill::stream_context& c) {
      if (c.id.view() == "a")
        delivered_at_end.store(delivered.load(std::memory_order_relaxed), std::memory_order_relaxed);
    };
    rill::dispatcher d(p, options);
    d.attach(a, context("a"));
    if (streams == 2) d.attach(other, context("other"));
    rill::send_claim claim;
    ASSERT_EQ(a.try_claim(claim), rill::status::ok);  // holds back everything sent after it
    ASSERT_EQ(a.try_send(rill::event::keep_alive()), rill::status::ok);
    a.close();
    std::this_thread::sleep_for(50ms);  // passes of the worker with the stream closed and "empty"
    ::new (&claim.slot()) rill::event(rill::event::text_delta(0, "late"));
    ASSERT_EQ(a.commit(claim), rill::status::closed);  // a send after close(); its slot is published void
    other.close();
    d.wait_idle();
    EXPECT_EQ(delivered.load(std::memory_order_relaxed), 1) << streams << " stream(s)";
    EXPECT_EQ(delivered_at_end.load(std::memory_order_relaxed), 1) << "the stream ended before its events";
  }
}

// wait_idle() on one thread while stop() runs on another returns only once the workers are joined, so
// after every handler call has returned (not as soon as stop() began).
TEST(Dispatcher, WaitIdleDuringStopReturnsAfterTheHandlersFinish) {
  rill::pipeline p;
  std::atomic<bool> started{false}, finished{false};
  p.subscribe({}, [&](const rill::enriched_event&) {
    started.store(true, std::memory_order_release);  // release/acquire: the test's own hand-off
    std::this_thread::sleep_for(300ms);
    finished.store(true, std::memory_order_release);
  });
  rill::stream s;
  rill::dispatcher d(p, {});
  d.attach(s, context("s"));
  ASSERT_EQ(s.send(rill::event::keep_alive()), rill::status::ok);
  while (!started.load(std::memory_order_acquire)) std::this_thread::yield();
  std::thread stopper([&] { d.stop(); });
  std::this_thread::sleep_for(20ms);  // stop() is under way (a later start only makes wait_idle wait longer)
  d.wait_idle();
  EXPECT_TRUE(finished.load(std::memory_order_acquire)) << "wait_idle returned while a handler ran";
  stopper.join();
}

TEST(Dispatcher, AnEmptyStreamRefIsRefused) {
  rill::pipeline p;
  rill::dispatcher d(p, {});
  EXPECT_THROW(d.attach(rill::stream_ref{}, context("none")), std::invalid_argument);
  EXPECT_EQ(d.attached_streams(), 0u);
  d.wait_idle();  // nothing attached: returns at once
}

TEST(Dispatcher, StopLeavesOpenStreamsAndIsIdempotent) {
  rill::pipeline p;
  std::atomic<int> events{0};  // relaxed: a count nobody reads back
  p.subscribe({}, [&](const rill::enriched_event&) { events.fetch_add(1, std::memory_order_relaxed); });
  auto s = std::make_unique<rill::stream>();
  {
    rill::dispatcher d(p, {});
    d.attach(*s, context("s"));
    ASSERT_EQ(s->send(rill::event::keep_alive()), rill::status::ok);
    d.stop();
    d.stop();
    d.wait_idle();  // returns at once after stop
  }
  EXPECT_FALSE(s->is_closed());
}

}  // namespace
