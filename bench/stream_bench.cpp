// stream_bench: single-operation costs of rill::stream and rill::event (Google Benchmark), plus one pinned
// two-thread throughput figure. rill-bench (tools/bench) holds the interleaved comparisons with the peers.
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <cstring>
#include <map>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "rill/stream.hpp"

namespace {

rill::stream_options single_thread_options(rill::clock_kind stamping = rill::clock_kind::coarse) {
  rill::stream_options o;
  o.capacity = 1024;
  o.arena_bytes = 1 << 20;
  o.stamping = stamping;
  o.allocate_on_first_send = false;
  return o;
}

// Deterministic text of `bytes` bytes; references stay valid for the whole run.
const std::string& long_text(std::size_t bytes) {
  static std::map<std::size_t, std::string> texts;
  auto [it, inserted] = texts.try_emplace(bytes);
  if (inserted) {
    for (std::size_t i = 0; i < bytes; ++i) it->second.push_back(static_cast<char>('a' + i % 26));
  }
  return it->second;
}

// ---- event construction ----

// Tokens of 1 to 38 bytes, cycled, so that the text's length is not a constant the compiler could fold
// into the inline factory.
constexpr std::string_view kTokens[] = {
    " streaming", "a", " the", ",", " tokenizer", "\n\n", " 12345678901234567890123456789012345678",
    " model"};

// Construction alone: the event is left where it was built.
void BM_EventInlineText(benchmark::State& state) {
  std::size_t i = 0;
  for (auto _ : state) {
    rill::event e = rill::event::text_delta(0, kTokens[i++ & 7]);
    benchmark::DoNotOptimize(e);
  }
}
BENCHMARK(BM_EventInlineText);

// Long text is borrowed, not copied, at construction (the stream copies it into its arena on send).
void BM_EventLongText(benchmark::State& state) {
  const std::string& text = long_text(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    rill::event e = rill::event::tool_args_delta(1, text);
    benchmark::DoNotOptimize(e);
  }
}
BENCHMARK(BM_EventLongText)->Arg(200)->Arg(2000);

// ---- send + receive pairs on one thread ----

void BM_SendReceiveInline(benchmark::State& state) {
  const auto stamping = state.range(0) != 0 ? rill::clock_kind::coarse : rill::clock_kind::none;
  rill::stream s(single_thread_options(stamping));
  const rill::event e = rill::event::text_delta(0, "hello");
  rill::received r;
  for (auto _ : state) {
    if (s.try_send(e) != rill::status::ok || s.try_receive(r) != rill::status::ok) state.SkipWithError("lost");
    benchmark::DoNotOptimize(r.get());
  }
  state.SetLabel(state.range(0) != 0 ? "stamping=coarse" : "stamping=none");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SendReceiveInline)->Arg(1)->Arg(0);

// What a producer does per token: build the event and send it (the send copies it into the ring right
// after it was written), then the receive.
void BM_BuildSendReceiveInline(benchmark::State& state) {
  rill::stream s(single_thread_options());
  rill::received r;
  std::size_t i = 0;
  for (auto _ : state) {
    if (s.try_send(rill::event::text_delta(0, kTokens[i++ & 7])) != rill::status::ok ||
        s.try_receive(r) != rill::status::ok) {
      state.SkipWithError("lost");
    }
    benchmark::DoNotOptimize(r.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BuildSendReceiveInline);

// Long text goes through the arena: copied on send, released when the received event is reset.
void BM_SendReceiveArenaText(benchmark::State& state) {
  rill::stream s(single_thread_options());
  const std::string& text = long_text(static_cast<std::size_t>(state.range(0)));
  const rill::event e = rill::event::tool_args_delta(1, text);
  rill::received r;
  for (auto _ : state) {
    if (s.try_send(e) != rill::status::ok || s.try_receive(r) != rill::status::ok) state.SkipWithError("lost");
    r.reset();
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SendReceiveArenaText)->RangeMultiplier(4)->Range(64, 4096);

// 64 events per call on both sides.
void BM_SendBatchDrain(benchmark::State& state) {
  rill::stream s(single_thread_options());
  const std::vector<rill::event> batch(64, rill::event::text_delta(0, "hello"));
  std::uint64_t seen = 0;
  for (auto _ : state) {
    if (s.try_send_batch(std::span<const rill::event>(batch)) != batch.size()) state.SkipWithError("full");
    s.try_drain([&](const rill::event& e, bool) { seen += e.index() + 1; }, 64);
  }
  benchmark::DoNotOptimize(seen);
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_SendBatchDrain);

// ---- arena claim / commit / release by payload size ----

void BM_ClaimCommitRelease(benchmark::State& state) {
  rill::stream s(single_thread_options());
  const std::size_t bytes = static_cast<std::size_t>(state.range(0));
  const std::string& text = long_text(bytes);
  rill::received r;
  for (auto _ : state) {
    rill::send_claim c;
    if (s.try_claim(c, bytes) != rill::status::ok) {
      state.SkipWithError("claim refused");
      break;
    }
    std::memcpy(c.text(), text.data(), bytes);
    ::new (&c.slot()) rill::event(rill::event::tool_args_delta(1, std::string_view(c.text(), bytes)));
    if (s.commit(c) != rill::status::ok || s.try_receive(r) != rill::status::ok) state.SkipWithError("lost");
    r.reset();
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ClaimCommitRelease)->RangeMultiplier(4)->Range(16, 4096);

// ---- status paths: the answers that return at once ----

void BM_TrySendFull(benchmark::State& state) {
  rill::stream_options o = single_thread_options();
  o.capacity = 2;
  rill::stream s(o);
  const rill::event e = rill::event::text_delta(0, "x");
  while (s.try_send(e) == rill::status::ok) {
  }
  for (auto _ : state) benchmark::DoNotOptimize(s.try_send(e));
}
BENCHMARK(BM_TrySendFull);

void BM_TryReceiveEmpty(benchmark::State& state) {
  rill::stream s(single_thread_options());
  rill::received r;
  for (auto _ : state) benchmark::DoNotOptimize(s.try_receive(r));
}
BENCHMARK(BM_TryReceiveEmpty);

void BM_TrySendClosed(benchmark::State& state) {
  rill::stream s(single_thread_options());
  s.close();
  const rill::event e = rill::event::text_delta(0, "x");
  for (auto _ : state) benchmark::DoNotOptimize(s.try_send(e));
}
BENCHMARK(BM_TrySendClosed);

void BM_TrySendTooLarge(benchmark::State& state) {
  rill::stream_options o = single_thread_options();
  o.arena_bytes = 256;
  rill::stream s(o);
  const rill::event e = rill::event::tool_args_delta(1, long_text(1024));
  for (auto _ : state) benchmark::DoNotOptimize(s.try_send(e));
}
BENCHMARK(BM_TrySendTooLarge);

// ---- pinned two-thread throughput: thread 0 produces on cpu0, thread 1 consumes on cpu1 ----

void pin(int cpu) {
  if (cpu >= static_cast<int>(std::thread::hardware_concurrency())) return;  // fewer CPUs: run unpinned
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<unsigned>(cpu), &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

rill::stream& shared_stream() {
  static rill::stream s([] {
    rill::stream_options o;
    o.capacity = 65536;
    o.stamping = rill::clock_kind::none;
    o.allocate_on_first_send = false;
    return o;
  }());
  return s;
}

// Both threads run the same iteration count: each iteration is one event sent, or one event received.
void BM_PinnedSpscThroughput(benchmark::State& state) {
  rill::stream& s = shared_stream();
  pin(state.thread_index());
  const rill::event e = rill::event::text_delta(0, "hello");
  rill::received r;
  if (state.thread_index() == 0) {
    for (auto _ : state) {
      while (s.try_send(e) != rill::status::ok) {
      }
    }
  } else {
    for (auto _ : state) {
      while (s.try_receive(r) != rill::status::ok) {
      }
    }
  }
  // Counted on the consumer only: Google Benchmark sums the items of all threads, and each event is both
  // sent and received.
  if (state.thread_index() == 1) state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PinnedSpscThroughput)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
