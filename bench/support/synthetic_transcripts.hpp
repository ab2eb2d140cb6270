// Synthetic LLM transcripts shared by the codec microbenchmarks (bench/codec_*_bench.cpp) and rill-bench's
// codec scenarios (tools/bench/scenario_codec.cpp), so both measure the same bytes.
//
// Decode side: provider SSE byte streams (OpenAI Chat, OpenAI Responses, Anthropic, Gemini) made of many
// responses, each with short text deltas (some with JSON escapes and non-ASCII, one in 17 long enough to be
// borrowed text), plus a fragmented tool call where the dialect has one. Every transcript records what a
// correct decode yields: the SSE event count and the decoded text (count, bytes, an order-sensitive hash), so
// a benchmark can check every run.
// Encode side: rill events of whole responses, long deltas borrowed from stable storage, seqs 0..n-1.
//
// Not a fixture: the shapes follow the real dialects closely enough to exercise each adapter's paths, but
// tests/fixtures hold the authoritative transcripts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "rill/codec/provider.hpp"
#include "rill/event.hpp"

namespace rill_synthetic {

// FNV-1a (64-bit) over `bytes`, continuing from `h`: an order-sensitive checksum of text delivered in pieces.
inline constexpr std::uint64_t kFnvOffset = 14695981039346656037ull;
inline std::uint64_t fnv1a(std::uint64_t h, std::string_view bytes) noexcept {
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

// ---- decode side: provider SSE bytes -----------------------------------------------------------------

struct provider_transcript {
  std::string bytes;              // the SSE stream, complete events only
  std::size_t sse_events = 0;     // events the SSE layer dispatches
  std::size_t text_deltas = 0;    // non-empty text_delta events a correct adapter emits
  std::size_t text_bytes = 0;     // their decoded text bytes
  std::uint64_t text_hash = kFnvOffset;  // fnv1a over their decoded text, in order
  std::size_t tool_calls = 0;     // tool_call_start events a correct adapter emits
  // Byte offset just past each response. Each response is a whole provider stream (one HTTP response); the
  // concatenation is still valid SSE, but an adapter fed it as one stream sees one long, odd response.
  std::vector<std::size_t> response_ends;
};

// Text delta i of a response: the JSON string body as sent, and the text it decodes to.
struct delta_words {
  std::string json;
  std::string text;
};
inline delta_words delta_text(int i) {
  struct word {
    const char* json;
    const char* text;
  };
  static constexpr word kWords[] = {{" the", " the"},       {" tide", " tide"},   {" rolls", " rolls"},
                                    {" over", " over"},     {" basalt", " basalt"}, {",", ","},
                                    {" and", " and"},       {" gulls", " gulls"}, {" circle", " circle"},
                                    {" \\u00e9t\\u00e9", " \xc3\xa9t\xc3\xa9"},
                                    {" \\\"quoted\\\"", " \"quoted\""},          {" resin", " resin"}};
  const word& w = kWords[i % 12];
  delta_words d{w.json, w.text};
  if (i % 17 == 0) {
    static constexpr const char* kLong = " a longer run of text that no longer fits inside the event and is borrowed";
    d.json += kLong;
    d.text += kLong;
  }
  return d;
}

inline void note_text(provider_transcript& t, const delta_words& d) {
  if (d.text.empty()) return;
  ++t.text_deltas;
  t.text_bytes += d.text.size();
  t.text_hash = fnv1a(t.text_hash, d.text);
}

inline provider_transcript make_anthropic(int turns, int deltas_per_turn) {
  provider_transcript t;
  for (int turn = 0; turn < turns; ++turn) {
    t.bytes += "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_" +
               std::to_string(turn) +
               "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],"
               "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":19,"
               "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n"
               "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
               "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    for (int i = 0; i < deltas_per_turn; ++i) {
      const delta_words d = delta_text(i);
      t.bytes += "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
                 "\"type\":\"text_delta\",\"text\":\"" + d.json + "\"}}\n\n";
      note_text(t, d);
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
    t.sse_events += static_cast<std::size_t>(2 + deltas_per_turn + 7);
    ++t.tool_calls;
    t.response_ends.push_back(t.bytes.size());
  }
  return t;
}

inline provider_transcript make_openai_chat(int turns, int deltas_per_turn) {
  provider_transcript t;
  const std::string head = "data: {\"id\":\"chatcmpl-fx\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,"
                           "\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":"
                           "\"fp_fx01a2b3\",\"choices\":[{\"index\":0,\"delta\":";
  for (int turn = 0; turn < turns; ++turn) {
    t.bytes += head + "{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
    for (int i = 0; i < deltas_per_turn; ++i) {
      const delta_words d = delta_text(i);
      t.bytes += head + "{\"content\":\"" + d.json +
                 "\"},\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"k2\"}\n\n";
      note_text(t, d);
    }
    t.bytes += head + "{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
                      "\"get_tide_times\",\"arguments\":\"{\\\"port\\\": \"}}]},\"finish_reason\":null}]}\n\n";
    t.bytes += head + "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Brest\\\"}\"}}]},"
                      "\"finish_reason\":null}]}\n\n";
    t.bytes += head + "{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}]}\n\n";
    t.bytes += "data: {\"id\":\"chatcmpl-fx\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{"
               "\"prompt_tokens\":142,\"completion_tokens\":57,\"total_tokens\":199}}\n\ndata: [DONE]\n\n";
    t.sse_events += static_cast<std::size_t>(1 + deltas_per_turn + 5);
    ++t.tool_calls;
    t.response_ends.push_back(t.bytes.size());
  }
  return t;
}

inline provider_transcript make_openai_responses(int turns, int deltas_per_turn) {
  provider_transcript t;
  for (int turn = 0; turn < turns; ++turn) {
    int seq = 0;
    t.bytes += "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":" +
               std::to_string(seq++) +
               ",\"response\":{\"id\":\"resp_fx\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":"
               "\"gpt-4.1-mini\",\"output\":[],\"usage\":null}}\n\n";
    t.bytes += "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\","
               "\"sequence_number\":" + std::to_string(seq++) +
               ",\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"in_progress\","
               "\"content\":[],\"role\":\"assistant\"}}\n\n";
    for (int i = 0; i < deltas_per_turn; ++i) {
      const delta_words d = delta_text(i);
      t.bytes += "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\","
                 "\"sequence_number\":" + std::to_string(seq++) +
                 ",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"" + d.json +
                 "\",\"logprobs\":[],\"obfuscation\":\"Yq1\"}\n\n";
      note_text(t, d);
    }
    t.bytes += "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"sequence_number\":" +
               std::to_string(seq++) +
               ",\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"completed\","
               "\"role\":\"assistant\"}}\n\n";
    t.bytes += "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":" +
               std::to_string(seq++) +
               ",\"response\":{\"id\":\"resp_fx\",\"status\":\"completed\",\"model\":\"gpt-4.1-mini\",\"usage\":{"
               "\"input_tokens\":25,\"output_tokens\":9,\"total_tokens\":34}}}\n\n";
    t.sse_events += static_cast<std::size_t>(4 + deltas_per_turn);
    t.response_ends.push_back(t.bytes.size());
  }
  return t;
}

// CRLF line ends, as Gemini sends them.
inline provider_transcript make_gemini(int turns, int deltas_per_turn) {
  provider_transcript t;
  for (int turn = 0; turn < turns; ++turn) {
    for (int i = 0; i < deltas_per_turn; ++i) {
      const delta_words d = delta_text(i);
      t.bytes += "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"" + d.json +
                 "\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,"
                 "\"totalTokenCount\": 9},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"gem_1\"}\r\n\r\n";
      note_text(t, d);
    }
    t.bytes += "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},"
               "\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,"
               "\"candidatesTokenCount\": 8,\"totalTokenCount\": 17},\"modelVersion\": \"gemini-2.5-flash\","
               "\"responseId\": \"gem_1\"}\r\n\r\n";
    t.sse_events += static_cast<std::size_t>(deltas_per_turn + 1);
    t.response_ends.push_back(t.bytes.size());
  }
  return t;
}

// The transcript of `dialect` (openai_chat, openai_responses, anthropic or gemini; anything else: anthropic).
inline provider_transcript make_provider_transcript(rill::codec::provider dialect, int turns, int deltas_per_turn) {
  using rill::codec::provider;
  switch (dialect) {
    case provider::openai_chat: return make_openai_chat(turns, deltas_per_turn);
    case provider::openai_responses: return make_openai_responses(turns, deltas_per_turn);
    case provider::gemini: return make_gemini(turns, deltas_per_turn);
    default: return make_anthropic(turns, deltas_per_turn);
  }
}

// ---- encode side: rill events ------------------------------------------------------------------------

// Events of `responses` responses shaped like real traffic: short text deltas (mostly ASCII, some escapes and
// non-ASCII), a tool call whose arguments arrive in fragments, usage, stop; stream_start first and
// stream_complete last. Long text is borrowed from `storage` (a deque: its strings stay put, also when the
// transcript is moved). Not copyable: a copy's events would borrow the original's text.
struct event_transcript {
  std::deque<std::string> storage;
  std::vector<rill::event> events;
  event_transcript() = default;
  event_transcript(const event_transcript&) = delete;
  event_transcript& operator=(const event_transcript&) = delete;
  event_transcript(event_transcript&&) = default;
  event_transcript& operator=(event_transcript&&) = default;
};

inline void fill_event_transcript(event_transcript& r, int responses, int deltas_per_response) {
  static constexpr const char* kWords[] = {"The", " tide", " in", " Brest", " turns", " at", " 18:42", ",",
                                           " \"low\"", " then", " rises", " \xe2\x80\x94", " caf\xc3\xa9", "\n",
                                           " about", " 6.1\xc2\xa0m", "."};
  r.storage.clear();
  r.events.clear();
  r.events.push_back(rill::event::stream_start("anthropic", "claude-sonnet-4-5", "req_011CTide"));
  for (int response = 0; response < responses; ++response) {
    r.events.push_back(rill::event::message_start("msg_01FxTideThink3Kz", "claude-sonnet-4-5"));
    r.events.push_back(rill::event::content_block_start(0, rill::block_type::text));
    for (int i = 0; i < deltas_per_response; ++i) {
      if (i % 50 == 49) {  // an occasional long delta (external text)
        std::string& s = r.storage.emplace_back();
        for (int k = 0; k < 12; ++k) s += kWords[(i + k) % 17];
        r.events.push_back(rill::event::text_delta(0, s));
      } else {
        r.events.push_back(rill::event::text_delta(0, kWords[i % 17]));
      }
    }
    r.events.push_back(rill::event::content_block_stop(0));
    r.events.push_back(rill::event::tool_call_start(1, "toolu_01Tide", "get_tide_times"));
    for (const char* f : {"{\"po", "rt\": \"Br", "est\", \"da", "te\": \"2026-", "01-01\"}"}) {
      r.events.push_back(rill::event::tool_args_delta(1, f));
    }
    r.events.push_back(rill::event::tool_call_end(1));
    r.events.push_back(rill::event::message_stop(rill::stop_reason::tool_use));
    r.events.push_back(rill::event::usage({311, 2120, 2431, 0, 0, 0}));
  }
  r.events.push_back(rill::event::stream_complete(r.events.size() - 1, 0));
  for (std::size_t i = 0; i < r.events.size(); ++i) r.events[i].set_seq(i);
}

}  // namespace rill_synthetic
