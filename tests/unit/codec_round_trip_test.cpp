// Round trips through the dialect encoders: every provider transcript whose dialect has an encoder (OpenAI Chat,
// OpenAI Responses, Anthropic; the shared fixtures and tests/fixtures) is decoded to rill events, re-encoded, and
// the encoder's bytes decoded again (with dialect detection, so the output must also be recognizable).
//   - same dialect: the reassembled response is unchanged, field by field (the few provider-native facts an
//     encoder cannot know are listed where they are excluded);
//   - across dialects: text, tool calls, normalized stop reason, error and completion survive, and every loss the
//     target dialect forces is written down in expected_after();
//   - the re-encoded bytes decode to the same events at every 2-way split.
// Gemini transcripts are decoded by the fixture test only: rill has no Gemini encoder.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codec_decode_test_util.hpp"
#include "rill/clock.hpp"
#include "rill/codec/dialect_encoder.hpp"

namespace {

namespace codec = rill::codec;
using codec::output_format;
using codec::provider;
using rill::event;
using rill::status;
using rill::stop_reason;
using rill::usage_counts;

struct transcript {
  std::string dir;
  std::string name;
  provider dialect;
};

std::vector<transcript> encodable_transcripts() {
  std::vector<transcript> out;
  const auto dialect_of_name = [](std::string_view name) {
    if (name.substr(0, 12) == "openai_chat_") return provider::openai_chat;
    if (name.substr(0, 17) == "openai_responses_") return provider::openai_responses;
    return provider::anthropic;
  };
  for (const char* name : {"openai_chat_text", "openai_chat_tool_calls", "openai_responses_text", "anthropic_text",
                           "anthropic_thinking_tool_use", "anthropic_error_midstream"}) {
    out.push_back({RILL_SHARED_FIXTURES_DIR, name, dialect_of_name(name)});
  }
  for (const char* name : {"anthropic_crlf_comments", "openai_chat_lone_cr", "anthropic_multiline_data",
                           "openai_responses_tool_call", "openai_chat_error_midstream", "anthropic_bom_utf8",
                           "anthropic_truncated_tool", "openai_chat_two_choices"}) {
    out.push_back({RILL_TEST_FIXTURES_DIR, name, dialect_of_name(name)});
  }
  return out;
}

// A response with several choices (n > 1) keeps them only in a dialect that has choices.
bool has_several_choices(const transcript& t) {
  return t.name.find("_two_choices") != std::string::npos;
}

output_format format_of(provider dialect) {
  switch (dialect) {
    case provider::openai_chat: return output_format::openai_chat;
    case provider::openai_responses: return output_format::openai_responses;
    default: return output_format::anthropic;
  }
}

std::string read_transcript(const transcript& t) {
  std::string bytes = rill::test::read_file(t.dir + "/" + t.name + ".sse");
  EXPECT_FALSE(bytes.empty()) << "missing fixture " << t.name;
  return bytes;
}

struct encoded {
  codec::reassembled original;  // the transcript's own reassembly
  codec::provider_summary native;
  std::string bytes;            // the events re-encoded in the target dialect
};

// Decodes `input` whole and hands each event, while it is valid, to the reassembler and to an encoder for `to`.
encoded decode_and_encode(std::string_view input, provider to, const codec::dialect_options& options = {}) {
  encoded run;
  codec::provider_decoder decoder;
  codec::reassembler fold;
  codec::output_encoder encoder(format_of(to), options);
  status encoded_ok = status::ok;
  auto sink = [&](const event& e) {
    fold.add(e);
    if (encoded_ok == status::ok) encoded_ok = encoder.encode(e, run.bytes);
  };
  EXPECT_EQ(decoder.feed(input, sink), status::ok) << decoder.error_message();
  EXPECT_EQ(decoder.finish(sink), status::ok) << decoder.error_message();
  EXPECT_EQ(encoded_ok, status::ok);
  EXPECT_EQ(encoder.finish(run.bytes), status::ok);
  run.original = fold.result();
  run.native = decoder.summary();
  return run;
}

// The re-encoded bytes decoded whole, with detection; the detected dialect must be the target's.
rill::test::decode_run decode_encoded(const encoded& run, provider target) {
  rill::test::decode_run again = rill::test::decode_with_cuts(run.bytes, {});
  EXPECT_EQ(again.result, status::ok) << again.error_message << "\nencoded:\n" << run.bytes;
  EXPECT_EQ(again.native.dialect, target) << "encoded:\n" << run.bytes;
  return again;
}

std::string describe_usage(const std::optional<usage_counts>& u) {
  if (!u) return "none";
  return std::to_string(u->input_tokens) + "/" + std::to_string(u->output_tokens) + "/" +
         std::to_string(u->total_tokens) + " cache r/w " + std::to_string(u->cache_read_tokens) + "/" +
         std::to_string(u->cache_write_tokens) + " reasoning " + std::to_string(u->reasoning_tokens);
}

std::string describe_stop(const std::optional<stop_reason>& s) {
  return s ? std::string(rill::to_string(*s)) : std::string("none");
}

// "" when both texts parse to the same JSON value (or are both blank: a call without arguments).
std::string parsed_arguments_diff(const std::string& got, const std::string& want) {
  if (got.find_first_not_of(" \t\r\n") == std::string::npos &&
      want.find_first_not_of(" \t\r\n") == std::string::npos) {
    return "";
  }
  simdjson::dom::parser pg, pw;
  simdjson::dom::element g, w;
  if (pg.parse(got).get(g) != simdjson::SUCCESS) return "got is not JSON: " + got;
  if (pw.parse(want).get(w) != simdjson::SUCCESS) return "want is not JSON: " + want;
  return rill::test::json_diff(g, w, "$");
}

// Field-by-field comparison of two reassembled responses. Not compared: `events` (the count of rill events,
// which differs by construction: encoders drop keep-alives after the end, add block starts, ...), the thinking
// blocks' and tool calls' `index` / `choice` (encoders renumber blocks, output items and tool calls 0, 1, 2 ...
// in order of appearance, as their dialects require; the order itself is compared).
void expect_same_response(const codec::reassembled& got, const codec::reassembled& want) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.model, want.model);
  EXPECT_EQ(got.text, want.text);
  ASSERT_EQ(got.other_choices.size(), want.other_choices.size());
  for (std::size_t i = 0; i < want.other_choices.size(); ++i) {
    EXPECT_EQ(got.other_choices[i].choice, want.other_choices[i].choice);
    EXPECT_EQ(got.other_choices[i].text, want.other_choices[i].text);
  }
  ASSERT_EQ(got.thinking.size(), want.thinking.size());
  for (std::size_t i = 0; i < want.thinking.size(); ++i) {
    SCOPED_TRACE("thinking block " + std::to_string(i));
    EXPECT_EQ(got.thinking[i].text, want.thinking[i].text);
    EXPECT_EQ(got.thinking[i].signature, want.thinking[i].signature);
    EXPECT_EQ(got.thinking[i].redacted, want.thinking[i].redacted);
  }
  ASSERT_EQ(got.tool_calls.size(), want.tool_calls.size());
  for (std::size_t i = 0; i < want.tool_calls.size(); ++i) {
    SCOPED_TRACE("tool call " + std::to_string(i));
    const codec::reassembled_tool_call& g = got.tool_calls[i];
    const codec::reassembled_tool_call& w = want.tool_calls[i];
    EXPECT_EQ(g.id, w.id);
    EXPECT_EQ(g.name, w.name);
    EXPECT_EQ(g.arguments_raw, w.arguments_raw);
    EXPECT_EQ(g.arguments_valid, w.arguments_valid);
    EXPECT_EQ(g.ended, w.ended);
    if (w.arguments_valid) {
      EXPECT_EQ(parsed_arguments_diff(g.arguments_raw, w.arguments_raw), "");
    }
  }
  EXPECT_EQ(describe_usage(got.usage), describe_usage(want.usage));
  EXPECT_EQ(describe_stop(got.stop), describe_stop(want.stop));
  EXPECT_EQ(got.has_error, want.has_error);
  EXPECT_EQ(got.error_code, want.error_code);
  EXPECT_EQ(got.error_message, want.error_message);
  EXPECT_EQ(got.completed, want.completed);
}

// ---- same dialect ----

class SameDialectRoundTrip : public ::testing::TestWithParam<transcript> {};

TEST_P(SameDialectRoundTrip, ReencodedResponseIsUnchanged) {
  const transcript& t = GetParam();
  const encoded run = decode_and_encode(read_transcript(t), t.dialect);
  ASSERT_EQ(run.native.dialect, t.dialect);
  // The source side is the fixture's hand-written result, so the comparison below is never between two empties.
  const std::string source_summary = codec::summary_json(run.original, codec::extras_from(run.native));
  ASSERT_EQ(rill::test::json_text_diff(source_summary,
                                       rill::test::read_file(t.dir + "/" + t.name + ".expected.json")),
            "");
  const rill::test::decode_run again = decode_encoded(run, t.dialect);
  {
    SCOPED_TRACE("encoded:\n" + run.bytes);
    expect_same_response(again.response, run.original);
  }

  // The whole summary too, so that nothing it reports is missed. Excluded, because the encoders cannot know them:
  //  - usage_native: the provider's usage object as sent. Encoders write only what rill's usage event holds:
  //    Anthropic drops zero cache fields and extras such as `service_tier`; Chat writes prompt / completion /
  //    total and only non-zero cached / reasoning details (the fixtures' zero and audio / prediction details go).
  //    The normalized usage (compared above, every counter) is unchanged.
  //  - sse_events_dispatched and last_sequence_number: counts of the re-encoded stream's own SSE events, not
  //    facts of the response. Pings and comments, events without a rill counterpart, and block starts the
  //    encoder writes in its own way are not reproduced one for one (anthropic_thinking_tool_use dispatches 23
  //    events, its re-encoding 22); the Responses sequence numbers happen to match here, but a source with
  //    events the encoder drops (reasoning items) would renumber them.
  // The native id, model and stop reason are not excluded: each dialect's events carry them and they survive.
  simdjson::dom::parser pa, pb;
  simdjson::dom::element a, b;
  ASSERT_EQ(pa.parse(again.summary).get(a), simdjson::SUCCESS);
  ASSERT_EQ(pb.parse(source_summary).get(b), simdjson::SUCCESS);
  EXPECT_EQ(rill::test::json_diff(a, b, "$", {"usage_native", "sse_events_dispatched", "last_sequence_number"}), "")
      << "got:  " << again.summary << "\nwant: " << source_summary;
}

TEST_P(SameDialectRoundTrip, ReencodedBytesDecodeTheSameAtEveryTwoWaySplit) {
  const transcript& t = GetParam();
  const encoded run = decode_and_encode(read_transcript(t), t.dialect);
  const rill::test::decode_run whole = rill::test::decode_with_cuts(run.bytes, {});
  ASSERT_EQ(whole.result, status::ok) << whole.error_message;
  for (std::size_t cut = 0; cut <= run.bytes.size(); ++cut) {
    const rill::test::decode_run split = rill::test::decode_with_cuts(run.bytes, {cut});
    ASSERT_EQ(split.result, status::ok) << "cut " << cut << ": " << split.error_message;
    ASSERT_EQ(split.log, whole.log) << "cut at byte " << cut;
    ASSERT_EQ(split.summary, whole.summary) << "cut at byte " << cut;
  }
}

TEST_P(SameDialectRoundTrip, SecondRoundTripWritesTheSameBytes) {
  // The first re-encoding may differ from the transcript (pings, comments, provider extras); from then on the
  // encoder / decoder pair is a fixed point: decoding its output and encoding again gives the same bytes.
  const transcript& t = GetParam();
  const encoded first = decode_and_encode(read_transcript(t), t.dialect);
  const encoded second = decode_and_encode(first.bytes, t.dialect);
  const encoded third = decode_and_encode(second.bytes, t.dialect);
  EXPECT_EQ(third.bytes, second.bytes);
}

// ---- across dialects ----

// What a response decoded from `target`'s encoding must look like, given the source's reassembly.
codec::reassembled expected_after(const codec::reassembled& source, provider target) {
  codec::reassembled want = source;
  // Kept as they are: id and model (every dialect's opening event carries them), text (blocks, items and choices
  // concatenate the same), tool calls with their ids, names and raw arguments, the error's code and message
  // (each dialect has a code or type field), completed.

  // Thinking: neither OpenAI dialect has a place for it by default (Chat's `reasoning_content` is opt-in, see
  // AnthropicThinkingBecomesChatReasoningContentWithoutItsSignature; the Responses encoder writes no reasoning
  // items), so it is dropped.
  if (target != provider::anthropic) want.thinking.clear();

  // Normalized stop reason: each dialect has fewer native values than rill.
  if (want.stop && *want.stop != stop_reason::error) {
    const stop_reason s = *want.stop;
    switch (target) {
      case provider::anthropic:
        // content_filter is written as "refusal" (Anthropic has no content_filter).
        if (s == stop_reason::content_filter) want.stop = stop_reason::refusal;
        break;
      case provider::openai_chat:
        // finish_reason has stop / length / tool_calls / content_filter: stop_sequence and pause_turn become
        // "stop" (end_turn), refusal becomes "content_filter".
        if (s == stop_reason::stop_sequence || s == stop_reason::pause_turn) want.stop = stop_reason::end_turn;
        if (s == stop_reason::refusal) want.stop = stop_reason::content_filter;
        break;
      default:
        // Responses: only max_tokens and content_filter have a status of their own (response.incomplete); every
        // other reason is response.completed, which reads back as tool_use when the response called tools and
        // end_turn otherwise.
        if (s != stop_reason::max_tokens && s != stop_reason::content_filter) {
          want.stop = want.tool_calls.empty() ? stop_reason::end_turn : stop_reason::tool_use;
        }
        break;
    }
  }

  // Usage.
  if (target == provider::anthropic) {
    // Anthropic's message_start and message_delta must carry a usage object: zeros when the source sent none
    // (every transcript here has content before any error, so message_start is written). It has no reasoning
    // counter, and its decoder derives the total as input + output.
    usage_counts u = want.usage.value_or(usage_counts{});
    u.reasoning_tokens = 0;
    u.total_tokens = u.input_tokens + u.output_tokens;
    want.usage = u;
  } else if (!want.usage || !want.stop || want.has_error) {
    // OpenAI dialects write usage only with the successful end (Chat's final usage chunk, response.completed):
    // a response that failed or was cut off loses its usage.
    want.usage.reset();
  } else {
    // No cache-write counter in either OpenAI dialect (prompt / input tokens still include those tokens).
    want.usage->cache_write_tokens = 0;
  }
  return want;
}

struct crossing {
  transcript source;
  provider target;
};

std::vector<crossing> all_crossings() {
  std::vector<crossing> out;
  for (const transcript& t : encodable_transcripts()) {
    // Responses and Anthropic have no choices: there choice 1's deltas become blocks or items of their own,
    // interleaved with choice 0's (wire_format.md), which reads back as one text. Checked in
    // dialect_encoder_test.
    if (has_several_choices(t)) continue;
    for (provider target : {provider::openai_chat, provider::openai_responses, provider::anthropic}) {
      if (target != t.dialect) out.push_back({t, target});
    }
  }
  return out;
}

class CrossDialect : public ::testing::TestWithParam<crossing> {};

TEST_P(CrossDialect, KeepsTextToolCallsStopReasonErrorAndCompletion) {
  const crossing& c = GetParam();
  const encoded run = decode_and_encode(read_transcript(c.source), c.target);
  ASSERT_EQ(run.native.dialect, c.source.dialect);
  const rill::test::decode_run again = decode_encoded(run, c.target);
  SCOPED_TRACE("encoded:\n" + run.bytes);
  expect_same_response(again.response, expected_after(run.original, c.target));
}

TEST_P(CrossDialect, EncodedBytesDecodeTheSameAtEveryTwoWaySplit) {
  const crossing& c = GetParam();
  const encoded run = decode_and_encode(read_transcript(c.source), c.target);
  const rill::test::decode_run whole = rill::test::decode_with_cuts(run.bytes, {});
  ASSERT_EQ(whole.result, status::ok) << whole.error_message;
  for (std::size_t cut = 0; cut <= run.bytes.size(); ++cut) {
    const rill::test::decode_run split = rill::test::decode_with_cuts(run.bytes, {cut});
    ASSERT_EQ(split.result, status::ok) << "cut " << cut << ": " << split.error_message;
    ASSERT_EQ(split.log, whole.log) << "cut at byte " << cut;
    ASSERT_EQ(split.summary, whole.summary) << "cut at byte " << cut;
  }
}

TEST(CrossDialectOptions, AnthropicThinkingBecomesChatReasoningContentWithoutItsSignature) {
  codec::dialect_options options;
  options.chat_include_reasoning = true;
  const encoded run = decode_and_encode(
      read_transcript({RILL_SHARED_FIXTURES_DIR, "anthropic_thinking_tool_use", provider::anthropic}),
      provider::openai_chat, options);
  const rill::test::decode_run again = decode_encoded(run, provider::openai_chat);
  codec::reassembled want = expected_after(run.original, provider::openai_chat);
  // reasoning_content carries the thinking text; Chat has no field for the signature, so it is lost.
  want.thinking = run.original.thinking;
  ASSERT_FALSE(want.thinking.empty());
  for (auto& t : want.thinking) t.signature.clear();
  SCOPED_TRACE("encoded:\n" + run.bytes);
  expect_same_response(again.response, want);
}

// ---- Chat `created` ----

// Every `"created":N` value in Chat chunks.
std::vector<std::string> created_values(const std::string& chunks) {
  std::vector<std::string> out;
  constexpr std::string_view kKey = "\"created\":";
  for (std::size_t at = chunks.find(kKey); at != std::string::npos; at = chunks.find(kKey, at + 1)) {
    const std::size_t begin = at + kKey.size();
    out.push_back(chunks.substr(begin, chunks.find(',', begin) - begin));
  }
  return out;
}

TEST(ChatCreated, IsTheSameInEveryChunkWhenAKeepAliveComesFirst) {
  // anthropic_text sends a ping before its first text delta: the keep-alive chunk is the first Chat output. With
  // stamped events (as a stream delivers them) every chunk must carry the same, non-zero `created`.
  const std::string input =
      read_transcript({RILL_SHARED_FIXTURES_DIR, "anthropic_text", provider::anthropic});
  codec::provider_decoder decoder;
  codec::openai_chat_encoder encoder;
  std::string out;
  bool keep_alive_first = false;
  auto sink = [&](const event& e) {
    event stamped = e;
    stamped.set_timestamp(rill::clock_kind::steady, rill::clock::steady_now_ns());
    if (out.empty() && e.kind() == rill::event_kind::keep_alive) keep_alive_first = true;
    ASSERT_EQ(encoder.encode(stamped, out), status::ok);
  };
  ASSERT_EQ(decoder.feed(input, sink), status::ok);
  ASSERT_EQ(decoder.finish(sink), status::ok);
  ASSERT_TRUE(keep_alive_first) << "the transcript no longer starts its output with a ping";
  const std::vector<std::string> created = created_values(out);
  ASSERT_GE(created.size(), 3u) << out;
  EXPECT_NE(created.front(), "0") << out;
  for (const std::string& c : created) EXPECT_EQ(c, created.front()) << out;
}

TEST(ChatCreated, AnUnstampedKeepAliveFixesItForTheResponse) {
  // keep_alive() without an event, before the upstream said anything: the chunk has no clock to take `created`
  // from, so it writes 0, and the chunks after it keep 0 even though their events are stamped.
  codec::openai_chat_encoder encoder;
  std::string out;
  encoder.keep_alive(out);
  for (event e : {event::message_start("chatcmpl-1", "gpt-x"), event::text_delta(0, "Hi"),
                  event::message_stop(stop_reason::end_turn)}) {
    e.set_timestamp(rill::clock_kind::steady, rill::clock::steady_now_ns());
    ASSERT_EQ(encoder.encode(e, out), status::ok);
  }
  ASSERT_EQ(encoder.finish(out), status::ok);
  const std::vector<std::string> created = created_values(out);
  ASSERT_EQ(created.size(), 4u) << out;
  for (const std::string& c : created) EXPECT_EQ(c, "0") << out;
}

std::string dialect_label(provider p) {
  switch (p) {
    case provider::openai_chat: return "chat";
    case provider::openai_responses: return "responses";
    default: return "anthropic";
  }
}

INSTANTIATE_TEST_SUITE_P(AllEncodableTranscripts, SameDialectRoundTrip, ::testing::ValuesIn(encodable_transcripts()),
                         [](const ::testing::TestParamInfo<transcript>& param_info) { return param_info.param.name; });

INSTANTIATE_TEST_SUITE_P(AllEncodableTranscripts, CrossDialect, ::testing::ValuesIn(all_crossings()),
                         [](const ::testing::TestParamInfo<crossing>& param_info) {
                           return param_info.param.source.name + "_to_" + dialect_label(param_info.param.target);
                         });

}  // namespace
