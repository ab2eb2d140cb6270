// Allocation failures on rill's rare allocating paths. A stream whose lazy first allocation of its ring
// fails: every send, blocking ones included, returns full at once (nothing could ever wake a wait for room
// in a ring that does not exist), and the stream works once memory is back. A manager whose handle table
// chunk cannot be allocated: create throws std::bad_alloc and loses nothing, not even the handle index. A
// pipeline batch whose text buffer cannot grow: that event is left out and reported, the batch is intact.
// The codecs (SSE framing, provider decoders, dialect encoders): too_large with an out-of-memory message,
// nothing half-written, never std::terminate from their noexcept entry points.
// This executable replaces the aligned nothrow operator new the stream allocates its ring with, the plain
// operator new (for allocations from a size up), and calloc (forwarding to glibc's), so that a test can
// make them fail.
//
// Sanitizer builds skip it: their runtimes supply operator new and calloc themselves.
#include <gtest/gtest.h>

#if defined(RILL_SANITIZER_BUILD)

TEST(AllocationFailure, SkippedUnderSanitizers) {
  GTEST_SKIP() << "the sanitizer runtimes own operator new; release and debug builds run this test";
}

#else

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <stop_token>
#include <string>
#include <vector>

#include "rill/codec/dialect_encoder.hpp"
#include "rill/codec/provider.hpp"
#include "rill/codec/sse_decoder.hpp"
#include "rill/manager.hpp"
#include "rill/pipeline.hpp"
#include "rill/stream.hpp"

namespace {
// Relaxed: set and read by the test's one thread.
std::atomic<bool> g_fail_aligned_nothrow{false};
std::atomic<bool> g_fail_calloc{false};
std::atomic<std::size_t> g_fail_new_from{~std::size_t{0}};  // plain operator new fails from this size up
}  // namespace

// Out of line: inlined, GCC would pair its malloc with the default operator delete's free and warn.
[[gnu::noinline]] void* operator new(std::size_t size) {
  if (size >= g_fail_new_from.load(std::memory_order_relaxed)) throw std::bad_alloc();
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

extern "C" void* __libc_calloc(std::size_t count, std::size_t size);  // glibc's own, which this forwards to
extern "C" void* calloc(std::size_t count, std::size_t size) {
  if (g_fail_calloc.load(std::memory_order_relaxed)) return nullptr;
  return __libc_calloc(count, size);
}

void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  if (g_fail_aligned_nothrow.load(std::memory_order_relaxed)) return nullptr;
  const std::size_t a = static_cast<std::size_t>(align);
  return std::aligned_alloc(a, (size + a - 1) / a * a);  // freed by the default aligned delete (free)
}

namespace {

using rill::backpressure;
using rill::flavour;
using rill::status;

struct failing_allocations {
  failing_allocations() { g_fail_aligned_nothrow.store(true, std::memory_order_relaxed); }
  ~failing_allocations() { g_fail_aligned_nothrow.store(false, std::memory_order_relaxed); }
};

class AllocationFailure : public testing::TestWithParam<std::pair<flavour, backpressure> > {};

TEST_P(AllocationFailure, EverySendReturnsFullAtOnceThenTheStreamWorks) {
  rill::stream_options o;
  o.kind = GetParam().first;
  o.policy = GetParam().second;
  rill::stream s(o);
  const rill::event e = rill::event::text_delta(0, "token");
  {
    failing_allocations failing;
    EXPECT_EQ(s.try_send(e), status::full);
    EXPECT_EQ(s.send(e), status::full);  // would park forever if it waited
    EXPECT_EQ(s.send_for(e, std::chrono::hours(1)), status::full);
    std::stop_source never;
    EXPECT_EQ(s.send(e, never.get_token()), status::full);
    std::size_t sent = 99;
    EXPECT_EQ(s.send_batch({&e, 1}, &sent), status::full);
    EXPECT_EQ(sent, 0u);
    rill::send_claim claim;
    EXPECT_EQ(s.try_claim(claim), status::full);
    EXPECT_FALSE(s.allocated());
    rill::received r;
    EXPECT_EQ(s.try_receive(r), status::empty);
  }
  ASSERT_EQ(s.send(e), status::ok);
  EXPECT_TRUE(s.allocated());
  rill::received r;
  ASSERT_EQ(s.try_receive(r), status::ok);
  EXPECT_EQ(r->text(), "token");
}

INSTANTIATE_TEST_SUITE_P(Policies, AllocationFailure,
                         testing::Values(std::pair{flavour::spsc, backpressure::block},
                                         std::pair{flavour::spsc, backpressure::drop},
                                         std::pair{flavour::mpmc, backpressure::block},
                                         std::pair{flavour::mpmc, backpressure::drop_oldest}));

TEST(AllocationFailure, ManagerCreateThrowsAndKeepsTheHandleIndex) {
  rill::stream_manager m;
  rill::stream_ref out;
  g_fail_calloc.store(true,
                      std::memory_order_relaxed);  // the first create allocates the handle table's chunk
  EXPECT_THROW((void)m.create("a", out), std::bad_alloc);
  g_fail_calloc.store(false, std::memory_order_relaxed);
  EXPECT_EQ(m.count(), 0u);
  EXPECT_EQ(m.get("a", out), status::not_found);
  ASSERT_EQ(m.create("a", out), status::ok);
  EXPECT_EQ(static_cast<std::uint32_t>(out.handle().value), 0u) << "the failed create's index, reused";
  rill::stream_ref found;
  ASSERT_EQ(m.get(out.handle(), found), status::ok);
  EXPECT_EQ(found.id(), "a");
}

TEST(AllocationFailure, PipelineBatchLeavesOutTheEventWhoseTextCannotBeCopied) {
  rill::pipeline p;
  std::vector<std::string> texts;
  std::vector<std::string> errors;
  const std::size_t id = p.subscribe_batch({"batch"}, {3, std::chrono::nanoseconds(0)},
                                           [&](std::span<const rill::enriched_event> batch) {
                                             for (const auto& en : batch) texts.emplace_back(en.e.text());
                                           });
  p.on_error([&](const rill::handler_error& e) { errors.emplace_back(e.what); });
  rill::pipeline_runner runner(p);
  rill::pipeline_stream ps;
  const std::string first(100, 'a');
  const std::string huge(4u << 20, 'h');
  const std::string last(200, 'c');
  runner.process(rill::event::text_delta(0, first), ps);
  g_fail_new_from.store(2u << 20, std::memory_order_relaxed);  // the buffer must grow past 4 MiB for `huge`
  runner.process(rill::event::text_delta(0, huge), ps);
  g_fail_new_from.store(~std::size_t{0}, std::memory_order_relaxed);
  runner.process(rill::event::text_delta(0, "inline"), ps);
  runner.process(rill::event::text_delta(0, last), ps);  // the third batched event: hands the batch over
  EXPECT_EQ(texts, (std::vector<std::string>{first, "inline", last}));
  EXPECT_EQ(p.errors(id), 1u);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("out of memory"), std::string::npos) << errors[0];
  EXPECT_FALSE(runner.has_pending());
}

// Plain operator new fails from `bytes` up while this lives.
struct failing_large_allocations {
  explicit failing_large_allocations(std::size_t bytes) {
    g_fail_new_from.store(bytes, std::memory_order_relaxed);
  }
  ~failing_large_allocations() { g_fail_new_from.store(~std::size_t{0}, std::memory_order_relaxed); }
};

TEST(AllocationFailure, SseDecoderFailsTooLargeWhenItsBufferCannotGrow) {
  rill::codec::sse_decoder d;
  const std::string line = "data: " + std::string(3u << 20, 'x') + "\n\n";
  std::size_t events = 0;
  auto sink = [&](const rill::codec::sse_event&) { ++events; };
  status s;
  {
    failing_large_allocations failing(2u << 20);
    s = d.feed(line, sink);
  }
  EXPECT_EQ(s, status::too_large);
  EXPECT_EQ(events, 0u);
  EXPECT_NE(d.error_message().find("out of memory"), std::string_view::npos) << d.error_message();
}

TEST(AllocationFailure, ProviderDecoderFailsTooLargeWhenAnAdapterCannotAllocate) {
  rill::codec::provider_decoder_options options;
  options.dialect = rill::codec::provider::anthropic;
  rill::codec::provider_decoder d(options);
  std::size_t fragments = 0;
  auto sink = [&](const rill::event& e) { fragments += e.kind() == rill::event_kind::tool_args_delta; };
  const std::string start =
      "event: content_block_start\ndata: "
      "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
      "\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n";
  // 1 MiB fragments: each SSE event fits under the limit, the call's kept arguments outgrow it.
  const std::string delta =
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
      "{\"type\":\"input_json_delta\",\"partial_json\":\"" +
      std::string(1u << 20, '1') + "\"}}\n\n";
  ASSERT_EQ(d.feed(start, sink), status::ok);
  ASSERT_EQ(d.feed(delta, sink), status::ok);  // the buffers that hold one event grow before the limit
  status s = status::ok;
  {
    failing_large_allocations failing(std::size_t{3} << 20);
    for (int i = 0; i < 4 && s == status::ok; ++i) s = d.feed(delta, sink);
  }
  EXPECT_EQ(s, status::too_large);
  // The adapter's message, not the SSE layer's: the kept arguments were what could not grow.
  EXPECT_NE(d.error_message().find("out of memory while decoding the response"), std::string_view::npos)
      << d.error_message();
  EXPECT_GE(fragments, 1u);
  EXPECT_EQ(d.feed(delta, sink), status::too_large);  // failed for good
}

TEST(AllocationFailure, DialectEncoderTakesBackWhatItWroteWhenMemoryRunsOut) {
  const std::string text(3u << 20, 't');
  rill::codec::anthropic_encoder encoder;
  std::string out = "earlier bytes";
  ASSERT_EQ(encoder.encode(rill::event::message_start("m", "x"), out), status::ok);
  const std::string before = out;
  status s;
  {
    failing_large_allocations failing(2u << 20);
    s = encoder.encode(rill::event::text_delta(0, text), out);
  }
  EXPECT_EQ(s, status::too_large);
  EXPECT_EQ(out, before);  // nothing half-written
  EXPECT_TRUE(encoder.done());
  ASSERT_EQ(encoder.finish(out), status::ok);
  EXPECT_EQ(out, before);  // the response is over: nothing more
}

}  // namespace

#endif
