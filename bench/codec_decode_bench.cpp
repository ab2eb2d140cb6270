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

namespace {

using rill::codec::provider;

constexpr std::size_t kReadBytes = 16 * 1024;
constexpr int kTurns = 2000;          // responses per transcript
constexpr int kDeltasPerTurn = 40;    // text deltas per response

// Short deltas are what providers send (one or a few tokens each); a few long ones exercise borrowed text.
std::string delta_text(int i) {
  static const char* const kWords[] = {" the", " tide", " rolls", " over", " basalt", ",", " and", " gulls",
                                       " circle", " \\u00e9t\\u00e9", " \\\"quoted\\\"", " resin"};
  std::string s = kWords[i % 12];
  if (i % 17 == 0) s += " a longer run of text that no longer fits inside the event and is borrowed";
  return s;
}

struct transcript {
  std::string bytes;
  std::size_t sse_events = 0;
};

transcript make_anthropic() {
  transcript t;
  for (int turn = 0; turn < kTurns; ++turn) {
    t.bytes += "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_" +
               std::to_string(turn) +
               "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],"
               "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":19,"
               "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n"
               "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
               "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    for (int i = 0; i < kDeltasPerTurn; ++i) {
      t.bytes += "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
                 "\"type\":\"text_delta\",\"text\":\"" + delta_text(i) + "\"}}\n\n";
    }
    t.bytes += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
               "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
               "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_tide_times\",\"input\":{}}}\n\n"
               "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
               "\"input_json_delta\",\"partial_json\":\"{\\\"port\\\": \\\"Bre\"}}\n\n"
               "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
               "\"input_json_delta\",\"partial_json\":\"st\\\"}\"}}\n\n"
               "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
               "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
               "\"stop_sequence\":null},\"usage\":{\"output_tokens\":96}}\n\n"
               "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    t.sse_events += 2 + kDeltasPerTurn + 7;
  }
  return t;
}

transcript make_openai_chat() {
  transcript t;
  const std::string head = "data: {\"id\":\"chatcmpl-fx\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,"
                           "\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":"
                           "\"fp_fx01a2b3\",\"choices\":[{\"index\":0,\"delta\":";
  for (int turn = 0; turn < kTurns; ++turn) {
    t.bytes += head + "{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
    for (int i = 0; i < kDeltasPerTurn; ++i) {
      t.bytes += head + "{\"content\":\"" + delta_text(i) +
                 "\"},\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"k2\"}\n\n";
    }
    t.bytes += head + "{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
                      "\"get_tide_times\",\"arguments\":\"{\\\"port\\\": \"}}]},\"finish_reason\":null}]}\n\n";
    t.bytes += head + "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Brest\\\"}\"}}]},"
                      "\"finish_reason\":null}]}\n\n";
    t.bytes += head + "{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}]}\n\n";
    t.bytes += "data: {\"id\":\"chatcmpl-fx\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{"
               "\"prompt_tokens\":142,\"completion_tokens\":57,\"total_tokens\":199}}\n\ndata: [DONE]\n\n";
    t.sse_events += 1 + kDeltasPerTurn + 5;
  }
  return t;
}

transcript make_openai_responses() {
  transcript t;
  for (int turn = 0; turn < kTurns; ++turn) {
    int seq = 0;
    t.bytes += "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":" +
               std::to_string(seq++) +
               ",\"response\":{\"id\":\"resp_fx\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":"
               "\"gpt-4.1-mini\",\"output\":[],\"usage\":null}}\n\n";
    t.bytes += "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\","
               "\"sequence_number\":" + std::to_string(seq++) +
               ",\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"in_progress\","
               "\"content\":[],\"role\":\"assistant\"}}\n\n";
    for (int i = 0; i < kDeltasPerTurn; ++i) {
      t.bytes += "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\","
                 "\"sequence_number\":" + std::to_string(seq++) +
                 ",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"" + delta_text(i) +
                 "\",\"logprobs\":[],\"obfuscation\":\"Yq1\"}\n\n";
    }
    t.bytes += "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"sequence_number\":" +
               std::to_string(seq++) +
               ",\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"completed\","
               "\"role\":\"assistant\"}}\n\n";
    t.bytes += "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":" +
               std::to_string(seq++) +
               ",\"response\":{\"id\":\"resp_fx\",\"status\":\"completed\",\"model\":\"gpt-4.1-mini\",\"usage\":{"
               "\"input_tokens\":25,\"output_tokens\":9,\"total_tokens\":34}}}\n\n";
    t.sse_events += 4 + kDeltasPerTurn;
  }
  return t;
}

transcript make_gemini() {
  transcript t;
  for (int turn = 0; turn < kTurns; ++turn) {
    for (int i = 0; i < kDeltasPerTurn; ++i) {
      t.bytes += "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"" + delta_text(i) +
                 "\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,"
                 "\"totalTokenCount\": 9},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"gem_1\"}\r\n\r\n";
    }
    t.bytes += "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},"
               "\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,"
               "\"candidatesTokenCount\": 8,\"totalTokenCount\": 17},\"modelVersion\": \"gemini-2.5-flash\","
               "\"responseId\": \"gem_1\"}\r\n\r\n";
    t.sse_events += kDeltasPerTurn + 1;
  }
  return t;
}

const transcript& transcript_for(provider p) {
  static const transcript anthropic = make_anthropic();
  static const transcript chat = make_openai_chat();
  static const transcript responses = make_openai_responses();
  static const transcript gemini = make_gemini();
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
  const transcript& t = transcript_for(static_cast<provider>(state.range(0)));
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
  const transcript& t = transcript_for(dialect);
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
