// Dialect encoders: byte-exact output on small hand-written cases, and every data line parsed back with
// simdjson to check the dialect's structure on longer event sequences.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <string>
#include <vector>

#include "rill/codec/dialect_encoder.hpp"

namespace {

using rill::block_type;
using rill::event;
using rill::status;
using rill::stop_reason;
namespace codec = rill::codec;

struct sse_block {
  std::string event_name;
  std::string data;
};

// Splits LF-framed SSE output into blocks (comments dropped); fails the test on a malformed block.
std::vector<sse_block> split_sse(const std::string& out) {
  std::vector<sse_block> blocks;
  std::size_t pos = 0;
  while (pos < out.size()) {
    const std::size_t end = out.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated block at " << pos;
    if (end == std::string::npos) break;
    sse_block block;
    std::size_t line_start = pos;
    bool comment_only = true;
    while (line_start < end) {
      std::size_t line_end = out.find('\n', line_start);
      if (line_end > end) line_end = end;
      const std::string line = out.substr(line_start, line_end - line_start);
      if (line.rfind("event: ", 0) == 0) {
        block.event_name = line.substr(7);
        comment_only = false;
      } else if (line.rfind("data: ", 0) == 0) {
        EXPECT_TRUE(block.data.empty()) << "two data lines in one block";
        block.data = line.substr(6);
        comment_only = false;
      } else {
        EXPECT_EQ(line.rfind(":", 0), 0u) << "unexpected line: " << line;
      }
      line_start = line_end + 1;
    }
    if (!comment_only) blocks.push_back(block);
    pos = end + 2;
  }
  return blocks;
}

// An Anthropic-shaped upstream: thinking with a signature, text, a tool call, usage after the stop reason.
std::vector<event> anthropic_like_events() {
  return {
      event::stream_start("anthropic", "claude-x", "req_1"),
      event::message_start("msg_1", "claude-x"),
      event::usage({10, 1, 0, 0, 0, 0}),
      event::content_block_start(0, block_type::thinking),
      event::thinking_delta(0, "Let me think."),
      event::signature_delta(0, "c2ln"),
      event::content_block_stop(0),
      event::keep_alive(),
      event::content_block_start(1, block_type::text),
      event::text_delta(1, "Hello \"world\"\n"),
      event::content_block_stop(1),
      event::content_block_start(2, block_type::tool_use),
      event::tool_call_start(2, "toolu_1", "get_tide"),
      event::tool_args_delta(2, ""),
      event::tool_args_delta(2, "{\"port\":"),
      event::tool_args_delta(2, "\"Brest\"}"),
      event::tool_call_end(2),
      event::content_block_stop(2),
      event::message_stop(stop_reason::tool_use),
      event::usage({10, 42, 52, 0, 0, 0}),
      event::stream_complete(20, 0),
  };
}

// An OpenAI-Chat-shaped upstream: text, two parallel tool calls keyed by tool index, usage after the finish.
std::vector<event> openai_like_events() {
  return {
      event::message_start("chatcmpl-1", "gpt-x"),
      event::text_delta(0, "Checking."),
      event::tool_call_start(0, "call_a", "get_tide"),
      event::tool_args_delta(0, "{\"port\":\"Brest\"}"),
      event::tool_call_start(1, "call_b", "get_weather"),
      event::tool_args_delta(1, "{\"city\":"),
      event::tool_args_delta(0, ""),
      event::tool_args_delta(1, "\"Brest\"}"),
      event::tool_call_end(0),
      event::tool_call_end(1),
      event::message_stop(stop_reason::tool_use),
      event::usage({30, 20, 50, 5, 0, 0}),
      event::stream_complete(9, 0),
  };
}

template <class Encoder>
std::string encode_all(Encoder& encoder, const std::vector<event>& events) {
  std::string out;
  for (const event& e : events) EXPECT_EQ(encoder.encode(e, out), status::ok);
  EXPECT_EQ(encoder.finish(out), status::ok);
  return out;
}

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& json) {
  simdjson::dom::element root;
  EXPECT_FALSE(parser.parse(json).get(root)) << json;
  return root;
}

std::string str(simdjson::dom::element e) {
  std::string_view s;
  return e.get_string().get(s) ? std::string("<not a string>") : std::string(s);
}

std::int64_t num(simdjson::dom::element e) {
  std::int64_t v = -1;
  return e.get_int64().get(v) ? -1 : v;
}

// A missing field reads as "<missing>" / -1 (a failed expectation, not an exception that ends the test).
std::string str(simdjson::simdjson_result<simdjson::dom::element> e) {
  simdjson::dom::element v;
  return e.get(v) ? std::string("<missing>") : str(v);
}

std::int64_t num(simdjson::simdjson_result<simdjson::dom::element> e) {
  simdjson::dom::element v;
  return e.get(v) ? -1 : num(v);
}

// ---- OpenAI Chat ----

TEST(OpenAiChatEncoder, WritesChunksByteExact) {
  codec::dialect_options options;
  options.created = 1700000000;
  codec::openai_chat_encoder encoder(options);
  const std::string out = encode_all(encoder, {
      event::message_start("chatcmpl-1", "gpt-x"),
      event::text_delta(0, "Hi"),
      event::tool_call_start(7, "call_a", "f"),
      event::tool_args_delta(7, "{}"),
      event::message_stop(stop_reason::tool_use),
      event::usage({3, 4, 0, 0, 0, 0}),
  });
  const std::string head = R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-x","choices":[)";
  EXPECT_EQ(out,
            head + R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})" "\n\n" +
            head + R"({"index":0,"delta":{"content":"Hi"},"finish_reason":null}]})" "\n\n" +
            head + R"({"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]})" "\n\n" +
            head + R"({"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},"finish_reason":null}]})" "\n\n" +
            head + R"({"index":0,"delta":{},"finish_reason":"tool_calls"}]})" "\n\n" +
            head + R"(],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})" "\n\n"
            "data: [DONE]\n\n");
}

// n > 1: each delta goes to its own choice, and every choice opens with a role chunk and ends with a finish
// chunk.
TEST(OpenAiChatEncoder, WritesEachChoiceWithItsOwnRoleAndFinishChunks) {
  codec::dialect_options options;
  options.created = 1700000000;
  codec::openai_chat_encoder encoder(options);
  const std::string out = encode_all(encoder, {
                                                  event::message_start("chatcmpl-2", "gpt-x"),
                                                  event::text_delta(0, "A"),
                                                  event::text_delta(1, "B", 1),
                                                  event::tool_call_start(4, "call_b", "f", 1),
                                                  event::tool_args_delta(4, "{}", 1),
                                                  event::text_delta(0, "C"),
                                                  event::message_stop(stop_reason::end_turn),
                                              });
  const std::string head =
      R"(data: {"id":"chatcmpl-2","object":"chat.completion.chunk","created":1700000000,"model":"gpt-x","choices":[)";
  EXPECT_EQ(
      out,
      head +
          R"({"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})"
          "\n\n" +
          head +
          R"({"index":0,"delta":{"content":"A"},"finish_reason":null}]})"
          "\n\n" +
          head +
          R"({"index":1,"delta":{"role":"assistant","content":""},"finish_reason":null}]})"
          "\n\n" +
          head +
          R"({"index":1,"delta":{"content":"B"},"finish_reason":null}]})"
          "\n\n" +
          head +
          R"({"index":1,"delta":{"tool_calls":[{"index":0,"id":"call_b","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]})"
          "\n\n" +
          head +
          R"({"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},"finish_reason":null}]})"
          "\n\n" +
          head +
          R"({"index":0,"delta":{"content":"C"},"finish_reason":null}]})"
          "\n\n" +
          head +
          R"({"index":0,"delta":{},"finish_reason":"stop"}]})"
          "\n\n" +
          head +
          R"({"index":1,"delta":{},"finish_reason":"stop"}]})"
          "\n\n"
          "data: [DONE]\n\n");
  // A reset encoder starts over with one choice.
  encoder.reset();
  const std::string again =
      encode_all(encoder, {event::text_delta(0, "D"), event::message_stop(stop_reason::end_turn)});
  EXPECT_EQ(again.find(R"("index":1)"), std::string::npos) << again;
}

TEST(OpenAiChatEncoder, KeepAliveIsAParseableEmptyChunk) {
  codec::openai_chat_encoder encoder;
  std::string out;
  encoder.keep_alive(out);
  EXPECT_EQ(out,
            R"(data: {"id":"rill","object":"chat.completion.chunk","created":0,"model":"unknown","choices":[{"index":0,"delta":{},"finish_reason":null}]})"
            "\n\n");
  out.clear();
  ASSERT_EQ(encoder.encode(event::message_stop(stop_reason::end_turn), out), status::ok);
  out.clear();
  encoder.keep_alive(out);  // after the finish chunk: no choice at all
  EXPECT_NE(out.find(R"("choices":[]})"), std::string::npos) << out;
  ASSERT_EQ(encoder.finish(out), status::ok);
  out.clear();
  encoder.keep_alive(out);  // after [DONE]: nothing
  EXPECT_TRUE(out.empty());
}

TEST(OpenAiChatEncoder, ServesAnAnthropicUpstream) {
  codec::openai_chat_encoder encoder;
  const std::string out = encode_all(encoder, anthropic_like_events());
  const auto blocks = split_sse(out);
  ASSERT_GE(blocks.size(), 3u);
  EXPECT_EQ(blocks.back().data, "[DONE]");
  simdjson::dom::parser parser;
  std::string text, arguments, finish;
  std::int64_t prompt_tokens = -1;
  for (std::size_t i = 0; i + 1 < blocks.size(); ++i) {
    const auto chunk = parse(parser, blocks[i].data);
    EXPECT_EQ(str(chunk["id"]), "msg_1");
    EXPECT_EQ(str(chunk["object"]), "chat.completion.chunk");
    EXPECT_EQ(str(chunk["model"]), "claude-x");
    simdjson::dom::array choices;
    ASSERT_FALSE(chunk["choices"].get_array().get(choices));
    if (choices.size() == 0) {
      prompt_tokens = num(chunk["usage"]["prompt_tokens"]);
      EXPECT_EQ(num(chunk["usage"]["completion_tokens"]), 42);
      continue;
    }
    const auto choice = choices.at(0).value();
    const auto delta = choice["delta"];
    std::string_view s;
    if (!delta["content"].get_string().get(s)) text += s;
    simdjson::dom::array calls;
    if (!delta["tool_calls"].get_array().get(calls)) {
      for (auto call : calls) {
        EXPECT_EQ(num(call["index"]), 0);  // Anthropic's block index 2 renumbered as the first tool call
        if (!call["function"]["arguments"].get_string().get(s)) arguments += s;
        if (!call["id"].get_string().get(s)) {
          EXPECT_EQ(s, "toolu_1");
        }
      }
    }
    if (!choice["finish_reason"].get_string().get(s)) finish = s;
    EXPECT_EQ(delta["reasoning_content"].error(), simdjson::NO_SUCH_FIELD);  // thinking dropped by default
  }
  EXPECT_EQ(text, "Hello \"world\"\n");
  EXPECT_EQ(arguments, "{\"port\":\"Brest\"}");
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(prompt_tokens, 10);
}

TEST(OpenAiChatEncoder, RenumbersParallelToolCallsAndCanIncludeReasoning) {
  codec::dialect_options options;
  options.chat_include_reasoning = true;
  codec::openai_chat_encoder encoder(options);
  std::vector<event> events = openai_like_events();
  events.insert(events.begin() + 1, event::thinking_delta(0, "hmm"));
  const std::string out = encode_all(encoder, events);
  EXPECT_NE(out.find(R"("delta":{"reasoning_content":"hmm"})"), std::string::npos);
  EXPECT_NE(out.find(R"({"index":1,"id":"call_b","type":"function")"), std::string::npos);
  EXPECT_NE(out.find(R"({"index":1,"function":{"arguments":"\"Brest\"}"}})"), std::string::npos);
  EXPECT_NE(out.find(R"("prompt_tokens_details":{"cached_tokens":5})"), std::string::npos);
  EXPECT_EQ(out.find(R"("arguments":""}}]},"finish_reason":null}]})" "\n\ndata: [DONE]"), std::string::npos);
}

TEST(OpenAiChatEncoder, ErrorEndsTheStreamWithoutDone) {
  codec::openai_chat_encoder encoder;
  const std::string out = encode_all(encoder, {event::message_start("c", "m"), event::text_delta(0, "par"),
                                               event::error("overloaded_error", "Overloaded", true),
                                               event::message_stop(stop_reason::error)});
  const auto blocks = split_sse(out);
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[2].data, R"({"error":{"message":"Overloaded","type":"overloaded_error","param":null,"code":null}})");
  EXPECT_EQ(out.find("[DONE]"), std::string::npos);
}

TEST(OpenAiChatEncoder, TruncatedUpstreamGetsNoFinishOrDone) {
  codec::openai_chat_encoder encoder;
  const std::string out = encode_all(encoder, {event::message_start("c", "m"), event::text_delta(0, "par")});
  EXPECT_EQ(out.find("finish_reason\":\""), std::string::npos);
  EXPECT_EQ(out.find("[DONE]"), std::string::npos);
}

// ---- Anthropic ----

TEST(AnthropicEncoder, WritesEventsByteExact) {
  codec::anthropic_encoder encoder;
  std::string out;
  for (const event& e : {event::message_start("msg_1", "claude-x"), event::usage({5, 1, 0, 2, 0, 0}),
                         event::content_block_start(0, block_type::text), event::text_delta(0, "Hi")}) {
    ASSERT_EQ(encoder.encode(e, out), status::ok);
  }
  encoder.keep_alive(out);
  for (const event& e : {event::content_block_stop(0), event::message_stop(stop_reason::end_turn),
                         event::usage({5, 9, 14, 2, 0, 0}), event::stream_complete(5, 0)}) {
    ASSERT_EQ(encoder.encode(e, out), status::ok);
  }
  EXPECT_EQ(out,
            "event: message_start\n"
            R"(data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"cache_read_input_tokens":2,"output_tokens":1}}})" "\n\n"
            "event: content_block_start\n"
            R"(data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})" "\n\n"
            "event: content_block_delta\n"
            R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})" "\n\n"
            "event: ping\n"
            R"(data: {"type":"ping"})" "\n\n"
            "event: content_block_stop\n"
            R"(data: {"type":"content_block_stop","index":0})" "\n\n"
            "event: message_delta\n"
            R"(data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":3,"cache_read_input_tokens":2,"output_tokens":9}})" "\n\n"
            "event: message_stop\n"
            R"(data: {"type":"message_stop"})" "\n\n");
  std::string after;
  ASSERT_EQ(encoder.finish(after), status::ok);  // idempotent
  EXPECT_TRUE(after.empty());
}

TEST(AnthropicEncoder, ServesAnOpenAiUpstreamWithSequentialBlocks) {
  codec::anthropic_encoder encoder;
  const std::string out = encode_all(encoder, openai_like_events());
  const auto blocks = split_sse(out);
  simdjson::dom::parser parser;
  std::vector<std::string> names;
  std::map<std::int64_t, std::string> open_types;
  std::map<std::int64_t, std::string> arguments;
  std::string text, stop;
  std::int64_t next_index = 0;
  for (const sse_block& b : blocks) {
    const auto data = parse(parser, b.data);
    EXPECT_EQ(str(data["type"]), b.event_name);  // Anthropic: event name == data.type
    names.push_back(b.event_name);
    if (b.event_name == "content_block_start") {
      const std::int64_t index = num(data["index"]);
      EXPECT_EQ(index, next_index++);  // indices count up from 0
      open_types[index] = str(data["content_block"]["type"]);
    } else if (b.event_name == "content_block_delta") {
      const std::int64_t index = num(data["index"]);
      ASSERT_TRUE(open_types.count(index)) << "delta for a block that is not open";
      const std::string type = str(data["delta"]["type"]);
      if (type == "text_delta") text += str(data["delta"]["text"]);
      if (type == "input_json_delta") arguments[index] += str(data["delta"]["partial_json"]);
    } else if (b.event_name == "content_block_stop") {
      EXPECT_EQ(open_types.erase(num(data["index"])), 1u);
    } else if (b.event_name == "message_delta") {
      stop = str(data["delta"]["stop_reason"]);
      EXPECT_EQ(num(data["usage"]["output_tokens"]), 20);
      EXPECT_EQ(num(data["usage"]["input_tokens"]), 25);  // 30 minus 5 cached
      EXPECT_EQ(num(data["usage"]["cache_read_input_tokens"]), 5);
    }
  }
  EXPECT_TRUE(open_types.empty());
  EXPECT_EQ(names.front(), "message_start");
  EXPECT_EQ(names.back(), "message_stop");
  EXPECT_EQ(text, "Checking.");
  ASSERT_EQ(arguments.size(), 2u);
  EXPECT_EQ(arguments[1], "{\"port\":\"Brest\"}");
  EXPECT_EQ(arguments[2], "{\"city\":\"Brest\"}");
  EXPECT_EQ(stop, "tool_use");
}

// Dialects without choices: a delta of another choice than the open block's opens a block of its own, so no
// block mixes two choices' text.
TEST(AnthropicEncoder, NeverMixesTwoChoicesInOneBlock) {
  const std::vector<event> events = {
      event::message_start("m", "x"), event::text_delta(0, "A"), event::text_delta(1, "B", 1),
      event::text_delta(1, "b", 1),   event::text_delta(0, "C"), event::message_stop(stop_reason::end_turn)};
  codec::anthropic_encoder anthropic;
  std::vector<std::string> block_texts;
  simdjson::dom::parser parser;
  for (const sse_block& b : split_sse(encode_all(anthropic, events))) {
    if (b.event_name == "content_block_start") block_texts.emplace_back();
    if (b.event_name == "content_block_delta")
      block_texts.back() += str(parse(parser, b.data)["delta"]["text"]);
  }
  EXPECT_EQ(block_texts, (std::vector<std::string>{"A", "Bb", "C"}));
  codec::openai_responses_encoder responses;
  std::vector<std::string> item_texts;
  for (const sse_block& b : split_sse(encode_all(responses, events))) {
    if (b.event_name == "response.output_text.done") item_texts.push_back(str(parse(parser, b.data)["text"]));
  }
  EXPECT_EQ(item_texts, (std::vector<std::string>{"A", "Bb", "C"}));
}

TEST(AnthropicEncoder, RoundTripsAnAnthropicShapedUpstream) {
  codec::anthropic_encoder encoder;
  const std::string out = encode_all(encoder, anthropic_like_events());
  EXPECT_NE(out.find(R"("content_block":{"type":"thinking","thinking":"","signature":""})"), std::string::npos);
  EXPECT_NE(out.find(R"("delta":{"type":"signature_delta","signature":"c2ln"})"), std::string::npos);
  EXPECT_NE(out.find(R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_tide","input":{}}})"),
            std::string::npos);
  EXPECT_NE(out.find(R"("usage":{"input_tokens":10,"output_tokens":1})"), std::string::npos);  // message_start
  EXPECT_NE(out.find(R"("usage":{"input_tokens":10,"output_tokens":42})"), std::string::npos);  // message_delta
  const auto blocks = split_sse(out);
  std::size_t pings = 0;
  for (const auto& b : blocks) pings += b.event_name == "ping";
  EXPECT_EQ(pings, 1u);
}

TEST(AnthropicEncoder, RedactedThinkingCarriesItsData) {
  codec::anthropic_encoder encoder;
  const std::string data = "EmwKAhgB\"x/+=";  // opaque bytes, a quote among them
  const std::string out =
      encode_all(encoder, {event::message_start("msg_1", "claude-x"),
                           event::content_block_start(0, block_type::redacted_thinking, data),
                           event::content_block_stop(0), event::message_stop(stop_reason::end_turn)});
  EXPECT_NE(out.find(R"("content_block":{"type":"redacted_thinking","data":"EmwKAhgB\"x/+="})"),
            std::string::npos)
      << out;
}

TEST(AnthropicEncoder, ErrorMidStreamIsAnErrorEventAndNothingAfter) {
  codec::anthropic_encoder encoder;
  const std::string out = encode_all(encoder, {event::message_start("m", "c"), event::text_delta(0, "par"),
                                               event::error("overloaded_error", "Overloaded"),
                                               event::message_stop(stop_reason::error), event::keep_alive()});
  const std::string tail = "event: error\n"
                           R"(data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})" "\n\n";
  ASSERT_GE(out.size(), tail.size());
  EXPECT_EQ(out.substr(out.size() - tail.size()), tail);
  EXPECT_EQ(out.find("message_stop"), std::string::npos);
}

// ---- OpenAI Responses ----

TEST(OpenAiResponsesEncoder, WritesEventsByteExact) {
  codec::dialect_options options;
  options.created = 1700000000;
  codec::openai_responses_encoder encoder(options);
  const std::string out = encode_all(encoder, {event::message_start("resp_1", "gpt-x"), event::text_delta(0, "Hi"),
                                               event::message_stop(stop_reason::end_turn),
                                               event::usage({3, 4, 7, 0, 0, 0})});
  const std::string response = R"({"id":"resp_1","object":"response","created_at":1700000000,"status":"in_progress","error":null,"incomplete_details":null,"model":"gpt-x","output":[],"usage":null})";
  const std::string item_done = R"({"id":"msg_1_0","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi","annotations":[]}]})";
  EXPECT_EQ(out,
            "event: response.created\n"
            R"(data: {"type":"response.created","sequence_number":0,"response":)" + response + "}\n\n"
            "event: response.in_progress\n"
            R"(data: {"type":"response.in_progress","sequence_number":1,"response":)" + response + "}\n\n"
            "event: response.output_item.added\n"
            R"(data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_1_0","type":"message","status":"in_progress","role":"assistant","content":[]}})" "\n\n"
            "event: response.content_part.added\n"
            R"(data: {"type":"response.content_part.added","sequence_number":3,"item_id":"msg_1_0","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}})" "\n\n"
            "event: response.output_text.delta\n"
            R"(data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1_0","output_index":0,"content_index":0,"delta":"Hi"})" "\n\n"
            "event: response.output_text.done\n"
            R"(data: {"type":"response.output_text.done","sequence_number":5,"item_id":"msg_1_0","output_index":0,"content_index":0,"text":"Hi"})" "\n\n"
            "event: response.content_part.done\n"
            R"(data: {"type":"response.content_part.done","sequence_number":6,"item_id":"msg_1_0","output_index":0,"content_index":0,"part":{"type":"output_text","text":"Hi","annotations":[]}})" "\n\n"
            "event: response.output_item.done\n"
            R"(data: {"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":)" + item_done + "}\n\n"
            "event: response.completed\n"
            R"(data: {"type":"response.completed","sequence_number":8,"response":{"id":"resp_1","object":"response","created_at":1700000000,"status":"completed","error":null,"incomplete_details":null,"model":"gpt-x","output":[)" +
            item_done +
            R"(],"usage":{"input_tokens":3,"input_tokens_details":{"cached_tokens":0},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":7}}})" "\n\n");
}

TEST(OpenAiResponsesEncoder, ServesAnAnthropicUpstream) {
  codec::openai_responses_encoder encoder;
  const std::string out = encode_all(encoder, anthropic_like_events());
  const auto blocks = split_sse(out);
  simdjson::dom::parser parser;
  std::int64_t expected_sequence = 0;
  std::string text, arguments;
  for (const sse_block& b : blocks) {
    const auto data = parse(parser, b.data);
    EXPECT_EQ(str(data["type"]), b.event_name);
    EXPECT_EQ(num(data["sequence_number"]), expected_sequence++);
    if (b.event_name == "response.output_text.delta") text += str(data["delta"]);
    if (b.event_name == "response.function_call_arguments.delta") arguments += str(data["delta"]);
    if (b.event_name == "response.function_call_arguments.done") {
      EXPECT_EQ(str(data["arguments"]), arguments);
    }
    if (b.event_name == "response.output_item.added" && str(data["item"]["type"]) == "function_call") {
      EXPECT_EQ(str(data["item"]["call_id"]), "toolu_1");
      EXPECT_EQ(str(data["item"]["name"]), "get_tide");
      EXPECT_EQ(num(data["output_index"]), 1);
    }
  }
  EXPECT_EQ(text, "Hello \"world\"\n");
  EXPECT_EQ(arguments, "{\"port\":\"Brest\"}");
  ASSERT_FALSE(blocks.empty());
  EXPECT_EQ(blocks.back().event_name, "response.completed");
  const auto completed = parse(parser, blocks.back().data);
  EXPECT_EQ(str(completed["response"]["status"]), "completed");
  EXPECT_EQ(num(completed["response"]["usage"]["output_tokens"]), 42);
  simdjson::dom::array output;
  ASSERT_FALSE(completed["response"]["output"].get_array().get(output));
  EXPECT_EQ(output.size(), 2u);
  EXPECT_NE(out.find(": keep-alive\n\n"), std::string::npos);  // the upstream ping, as a comment
}

TEST(OpenAiResponsesEncoder, MaxTokensEndsAsIncomplete) {
  codec::openai_responses_encoder encoder;
  const std::string out = encode_all(encoder, {event::text_delta(0, "a"), event::message_stop(stop_reason::max_tokens)});
  EXPECT_NE(out.find("event: response.incomplete\n"), std::string::npos);
  EXPECT_NE(out.find(R"("incomplete_details":{"reason":"max_output_tokens"})"), std::string::npos);
  EXPECT_NE(out.find(R"("usage":null)"), std::string::npos);  // never invented
}

TEST(OpenAiResponsesEncoder, ErrorIsAnErrorEvent) {
  codec::openai_responses_encoder encoder;
  const std::string out = encode_all(encoder, {event::text_delta(0, "a"), event::error("server_error", "boom")});
  EXPECT_NE(out.find("event: error\n" R"(data: {"type":"error","sequence_number":5,"code":"server_error","message":"boom","param":null})"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("response.completed"), std::string::npos);
}

// ---- tool calls and ids across dialects ----

// One tool call as each dialect's output shows it.
struct written_call {
  std::string id;
  std::string name;
  std::string arguments;
};

// The tool calls in Chat output, by choice and tool index, in order of their first chunk; fails the test when
// a call's first chunk lacks its id and name (clients need them first).
std::vector<written_call> chat_calls(const std::string& out) {
  std::vector<written_call> calls;
  std::map<std::pair<std::int64_t, std::int64_t>, std::size_t> position;
  simdjson::dom::parser parser;
  for (const sse_block& b : split_sse(out)) {
    if (b.data == "[DONE]") continue;
    simdjson::dom::array choices;
    if (parse(parser, b.data)["choices"].get_array().get(choices) || choices.size() == 0) continue;
    const auto choice = choices.at(0).value();
    simdjson::dom::array tool_calls;
    if (choice["delta"]["tool_calls"].get_array().get(tool_calls)) continue;
    for (auto call : tool_calls) {
      const auto key = std::make_pair(num(choice["index"]), num(call["index"]));
      if (!position.count(key)) {
        position[key] = calls.size();
        calls.push_back({str(call["id"]), str(call["function"]["name"]), ""});
        EXPECT_EQ(str(call["type"]), "function") << b.data;
      }
      std::string_view s;
      if (!call["function"]["arguments"].get_string().get(s)) calls[position[key]].arguments += s;
    }
  }
  return calls;
}

// The tool_use blocks in Anthropic output, in order.
std::vector<written_call> anthropic_calls(const std::string& out) {
  std::vector<written_call> calls;
  std::map<std::int64_t, std::size_t> position;
  simdjson::dom::parser parser;
  for (const sse_block& b : split_sse(out)) {
    const auto data = parse(parser, b.data);
    if (b.event_name == "content_block_start" && str(data["content_block"]["type"]) == "tool_use") {
      position[num(data["index"])] = calls.size();
      calls.push_back({str(data["content_block"]["id"]), str(data["content_block"]["name"]), ""});
    } else if (b.event_name == "content_block_delta" && str(data["delta"]["type"]) == "input_json_delta") {
      const auto it = position.find(num(data["index"]));
      if (it == position.end()) {
        ADD_FAILURE() << "arguments for a block that is not a tool_use: " << b.data;
        continue;
      }
      calls[it->second].arguments += str(data["delta"]["partial_json"]);
    }
  }
  return calls;
}

// The function_call items of Responses output as response.completed lists them, after checking that the
// output_item.added / .done events and the argument deltas agree with it.
std::vector<written_call> responses_calls(const std::string& out) {
  std::map<std::string, written_call> added, done;  // by item id
  std::map<std::string, std::string> deltas;
  std::vector<written_call> calls;
  simdjson::dom::parser parser;
  for (const sse_block& b : split_sse(out)) {
    const auto data = parse(parser, b.data);
    const auto item = data["item"];
    if ((b.event_name == "response.output_item.added" || b.event_name == "response.output_item.done") &&
        str(item["type"]) == "function_call") {
      (b.event_name == "response.output_item.added" ? added : done)[str(item["id"])] = {
          str(item["call_id"]), str(item["name"]), str(item["arguments"])};
    } else if (b.event_name == "response.function_call_arguments.delta") {
      EXPECT_TRUE(added.count(str(data["item_id"]))) << "arguments before their item: " << b.data;
      deltas[str(data["item_id"])] += str(data["delta"]);
    } else if (b.event_name == "response.completed") {
      simdjson::dom::array output;
      EXPECT_FALSE(data["response"]["output"].get_array().get(output));
      for (auto completed : output) {
        if (str(completed["type"]) != "function_call") continue;
        const std::string item_id = str(completed["id"]);
        calls.push_back({str(completed["call_id"]), str(completed["name"]), str(completed["arguments"])});
        EXPECT_EQ(added[item_id].id, calls.back().id) << item_id;
        EXPECT_EQ(added[item_id].name, calls.back().name) << item_id;
        EXPECT_EQ(done[item_id].id, calls.back().id) << item_id;
        EXPECT_EQ(done[item_id].arguments, calls.back().arguments) << item_id;
        EXPECT_EQ(deltas[item_id], calls.back().arguments) << item_id;
      }
    }
  }
  EXPECT_EQ(added.size(), calls.size());
  return calls;
}

void expect_calls(const std::vector<written_call>& got, const std::vector<written_call>& want,
                  const std::string& out) {
  ASSERT_EQ(got.size(), want.size()) << out;
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].id) << i << "\n" << out;
    EXPECT_EQ(got[i].name, want[i].name) << i << "\n" << out;
    EXPECT_EQ(got[i].arguments, want[i].arguments) << i << "\n" << out;
  }
}

// Gemini's functionCalls have no id: each call gets one made up from the response id (only [A-Za-z0-9_-]
// kept) and its place in the output, with the dialect's prefix, the same wherever the call's id is written
// again.
TEST(DialectEncoders, MakeUpAUniqueIdForEachToolCallWithoutOne) {
  const std::vector<event> events = {
      event::message_start("gen:7", "gemini-x"),
      event::text_delta(0, "Checking."),
      event::tool_call_start(0, "", "get_tide"),
      event::tool_args_delta(0, "{\"port\":\"Brest\"}"),
      event::tool_call_end(0),
      event::tool_call_start(1, "", "get_weather"),
      event::tool_args_delta(1, "{}"),
      event::tool_call_end(1),
      event::tool_call_start(2, "call_kept", "get_moon"),  // an id the source gave is kept
      event::tool_call_end(2),
      event::message_stop(stop_reason::tool_use),
  };
  codec::openai_chat_encoder chat;
  std::string out = encode_all(chat, events);
  expect_calls(chat_calls(out),
               {{"call_gen_7_0", "get_tide", "{\"port\":\"Brest\"}"},
                {"call_gen_7_1", "get_weather", "{}"},
                {"call_kept", "get_moon", ""}},
               out);
  codec::anthropic_encoder anthropic;
  out = encode_all(anthropic, events);
  expect_calls(anthropic_calls(out),
               {{"toolu_gen_7_1", "get_tide", "{\"port\":\"Brest\"}"},
                {"toolu_gen_7_2", "get_weather", "{}"},
                {"call_kept", "get_moon", ""}},
               out);
  codec::openai_responses_encoder responses;
  out = encode_all(responses, events);
  expect_calls(responses_calls(out),
               {{"call_gen_7_1", "get_tide", "{\"port\":\"Brest\"}"},
                {"call_gen_7_2", "get_weather", "{}"},
                {"call_kept", "get_moon", ""}},
               out);
}

// Chat tool indices restart per choice; the made-up ids still differ.
TEST(OpenAiChatEncoder, MadeUpToolCallIdsDifferAcrossChoices) {
  codec::openai_chat_encoder chat;
  const std::string out =
      encode_all(chat, {event::message_start("c1", "m"), event::tool_call_start(0, "", "f"),
                        event::tool_call_start(0, "", "f", 1), event::message_stop(stop_reason::tool_use)});
  EXPECT_NE(out.find(R"({"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_c1_0")"), std::string::npos)
      << out;
  EXPECT_NE(out.find(R"({"index":1,"delta":{"tool_calls":[{"index":0,"id":"call_c1_1")"), std::string::npos)
      << out;
}

// Argument fragments may come before their call's start (the Chat decoder sends them so when the name arrives
// in a later chunk): they are held and written right after the start, so the call keeps its id and name.
// Fragments of a call whose start never comes are dropped at its end or at message_stop.
TEST(DialectEncoders, HoldArgumentsThatComeBeforeTheirCallsStart) {
  const std::vector<event> events = {
      event::message_start("msg_1", "x"),
      event::tool_args_delta(0, "{\"port\":"),
      event::tool_args_delta(0, ""),
      event::tool_args_delta(0, "\"Brest\""),
      event::tool_call_start(0, "call_a", "get_tide"),
      event::tool_args_delta(0, "}"),
      event::tool_args_delta(1, "{\"never\":"),  // no start: dropped at its end
      event::tool_call_end(1),
      event::tool_args_delta(2, "{\"nor\":"),  // no start and no end: dropped at message_stop
      event::tool_args_delta(3, "{\"late\":1}"),
      event::tool_call_start(3, "", "get_moon"),
      event::tool_call_end(0),
      event::tool_call_end(3),
      event::message_stop(stop_reason::tool_use),
  };
  const auto expect_no_dropped = [](const std::string& out) {
    EXPECT_EQ(out.find("never"), std::string::npos) << out;
    EXPECT_EQ(out.find("nor"), std::string::npos) << out;
  };
  codec::openai_chat_encoder chat;
  std::string out = encode_all(chat, events);
  expect_calls(chat_calls(out),
               {{"call_a", "get_tide", "{\"port\":\"Brest\"}"}, {"call_msg_1_1", "get_moon", "{\"late\":1}"}},
               out);
  expect_no_dropped(out);
  codec::anthropic_encoder anthropic;
  out = encode_all(anthropic, events);
  expect_calls(
      anthropic_calls(out),
      {{"call_a", "get_tide", "{\"port\":\"Brest\"}"}, {"toolu_msg_1_1", "get_moon", "{\"late\":1}"}}, out);
  expect_no_dropped(out);
  codec::openai_responses_encoder responses;
  out = encode_all(responses, events);
  expect_calls(responses_calls(out),
               {{"call_a", "get_tide", "{\"port\":\"Brest\"}"}, {"call_msg_1_1", "get_moon", "{\"late\":1}"}},
               out);
  expect_no_dropped(out);
}

// A Chat keep-alive before the upstream said anything is the first chunk, so its id and model (the fallbacks)
// are the response's: clients take them from the first chunk. A later message start does not change them.
TEST(OpenAiChatEncoder, IdAndModelStayAsTheFirstChunkWroteThem) {
  codec::openai_chat_encoder encoder;
  std::string out;
  encoder.keep_alive(out);
  const std::string written =
      encode_all(encoder, {event::stream_start("openai", "gpt-4o", "req_1"),
                           event::message_start("chatcmpl-1", ""), event::text_delta(0, "Hi"),
                           event::message_stop(stop_reason::end_turn), event::usage({1, 2, 3, 0, 0, 0})});
  out += written;
  const auto blocks = split_sse(out);
  ASSERT_GE(blocks.size(), 5u) << out;
  simdjson::dom::parser parser;
  for (const sse_block& b : blocks) {
    if (b.data == "[DONE]") continue;
    const auto chunk = parse(parser, b.data);
    EXPECT_EQ(str(chunk["id"]), "rill") << b.data;
    EXPECT_EQ(str(chunk["model"]), "unknown") << b.data;
  }
}

// Responses and Anthropic keep-alives write no id or model: the message start that follows them gives both.
TEST(DialectEncoders, KeepAliveBeforeTheMessageStartLeavesItsIdAndModel) {
  const std::vector<event> events = {event::keep_alive(), event::stream_start("openai", "gpt-4o", "req_1"),
                                     event::message_start("resp_1", ""), event::text_delta(0, "Hi"),
                                     event::message_stop(stop_reason::end_turn)};
  simdjson::dom::parser parser;
  codec::openai_responses_encoder responses;
  std::string out;
  responses.keep_alive(out);
  out += encode_all(responses, events);
  std::size_t responses_seen = 0;
  for (const sse_block& b : split_sse(out)) {
    const auto response = parse(parser, b.data)["response"];
    if (response.error()) continue;
    ++responses_seen;
    EXPECT_EQ(str(response["id"]), "resp_1") << b.data;
    EXPECT_EQ(str(response["model"]), "gpt-4o") << b.data;
  }
  EXPECT_EQ(responses_seen, 3u) << out;  // created, in_progress, completed
  codec::anthropic_encoder anthropic;
  out.clear();
  anthropic.keep_alive(out);
  out += encode_all(anthropic, events);
  EXPECT_NE(
      out.find(
          R"({"type":"message_start","message":{"id":"resp_1","type":"message","role":"assistant","model":"gpt-4o",)"),
      std::string::npos)
      << out;
}

// ---- run-time choice ----

TEST(OutputEncoder, ParsesFormatNamesAndDrivesEachFormat) {
  for (std::string_view name : {"jsonl", "sse", "jsonrpc", "openai-chat", "openai-responses", "anthropic"}) {
    bool ok = false;
    const codec::output_format format = codec::output_format_from_string(name, ok);
    ASSERT_TRUE(ok) << name;
    EXPECT_EQ(codec::to_string(format), name);
    codec::output_encoder encoder(format);
    std::string out;
    for (const event& e : anthropic_like_events()) ASSERT_EQ(encoder.encode(e, out), status::ok) << name;
    encoder.keep_alive(out);
    ASSERT_EQ(encoder.finish(out), status::ok);
    EXPECT_FALSE(out.empty()) << name;
  }
  bool ok = true;
  static_cast<void>(codec::output_format_from_string("xml", ok));
  EXPECT_FALSE(ok);
}

TEST(DialectEncoders, RefuseInvalidEventsAndResetForTheNextResponse) {
  codec::anthropic_encoder encoder;
  std::string out;
  EXPECT_EQ(encoder.encode(event{}, out), status::invalid);
  EXPECT_TRUE(out.empty());
  const std::string first = encode_all(encoder, anthropic_like_events());
  encoder.reset();
  const std::string second = encode_all(encoder, anthropic_like_events());
  EXPECT_EQ(first, second);
}

}  // namespace
