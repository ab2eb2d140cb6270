// Decode-side codec microbenchmarks: SSE framing and each provider adapter (bytes to rill events) over a
// large synthetic transcript fed in 16 KiB reads, reporting bytes/s. Each run checks the number of events it
// delivered and fails loudly on a mismatch.
//
//   build/release/bench/codec_decode_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "rill/codec/provider.hpp"
#include "rill/codec/sse_decoder.hpp"
#include "support/synthetic_transcripts.hpp"

namespace {

using rill::codec::provider;

constexpr std::size_t kReadBytes = 16 * 1024;
constexpr int kTurns = 2000;          // responses per transcript
constexpr int kDeltasPerTurn = 40;    // text deltas per response

using rill_synthetic::provider_transcript;

const provider_transcript& transcript_for(provider p) {
  static const provider_transcript anthropic = rill_synthetic::make_anthropic(kTurns, kDeltasPerTurn);
  static const provider_transcript chat = rill_synthetic::make_openai_chat(kTurns, kDeltasPerTurn);
  static const provider_transcript responses = rill_synthetic::make_openai_responses(kTurns, kDeltasPerTurn);
  static const provider_transcript gemini = rill_synthetic::make_gemini(kTurns, kDeltasPerTurn);
  switch (p) {
    case provider::openai_chat: return chat;
    case provider::openai_responses: return responses;
    case provider::gemini: return gemini;
    default: return anthropic;
  }
}

[[noreturn]] void die(const char* what, std::size_t got, std::size_t want) {
  std::fprintf(stderr, "codec_decode_bench: %s: got %zu, want %zu\n", what, got, want);
  std::abort();
}

void BM_SseFraming(benchmark::State& state) {
  const provider_transcript& t = transcript_for(static_cast<provider>(state.range(0)));
  rill::codec::sse_decoder decoder;
  for (auto _ : state) {
    decoder.reset();
    std::size_t events = 0, data_bytes = 0;
    auto sink = [&](const rill::codec::sse_event& ev) {
      ++events;
      data_bytes += ev.data.size();
    };
    for (std::size_t at = 0; at < t.bytes.size(); at += kReadBytes) {
      if (decoder.feed(std::string_view(t.bytes).substr(at, kReadBytes), sink) != rill::status::ok) die("feed", 0, 1);
    }
    if (decoder.finish(sink) != rill::status::ok) die("finish", 0, 1);
    if (events != t.sse_events) die("SSE events", events, t.sse_events);
    benchmark::DoNotOptimize(data_bytes);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * t.bytes.size()));
  state.SetLabel(std::string(rill::codec::to_string(static_cast<provider>(state.range(0)))));
}

void BM_AdapterDecode(benchmark::State& state) {
  const auto dialect = static_cast<provider>(state.range(0));
  const provider_transcript& t = transcript_for(dialect);
  rill::codec::provider_decoder_options options;
  options.dialect = dialect;
  rill::codec::provider_decoder decoder(options);
  std::size_t events_per_run = 0;
  for (auto _ : state) {
    decoder.reset();
    std::size_t events = 0, text_bytes = 0;
    auto sink = [&](const rill::event& e) {
      ++events;
      text_bytes += e.text_size();
    };
    for (std::size_t at = 0; at < t.bytes.size(); at += kReadBytes) {
      if (decoder.feed(std::string_view(t.bytes).substr(at, kReadBytes), sink) != rill::status::ok) die("feed", 0, 1);
    }
    if (decoder.finish(sink) != rill::status::ok) die("finish", 0, 1);
    const auto& c = decoder.summary().counters;
    if (c.sse_events != t.sse_events) die("SSE events", c.sse_events, t.sse_events);
    if (c.non_json_data + c.malformed_payloads + c.unknown_events != 0) die("skipped events", c.unknown_events, 0);
    if (events_per_run == 0) events_per_run = events;
    if (events != events_per_run) die("rill events", events, events_per_run);
    benchmark::DoNotOptimize(text_bytes);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * t.bytes.size()));
  state.counters["events_per_run"] = static_cast<double>(events_per_run);
  state.SetLabel(std::string(rill::codec::to_string(dialect)));
}

void all_dialects(benchmark::internal::Benchmark* b) {
  for (provider p : {provider::openai_chat, provider::openai_responses, provider::anthropic, provider::gemini}) {
    b->Arg(static_cast<int>(p));
  }
}

BENCHMARK(BM_SseFraming)->Apply(all_dialects)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AdapterDecode)->Apply(all_dialects)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
