// Provider adapters beyond the fixtures: counters, hostile payloads, strict mode, dialect detection,
// tool-call edge cases and the reassembler's handling of invalid arguments.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "codec_decode_test_util.hpp"
#include "rill/codec/provider.hpp"
#include "rill/codec/reassembler.hpp"

namespace {

using rill::event;
using rill::event_kind;
using rill::status;
using rill::codec::provider;
using rill::codec::provider_decoder;
using rill::codec::provider_decoder_options;

provider_decoder_options with_dialect(provider p) {
  provider_decoder_options o;
  o.dialect = p;
  return o;
}

TEST(ProviderDecoder, ParsesDialectNames) {
  bool ok = false;
  EXPECT_EQ(rill::codec::provider_from_string("openai-chat", ok), provider::openai_chat);
  EXPECT_TRUE(ok);
  EXPECT_EQ(rill::codec::provider_from_string("openai_responses", ok), provider::openai_responses);
  EXPECT_EQ(rill::codec::provider_from_string("gemini", ok), provider::gemini);
  EXPECT_EQ(rill::codec::provider_from_string("auto", ok), provider::unknown);
  EXPECT_TRUE(ok);
  rill::codec::provider_from_string("cohere", ok);
  EXPECT_FALSE(ok);
  EXPECT_EQ(rill::codec::to_string(provider::anthropic), "anthropic");
}

TEST(ProviderDecoder, NonJsonDataIsSkippedAndCounted) {
  const auto run = rill::test::decode_with_cuts(
      "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"
      "data: {not json\n\ndata: \xff\xfe\n\ndata: [DONE]\n\n",
      {});
  EXPECT_EQ(run.result, status::ok);
  EXPECT_EQ(run.native.counters.non_json_data, 2u);
  EXPECT_TRUE(run.native.completed);
  EXPECT_NE(run.summary.find("\"text\":\"hi\""), std::string::npos);
}

TEST(ProviderDecoder, StrictJsonFailsWithOffsetAndEmitsNothingMore) {
  provider_decoder_options options = with_dialect(provider::openai_chat);
  options.strict_json = true;
  const auto run = rill::test::decode_with_cuts(
      "data: {\"id\":\"c1\",\"choices\":[]}\n\ndata: {broken\n\ndata: {\"id\":\"c1\",\"choices\":[{\"index\":0,"
      "\"delta\":{\"content\":\"late\"}}]}\n\n",
      {}, options);
  EXPECT_EQ(run.result, status::invalid);
  EXPECT_EQ(run.error_offset, 32u);
  EXPECT_NE(run.error_message.find("not JSON"), std::string::npos) << run.error_message;
  EXPECT_NE(run.error_message.find("byte offset 32"), std::string::npos) << run.error_message;
  EXPECT_EQ(run.log.find("late"), std::string::npos);
}

TEST(ProviderDecoder, UnknownEventTypesAreIgnoredAndCounted) {
  const auto run = rill::test::decode_with_cuts(
      "event: message_start\ndata: "
      "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\"}}\n\n"
      "event: brand_new\ndata: {\"type\":\"brand_new\"}\n\n"
      "event: content_block_delta\ndata: "
      "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"mystery_delta\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
      "\"type\":\"citations_delta\",\"citation\":{\"type\":\"char_location\",\"cited_text\":\"c\"}}}\n\n",
      {});
  EXPECT_EQ(run.native.dialect, provider::anthropic);
  EXPECT_EQ(run.native.counters.unknown_events, 3u)
      << "citations_delta has no rill event: counted, not silent";
}

TEST(ProviderDecoder, WrongShapedJsonIsCountedNotFatal) {
  const auto run = rill::test::decode_with_cuts(
      "data: {\"id\":\"c\",\"choices\":[7,{\"index\":0,\"delta\":{\"content\":\"ok\",\"tool_calls\":[\"x\"]}}]}\n\n"
      "data: [1,2]\n\ndata: \"str\"\n\n",
      {}, with_dialect(provider::openai_chat));
  EXPECT_EQ(run.result, status::ok);
  EXPECT_EQ(run.native.counters.malformed_payloads, 4u);
  EXPECT_NE(run.log.find("[ok]"), std::string::npos);
}

// Sequence numbers come from upstream: the largest ones are counted as malformed, not overflowed (UBSan
// saw the signed overflow), and gaps are counted from where the last valid one left off.
TEST(ProviderDecoder, ResponsesSequenceNumbersAtTheTopOfTheRangeAreMalformedNotOverflowed) {
  const auto event_with = [](const char* number) {
    return std::string(
               "event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"sequence_number\":") +
           number + "}\n\n";
  };
  const auto run = rill::test::decode_with_cuts(event_with("0") + event_with("9223372036854775807") +
                                                    event_with("9223372036854775808") +
                                                    event_with("18446744073709551615") + event_with("5"),
                                                {}, with_dialect(provider::openai_responses));
  EXPECT_EQ(run.result, status::ok);
  EXPECT_EQ(run.native.counters.malformed_payloads, 2u);
  EXPECT_EQ(run.native.counters.sequence_gaps, 2u);  // 0 -> INT64_MAX, then INT64_MAX -> 5
  EXPECT_EQ(run.native.last_sequence_number, 5);
}

TEST(ProviderDecoder, SseCapIsTooLargeThroughTheAdapter) {
  provider_decoder_options options;
  options.sse.max_event_bytes = 256;
  const auto run =
      rill::test::decode_with_cuts("data: {\"a\":\"" + std::string(1000, 'x') + "\"}\n\n", {}, options);
  EXPECT_EQ(run.result, status::too_large);
  EXPECT_NE(run.error_message.find("256"), std::string::npos);
  EXPECT_TRUE(run.log.empty());
}

TEST(ProviderDecoder, DetectsEachDialectFromItsFirstEvents) {
  struct probe {
    const char* bytes;
    provider want;
  };
  const probe probes[] = {
      {"data: [DONE]\n\n", provider::openai_chat},
      {"data: {\"object\":\"chat.completion.chunk\",\"choices\":[]}\n\n", provider::openai_chat},
      {"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n",
       provider::openai_responses},
      {"data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n", provider::openai_responses},
      {"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n", provider::anthropic},
      {"data: {\"candidates\":[]}\n\n", provider::gemini},
      {": keep-alive\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\ndata: {\"usageMetadata\":{}}\n\n", provider::gemini},
  };
  for (const probe& p : probes) {
    const auto run = rill::test::decode_with_cuts(p.bytes, {});
    EXPECT_EQ(run.native.dialect, p.want) << p.bytes;
  }
}

TEST(ProviderDecoder, ErrorBeforeDetectionStillBecomesAnErrorEvent) {
  const auto run = rill::test::decode_with_cuts(
      "data: {\"error\":{\"code\":429,\"message\":\"quota\",\"status\":\"RESOURCE_EXHAUSTED\"}}\n\n", {});
  EXPECT_NE(run.log.find("error i=0 c=0 a=0 b=1 [RESOURCE_EXHAUSTED] [quota]"), std::string::npos) << run.log;
  EXPECT_TRUE(run.native.errored);
  EXPECT_FALSE(run.native.completed);
}

TEST(ProviderDecoder, ErrorAfterDoneKeepsStreamIncomplete) {
  const auto run = rill::test::decode_with_cuts(
      "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
      {}, with_dialect(provider::anthropic));
  EXPECT_FALSE(run.native.completed);
  EXPECT_EQ(run.log.find("stream_complete"), std::string::npos);
  EXPECT_NE(run.summary.find("\"stop_reason_normalized\":\"error\""), std::string::npos);
}

TEST(ProviderDecoder, OpenAiChatToolFragmentsKeyedByChoiceAndIndex) {
  const std::string chunk_a =
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a0\","
      "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":\"}}]}},{\"index\":1,\"delta\":{\"tool_calls\":["
      "{\"index\":0,\"id\":\"b0\",\"function\":{\"name\":\"g\",\"arguments\":\"[1,\"}}]}}]}\n\n";
  const std::string chunk_b =
      "data: {\"id\":\"c\",\"choices\":[{\"index\":1,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
      "\"arguments\":\"2]\"}}]}},{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\""
      ":\"1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n";
  provider_decoder d;
  rill::codec::reassembler fold;
  auto sink = [&](const event& e) { fold.add(e); };
  ASSERT_EQ(d.feed(chunk_a + chunk_b, sink), status::ok);
  ASSERT_EQ(d.finish(sink), status::ok);
  const auto& r = fold.result();
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].id, "a0");
  EXPECT_EQ(r.tool_calls[0].arguments_raw, "{\"x\":1}");
  EXPECT_TRUE(r.tool_calls[0].arguments_valid);
  EXPECT_EQ(r.tool_calls[1].choice, 1u);
  EXPECT_EQ(r.tool_calls[1].arguments_raw, "[1,2]");
  EXPECT_TRUE(r.tool_calls[1].ended);
}

// n > 1 (Chat) and several candidates (Gemini): every text delta carries its choice, so each choice's text
// reassembles apart from the others'.
TEST(ProviderDecoder, TextDeltasCarryTheirChoice) {
  const struct {
    provider dialect;
    std::string input;
  } cases[] = {
      {provider::openai_chat,
       "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\"}},{\"index\":1,\"delta\":{"
       "\"content\":\"B\",\"reasoning_content\":\"r\"}}]}\n\ndata: {\"id\":\"c\",\"choices\":[{\"index\":1,"
       "\"delta\":{\"content\":\"b\"},\"finish_reason\":\"length\"},{\"index\":0,\"delta\":{\"content\":"
       "\"a\"},"
       "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"},
      {provider::gemini,
       "data: "
       "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A\"}]},\"index\":0},{\"content\":{\"parts\":"
       "[{\"text\":\"B\"},{\"text\":\"r\",\"thought\":true}]},\"index\":1}],\"responseId\":\"g\"}\n\n"
       "data: "
       "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"index\":1,\"finishReason\":\"MAX_"
       "TOKENS\"},"
       "{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"index\":0,\"finishReason\":\"STOP\"}]}\n\n"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(rill::codec::to_string(c.dialect));
    provider_decoder d(with_dialect(c.dialect));
    rill::codec::reassembler fold;
    std::vector<event> deltas;
    auto sink = [&](const event& e) {
      fold.add(e);
      if (e.kind() == event_kind::text_delta || e.kind() == event_kind::thinking_delta) deltas.push_back(e);
    };
    ASSERT_EQ(d.feed(c.input, sink), status::ok) << d.error_message();
    ASSERT_EQ(d.finish(sink), status::ok);
    ASSERT_EQ(deltas.size(), 5u);
    for (const event& e : deltas) {
      EXPECT_EQ(e.choice(), e.text() == "A" || e.text() == "a" ? 0u : 1u) << e.text();
      EXPECT_EQ(e.index(), e.choice()) << e.text();
    }
    const auto& r = fold.result();
    EXPECT_EQ(r.text, "Aa");
    ASSERT_EQ(r.other_choices.size(), 1u);
    EXPECT_EQ(r.other_choices[0].choice, 1u);
    EXPECT_EQ(r.other_choices[0].text, "Bb");
    ASSERT_EQ(r.thinking.size(), 1u);
    EXPECT_EQ(r.thinking[0].text, "r");
    EXPECT_EQ(r.stop, rill::stop_reason::end_turn);  // choice 0's reason is the message's
  }
}

// A Chat call whose name comes in a later fragment: its start is emitted then, before every fragment (the
// ones that came first are held and follow it as one delta), so encoders can write its id and name. A call
// that never gets a name emits nothing at all, and is counted as malformed.
TEST(ProviderDecoder, ToolArgumentsNeverComeBeforeTheirStart) {
  const auto run = rill::test::decode_with_cuts(
      "data: "
      "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\","
      "\"function\":{\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n"
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
      "\"name\":\"f\",\"arguments\":\":1\"}}]}}]}\n\n"
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{"
      "\"arguments\":\"[2]\"}}]}}]}\n\n"
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
      "\"arguments\":\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
      {}, with_dialect(provider::openai_chat));
  ASSERT_EQ(run.result, status::ok) << run.error_message;
  EXPECT_EQ(run.log,
            "message_start i=0 c=0 a=0 b=0 [c] []\n"
            "tool_call_start i=0 c=0 a=0 b=0 [call_1] [f]\n"
            "tool_args_delta i=0 c=0 a=0 b=0 [{\"a\"]\n"
            "tool_args_delta i=0 c=0 a=0 b=0 [:1]\n"
            "tool_args_delta i=0 c=0 a=0 b=0 [}]\n"
            "tool_call_end i=0 c=0 a=0 b=0\n"
            "message_stop i=0 c=0 a=2 b=0\n"
            "stream_complete i=0 c=0 a=0 b=0 n=5\n");
  // Call 0's first part (an id without a name) and call 1's fragment (neither).
  EXPECT_EQ(run.native.counters.malformed_payloads, 2u);
  ASSERT_EQ(run.response.tool_calls.size(), 1u);
  EXPECT_EQ(run.response.tool_calls[0].arguments_raw, "{\"a\":1}");
}

// Limits are checked before a dialect emits anything for the upstream event: a tool_use block whose id is
// too long for an event field fails the decoder without a content_block_start left open.
TEST(ProviderDecoder, TooLongToolIdFailsBeforeTheBlockOpens) {
  const std::string id(70000, 'x');
  for (const provider dialect : {provider::anthropic, provider::openai_responses}) {
    SCOPED_TRACE(rill::codec::to_string(dialect));
    const std::string input =
        dialect == provider::anthropic
            ? "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
              "\"content_block\":{\"type\":\"tool_use\",\"id\":\"" +
                  id + "\",\"name\":\"f\",\"input\":{}}}\n\n"
            : "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\","
              "\"output_index\":0,\"item\":{\"type\":\"function_call\",\"call_id\":\"" +
                  id + "\",\"name\":\"f\",\"arguments\":\"\"}}\n\n";
    const auto run = rill::test::decode_with_cuts(input, {}, with_dialect(dialect));
    EXPECT_EQ(run.result, status::too_large);
    EXPECT_EQ(run.log, "");
  }
}

// Several Gemini candidates: one finishing first does not end the response; it ends when every candidate
// seen has finished, with candidate 0's reason.
TEST(ProviderDecoder, GeminiEndsWhenEveryCandidateHasFinished) {
  const auto run = rill::test::decode_with_cuts(
      "data: "
      "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"index\":0},{\"content\":{\"parts\":"
      "[{\"text\":\"B\"}]},\"index\":1,\"finishReason\":\"STOP\"}],\"responseId\":\"g\"}\n\n"
      "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"more\"}]},\"index\":0,"
      "\"finishReason\":\"MAX_TOKENS\"}]}\n\n",
      {}, with_dialect(provider::gemini));
  ASSERT_EQ(run.result, status::ok) << run.error_message;
  EXPECT_EQ(run.log,
            "message_start i=0 c=0 a=0 b=0 [g] []\n"
            "text_delta i=0 c=0 a=0 b=0 [a]\n"
            "text_delta i=1 c=1 a=0 b=0 [B]\n"
            "text_delta i=0 c=0 a=0 b=0 [more]\n"
            "message_stop i=0 c=0 a=3 b=0\n"
            "stream_complete i=0 c=0 a=0 b=0 n=2\n");
  EXPECT_EQ(run.native.stop_reason, "MAX_TOKENS");
  EXPECT_TRUE(run.native.completed);
}

// An in-stream error ends the response: message_stop(error) follows it and nothing else, whatever the
// upstream sends after it (counted in after_error).
TEST(ProviderDecoder, NothingIsEmittedAfterAnInStreamError) {
  const auto run = rill::test::decode_with_cuts(
      "event: message_start\ndata: "
      "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\"}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n"
      "event: error\ndata: "
      "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
      "\"text_delta\",\"text\":\"late\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
      {}, with_dialect(provider::anthropic));
  ASSERT_EQ(run.result, status::ok) << run.error_message;
  EXPECT_EQ(run.log.find("late"), std::string::npos) << run.log;
  EXPECT_EQ(run.log.find("stream_complete"), std::string::npos) << run.log;
  EXPECT_EQ(run.native.counters.after_error, 2u);
  EXPECT_FALSE(run.native.completed);
}

// The terminal marker ends the response even when no stop reason came: message_stop(none), so an encoder
// finishes it instead of leaving it looking cut off.
TEST(ProviderDecoder, TerminalMarkerWithoutAStopReasonStillStops) {
  const struct {
    provider dialect;
    std::string input;
  } cases[] = {
      {provider::openai_chat,
       "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"},
      {provider::anthropic,
       "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n"
       "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(rill::codec::to_string(c.dialect));
    const auto run = rill::test::decode_with_cuts(c.input, {}, with_dialect(c.dialect));
    ASSERT_EQ(run.result, status::ok) << run.error_message;
    EXPECT_NE(run.log.find("message_stop i=0 c=0 a=0 b=0\nstream_complete"), std::string::npos) << run.log;
    EXPECT_FALSE(run.response.stop.has_value());  // none: no reason is reported
    EXPECT_TRUE(run.native.completed);
  }
  // Cut off before its marker, the response still gets no stop.
  const auto cut = rill::test::decode_with_cuts(
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n", {},
      with_dialect(provider::openai_chat));
  EXPECT_EQ(cut.log.find("message_stop"), std::string::npos) << cut.log;
}

// Detection: an error as the very first event is still reported, in either typed shape, with the dialect's
// retryable codes.
TEST(ProviderDecoder, AnErrorBeforeTheDialectIsKnownIsReported) {
  const struct {
    std::string input;
    std::string code;
    bool retryable;
  } cases[] = {
      {"event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow "
       "down\"}\n\n",
       "rate_limit_exceeded", true},
      {"event: error\ndata: "
       "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n",
       "overloaded_error", true},
      {"data: {\"error\":{\"code\":400,\"status\":\"INVALID_ARGUMENT\",\"message\":\"bad\"}}\n\n",
       "INVALID_ARGUMENT", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    std::vector<event> errors;
    provider_decoder d;
    auto sink = [&](const event& e) {
      if (e.kind() == event_kind::error) errors.push_back(e);
    };
    ASSERT_EQ(d.feed(c.input, sink), status::ok);
    ASSERT_EQ(d.feed(c.input, sink), status::ok);  // a second error: the first ended the response
    ASSERT_EQ(d.finish(sink), status::ok);
    EXPECT_EQ(d.summary().counters.after_error, 1u);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].error_code(), c.code);
    EXPECT_EQ(errors[0].kind_bit(), c.retryable);
    EXPECT_TRUE(d.summary().errored);
  }
}

// Arguments are kept until their call ends (to check them as JSON): a response's total is capped, and going
// over the cap fails the decoder instead of growing without bound.
TEST(ProviderDecoder, ArgumentsOverTheCapFailTheDecoder) {
  provider_decoder_options options = with_dialect(provider::anthropic);
  options.max_argument_bytes = 100;
  const std::string fragment(60, '1');
  const std::string start =
      "event: content_block_start\ndata: "
      "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
      "\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n";
  const std::string delta =
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
      "{\"type\":\"input_json_delta\",\"partial_json\":\"" +
      fragment + "\"}}\n\n";
  const auto run = rill::test::decode_with_cuts(start + delta + delta, {}, options);
  EXPECT_EQ(run.result, status::too_large);
  EXPECT_NE(run.error_message.find("max_argument_bytes"), std::string::npos) << run.error_message;
  EXPECT_EQ(run.response.tool_calls.size(), 1u);
  EXPECT_EQ(run.response.tool_calls[0].arguments_raw, fragment);  // the first fragment, not the second
  options.max_argument_bytes = 120;
  EXPECT_EQ(rill::test::decode_with_cuts(start + delta + delta, {}, options).result, status::ok);
}

TEST(ProviderDecoder, InvalidArgumentsAreFlaggedNotDropped) {
  std::vector<event> ends;
  provider_decoder d(with_dialect(provider::anthropic));
  rill::codec::reassembler fold;
  auto sink = [&](const event& e) {
    if (e.kind() == event_kind::tool_call_end) ends.push_back(e);
    fold.add(e);
  };
  ASSERT_EQ(d.feed("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,"
                   "\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{}}}\n\n"
                   "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{"
                   "\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\": tru\"}}\n\n"
                   "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
                   sink),
            status::ok);
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_TRUE(ends[0].args_invalid());
  const auto& r = fold.result();
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_FALSE(r.tool_calls[0].arguments_valid);
  EXPECT_EQ(r.tool_calls[0].arguments_raw, "{\"a\": tru");
  const std::string json = rill::codec::summary_json(r, rill::codec::extras_from(d.summary()));
  EXPECT_NE(json.find("\"arguments\":null,\"arguments_raw\":\"{\\\"a\\\": tru\",\"arguments_valid\":false"),
            std::string::npos)
      << json;
}

// A redacted_thinking block's `data` is the encrypted reasoning a client must send back on its next turn:
// it travels on the content_block_start event and into the reassembled summary.
TEST(ProviderDecoder, RedactedThinkingKeepsItsData) {
  const std::string data = "EmwKAhgBEgy3va3pzix/LafPsn4a" + std::string(3000, 'Q');  // long: borrowed text
  provider_decoder d(with_dialect(provider::anthropic));
  rill::codec::reassembler fold;
  std::string got;
  auto sink = [&](const event& e) {
    if (e.kind() == event_kind::content_block_start) {
      EXPECT_EQ(e.block(), rill::block_type::redacted_thinking);
      got = std::string(e.block_data());
    }
    fold.add(e);
  };
  ASSERT_EQ(d.feed("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
                   "\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"" +
                       data +
                       "\"}}\n\n"
                       "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
                   sink),
            status::ok);
  EXPECT_EQ(got, data);
  const auto& r = fold.result();
  ASSERT_EQ(r.thinking.size(), 1u);
  EXPECT_TRUE(r.thinking[0].redacted);
  EXPECT_EQ(r.thinking[0].data, data);
  const std::string json = rill::codec::summary_json(r, rill::codec::extras_from(d.summary()));
  EXPECT_NE(json.find("\"redacted\":true,\"data\":\"" + data + "\""), std::string::npos) << json;
}

// The reassembler takes events from any producer, not only a validating parser: its summary stays JSON.
TEST(Reassembler, SummaryOfIllFormedUtf8IsStillJson) {
  rill::codec::reassembler fold;
  fold.add(event::text_delta(0, "a\xff\xc3"));
  const std::string json = rill::codec::summary_json(fold.result(), {});
  EXPECT_NE(json.find("\"text\":\"a\xef\xbf\xbd\xef\xbf\xbd\""), std::string::npos) << json;
  simdjson::dom::parser parser;
  EXPECT_EQ(parser.parse(json).error(), simdjson::SUCCESS) << json;
}

TEST(ProviderDecoder, LongTextIsBorrowedAndValidDuringTheSinkCall) {
  const std::string text(5000, 'w');
  provider_decoder d(with_dialect(provider::anthropic));
  std::string got;
  auto sink = [&](const event& e) {
    if (e.kind() == event_kind::text_delta) {
      EXPECT_TRUE(e.text_is_external());
      got = std::string(e.text());
    }
  };
  ASSERT_EQ(d.feed("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
                   "\"type\":\"text_delta\",\"text\":\"" + text + "\"}}\n\n",
                   sink),
            status::ok);
  EXPECT_EQ(got, text);
}

TEST(ProviderDecoder, SinkStatusStopsAndIsReturned) {
  provider_decoder d;
  int calls = 0;
  auto sink = [&](const event&) {
    ++calls;
    return status::closed;
  };
  const std::string input = rill::test::read_file(std::string(RILL_SHARED_FIXTURES_DIR) + "/anthropic_text.sse");
  EXPECT_EQ(d.feed(input, sink), status::closed);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(d.feed("data: x\n\n", sink), status::closed);
}

TEST(ProviderDecoder, ResetDecodesASecondStreamIdentically) {
  const std::string input = rill::test::read_file(std::string(RILL_SHARED_FIXTURES_DIR) + "/openai_chat_tool_calls.sse");
  provider_decoder d;
  std::string first, second;
  ASSERT_EQ(d.feed(input, [&](const event& e) { first += rill::test::describe(e) + "\n"; }), status::ok);
  ASSERT_EQ(d.finish([&](const event& e) { first += rill::test::describe(e) + "\n"; }), status::ok);
  d.reset();
  ASSERT_EQ(d.feed(input, [&](const event& e) { second += rill::test::describe(e) + "\n"; }), status::ok);
  ASSERT_EQ(d.finish([&](const event& e) { second += rill::test::describe(e) + "\n"; }), status::ok);
  EXPECT_EQ(first, second);
  EXPECT_EQ(d.summary().counters.sse_events, 12u);
}

TEST(ProviderDecoder, OpenAiChatWithoutDoneStillReportsStopButNotCompleted) {
  const auto run = rill::test::decode_with_cuts(
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\n",
      {});
  EXPECT_NE(run.summary.find("\"stop_reason_normalized\":\"end_turn\""), std::string::npos);
  EXPECT_NE(run.summary.find("\"completed\":false"), std::string::npos);
}

TEST(ProviderDecoder, AnthropicUsageIsReplacedNotAdded) {
  const auto run = rill::test::decode_with_cuts(
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\","
      "\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":10}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
      "\"usage\":{\"output_tokens\":15,\"input_tokens\":6}}\n\n",
      {});
  EXPECT_NE(run.summary.find("\"usage\":{\"input_tokens\":6,\"output_tokens\":15,\"total_tokens\":21}"),
            std::string::npos)
      << run.summary;
  EXPECT_NE(run.summary.find("\"usage_native\":{\"input_tokens\":6,\"output_tokens\":15}"), std::string::npos);
}

TEST(Reassembler, EventsFromAnyProducerFoldTheSameWay) {
  rill::codec::reassembler fold;
  fold.add(event::message_start("id1", "model1"));
  fold.add(event::thinking_delta(0, "think "));
  fold.add(event::thinking_delta(0, "more"));
  fold.add(event::signature_delta(0, "sig"));
  fold.add(event::text_delta(1, "Hello"));
  fold.add(event::tool_call_start(3, "c1", "f"));
  fold.add(event::tool_call_start(2, "c0", "g"));
  fold.add(event::tool_args_delta(3, "{}"));
  fold.add(event::usage({1, 2, 3, 0, 0, 0}));
  fold.add(event::usage({4, 5, 9, 0, 0, 0}));
  fold.add(event::message_stop(rill::stop_reason::tool_use));
  fold.add(event::stream_complete(10, 0));
  const auto& r = fold.result();
  EXPECT_EQ(r.thinking.at(0).text, "think more");
  EXPECT_EQ(r.thinking.at(0).signature, "sig");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].id, "c0");  // ordered by index
  EXPECT_TRUE(r.tool_calls[0].arguments_valid);  // no arguments: the empty object
  EXPECT_EQ(r.usage->total_tokens, 9u);
  EXPECT_EQ(r.stop, rill::stop_reason::tool_use);
  EXPECT_TRUE(r.completed);
  const std::string pretty = rill::codec::summary_json(r, {}, true);
  EXPECT_EQ(rill::test::json_text_diff(pretty, rill::codec::summary_json(r, {}, false)), "");
}

}  // namespace

namespace {

TEST(ProviderDecoder, ToolCallStartWaitsForTheNameAndNeverEmitsAnInvalidEvent) {
  const auto run = rill::test::decode_with_cuts(
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\","
      "\"function\":{\"arguments\":\"\"}}]}}]}\n\n"
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
      "\"name\":\"late\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
      {});
  EXPECT_NE(run.log.find("tool_call_start i=0 c=0 a=0 b=0 [call_9] [late]"), std::string::npos) << run.log;
  EXPECT_EQ(run.native.counters.malformed_payloads, 1u);
  EXPECT_NE(run.summary.find("\"id\":\"call_9\",\"name\":\"late\",\"arguments\":{}"), std::string::npos)
      << run.summary;
}

}  // namespace

namespace {

// Hostile shapes get a typed failure or a bounded cost, never an event the sink must refuse.
TEST(ProviderDecoder, MoreToolCallsThanAResponseMayOpenFailTooLarge) {
  std::string calls;
  for (int i = 0; i < 1100; ++i) {
    if (i != 0) calls += ',';
    calls += "{\"index\":" + std::to_string(i) + ",\"id\":\"c" + std::to_string(i) +
             "\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}";
  }
  const std::string input =
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[" + calls +
      "]}}]}\n\ndata: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}\n\n";
  const auto run = rill::test::decode_with_cuts(input, {});
  EXPECT_EQ(run.result, status::too_large);
  EXPECT_NE(run.error_message.find("1024 tool calls"), std::string::npos) << run.error_message;
  EXPECT_NE(run.error_message.find("byte offset 0"), std::string::npos) << run.error_message;
  EXPECT_NE(run.log.find("[c1023]"), std::string::npos);
  EXPECT_EQ(run.log.find("[c1024]"), std::string::npos);
  EXPECT_EQ(run.log.find("late"), std::string::npos) << "nothing after the failure";
}

TEST(ProviderDecoder, AnUpstreamIdTooLongForAnEventFailsTooLarge) {
  const std::string id(70000, 'i');
  const auto run = rill::test::decode_with_cuts(
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"" + id +
          "\",\"model\":\"x\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\","
          "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"late\"}}\n\n",
      {});
  EXPECT_EQ(run.result, status::too_large);
  EXPECT_NE(run.error_message.find("65535"), std::string::npos) << run.error_message;
  EXPECT_TRUE(run.log.empty()) << run.log;
}

TEST(ProviderDecoder, AnthropicUsageKeepsAtMost32Keys) {
  std::string usage = "{\"input_tokens\":3";
  for (int i = 0; i < 40; ++i) usage += ",\"k" + std::to_string(i) + "\":1";
  usage += "}";
  const auto run = rill::test::decode_with_cuts(
      "event: message_start\ndata: "
      "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\",\"usage\":" +
          usage + "}}\n\n",
      {});
  EXPECT_EQ(run.result, status::ok);
  EXPECT_EQ(run.native.counters.malformed_payloads, 9u) << "41 keys, 32 kept";
  EXPECT_NE(run.native.usage_native.find("\"k30\":1"), std::string::npos) << run.native.usage_native;
  EXPECT_EQ(run.native.usage_native.find("\"k31\""), std::string::npos) << run.native.usage_native;
}

}  // namespace
