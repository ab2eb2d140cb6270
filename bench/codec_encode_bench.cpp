// Codec encode-side microbenchmarks: events -> event JSON, events -> rill SSE, events -> provider dialects, and
// event JSON -> events. Each reports bytes_per_second of JSON / SSE produced (or consumed, for decoding) over a
// fixed synthetic LLM transcript, and checks what it produced.
//   codec_encode_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "rill/codec/dialect_encoder.hpp"
#include "rill/codec/json.hpp"
#include "rill/codec/sse_encoder.hpp"
#include "support/synthetic_transcripts.hpp"

namespace {

using rill::event;

// One response (see bench/support/synthetic_transcripts.hpp): 2000 text deltas, a fragmented tool call, usage.
const rill_synthetic::event_transcript& synthetic_transcript() {
  static const rill_synthetic::event_transcript t = [] {
    rill_synthetic::event_transcript r;
    rill_synthetic::fill_event_transcript(r, 1, 2000);
    return r;
  }();
  return t;
}

void fail(benchmark::State& state, const char* what) {
  state.SkipWithError(what);
  std::fprintf(stderr, "codec_encode_bench: %s\n", what);
}

// Encodes the transcript into one reused string per iteration, `encode(e, out)` appending each event; a false
// from it stops the benchmark with `error`. Reports the bytes produced.
template <class Encode>
void encode_transcript(benchmark::State& state, const char* error, Encode encode) {
  const auto& events = synthetic_transcript().events;
  std::string out;
  out.reserve(1 << 20);
  std::size_t bytes = 0;
  for (auto _ : state) {
    out.clear();
    for (const event& e : events) {
      if (!encode(e, out)) return fail(state, error);
    }
    bytes += out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * events.size()));
}

void BM_EventsToJson(benchmark::State& state) {
  encode_transcript(state, "encode_json failed", [](const event& e, std::string& out) {
    if (rill::codec::encode_json(e, out) != rill::status::ok) return false;
    out.push_back('\n');
    return true;
  });
}
BENCHMARK(BM_EventsToJson);

void BM_EventsToFixedBufferJson(benchmark::State& state) {
  const auto& events = synthetic_transcript().events;
  char buffer[4096];
  std::size_t bytes = 0;
  for (auto _ : state) {
    for (const event& e : events) {
      std::size_t written = 0;
      if (rill::codec::encode_json(e, buffer, sizeof buffer, written) != rill::status::ok) {
        return fail(state, "encode_json (fixed) failed");
      }
      bytes += written;
      benchmark::DoNotOptimize(buffer);
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * events.size()));
}
BENCHMARK(BM_EventsToFixedBufferJson);

void BM_EventsToSse(benchmark::State& state) {
  encode_transcript(state, "encode_sse failed", [](const event& e, std::string& out) {
    return rill::codec::encode_sse(e, out) == rill::status::ok;
  });
}
BENCHMARK(BM_EventsToSse);

void BM_EventsToDialect(benchmark::State& state) {
  const auto format = static_cast<rill::codec::output_format>(state.range(0));
  state.SetLabel(std::string(rill::codec::to_string(format)));
  const auto& events = synthetic_transcript().events;
  rill::codec::output_encoder encoder(format);
  std::string out;
  out.reserve(1 << 21);
  std::size_t bytes = 0;
  for (auto _ : state) {
    out.clear();
    encoder.reset();
    for (const event& e : events) {
      if (encoder.encode(e, out) != rill::status::ok) return fail(state, "dialect encode failed");
    }
    if (encoder.finish(out) != rill::status::ok) return fail(state, "dialect finish failed");
    bytes += out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * events.size()));
}
BENCHMARK(BM_EventsToDialect)
    ->Arg(static_cast<int>(rill::codec::output_format::openai_chat))
    ->Arg(static_cast<int>(rill::codec::output_format::openai_responses))
    ->Arg(static_cast<int>(rill::codec::output_format::anthropic));

void BM_JsonToEvents(benchmark::State& state) {
  const auto& events = synthetic_transcript().events;
  std::vector<std::string> lines;
  std::size_t total = 0;
  for (const event& e : events) {
    std::string& line = lines.emplace_back();
    if (rill::codec::encode_json(e, line) != rill::status::ok) return fail(state, "encode_json failed");
    total += line.size();
  }
  rill::codec::json_decoder decoder;
  std::size_t bytes = 0;
  std::uint64_t seq_sum = 0;
  for (auto _ : state) {
    for (const std::string& line : lines) {
      event e;
      if (decoder.decode(line, e) != rill::status::ok) return fail(state, "decode failed");
      seq_sum += e.seq();
      benchmark::DoNotOptimize(e);
    }
    bytes += total;
  }
  // Checks what it decoded: the seqs 0..n-1 each iteration.
  const std::uint64_t n = events.size();
  if (seq_sum != static_cast<std::uint64_t>(state.iterations()) * (n * (n - 1) / 2)) {
    return fail(state, "decoded sequence numbers do not match");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * events.size()));
}
BENCHMARK(BM_JsonToEvents);

}  // namespace

BENCHMARK_MAIN();
