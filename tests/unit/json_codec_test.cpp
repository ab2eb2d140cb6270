// Event JSON: exact round trip for every kind, byte-exact escaping, and the decoder's refusals.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rill/codec/json.hpp"

namespace {

using rill::event;
using rill::event_kind;
using rill::status;
using rill::codec::json_decoder;

std::string long_text(std::size_t n, char seed) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('a' + (seed + i) % 26));
  return s;
}

// Text samples that exercise every branch of the writer.
std::vector<std::string> text_samples() {
  std::string every_control;
  for (int c = 0; c < 0x20; ++c) every_control.push_back(static_cast<char>(c));
  return {
      "",
      "hi",
      "quote \" backslash \\ slash / tab \t newline \n",
      every_control,
      std::string("nul\0inside", 10),
      "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xe2\x80\xa8 \x7f",  // 2, 3, 4-byte UTF-8, U+2028, DEL
      long_text(41, 1),
      long_text(1000, 2) + "\n\"\xf0\x9f\x98\x80\"",
      long_text(70000, 3),
  };
}

// One event of `kind` whose text fields are `text` (with variations so fields differ). Long text is borrowed,
// so every string the event refers to outlives it (`other` included).
event make_event(event_kind kind, const std::string& text, const std::string& other) {
  switch (kind) {
    case event_kind::message_start: return event::message_start(text, other);
    case event_kind::message_stop: return event::message_stop(rill::stop_reason::tool_use);
    case event_kind::content_block_start:
      return event::content_block_start(3, rill::block_type::redacted_thinking, text);
    case event_kind::content_block_stop: return event::content_block_stop(3);
    case event_kind::text_delta: return event::text_delta(1, text);
    case event_kind::thinking_delta: return event::thinking_delta(2, text);
    case event_kind::signature_delta: return event::signature_delta(2, text);
    case event_kind::tool_call_start: return event::tool_call_start(4, text, other, 2);
    case event_kind::tool_args_delta: return event::tool_args_delta(4, text, 1);
    case event_kind::tool_call_end: return event::tool_call_end(4, true, 3);
    case event_kind::tool_result: return event::tool_result(other, text, true);
    case event_kind::tool_error: return event::tool_error(other, text);
    case event_kind::usage: return event::usage({11, 22, 33, 4, 5, 6}, true);
    case event_kind::error: return event::error(other, text, true);
    case event_kind::stream_start: return event::stream_start(other, text, other);
    case event_kind::stream_complete: return event::stream_complete(~0ull, 123456789012345ull);
    case event_kind::keep_alive: return event::keep_alive();
    case event_kind::user: return event::user(0xbeef, text);
    default: return event::lifecycle(kind, other, text, 7);
  }
}

void expect_round_trip(const event& original, json_decoder& decoder) {
  std::string json;
  ASSERT_EQ(rill::codec::encode_json(original, json), status::ok) << rill::to_string(original.kind());
  event decoded;
  ASSERT_EQ(decoder.decode(json, decoded), status::ok) << decoder.error_message() << "\n" << json.substr(0, 300);
  EXPECT_TRUE(decoded.same_content(original)) << json.substr(0, 300);
  EXPECT_EQ(decoded.seq(), original.seq());
  EXPECT_EQ(decoded.timestamp(), original.timestamp());
  EXPECT_EQ(decoded.timestamp_clock(), original.timestamp_clock());
  // Re-encoding the decoded event gives the same bytes.
  std::string again;
  ASSERT_EQ(rill::codec::encode_json(decoded, again), status::ok);
  EXPECT_EQ(again, json);
}

TEST(EventJson, RoundTripsEveryKindWithEveryTextSample) {
  json_decoder decoder;
  std::size_t checked = 0;
  for (std::size_t k = 1; k < rill::kEventKindCount; ++k) {
    const auto kind = static_cast<event_kind>(k);
    for (const std::string& text : text_samples()) {
      // Leading fields are limited to 65535 bytes: the 70000-byte sample goes only into last fields.
      const std::string other = "other_" + std::to_string(k);
      if (text.size() > 0xffff && (kind == event_kind::message_start || kind == event_kind::tool_call_start)) {
        continue;
      }
      event e = make_event(kind, text, other);
      if (e.validate() != status::ok) continue;  // e.g. a required field left empty by the "" sample
      e.set_seq(1000 + checked);
      e.set_timestamp(static_cast<rill::clock_kind>(checked % 4), 0xfedcba9876543210ull - checked);
      SCOPED_TRACE(std::string(rill::to_string(kind)) + " text of " + std::to_string(text.size()) + " bytes");
      expect_round_trip(e, decoder);
      ++checked;
    }
  }
  EXPECT_GT(checked, 200u);
}

TEST(EventJson, RoundTripsGenericHeaderFields) {
  json_decoder decoder;
  const std::string_view fields[] = {"abc"};
  // Index, aux and kind bit on kinds that have no name for them.
  expect_round_trip(event::with_text(event_kind::text_delta, 9, 5, true, fields, 1), decoder);
  expect_round_trip(event::with_text(event_kind::keep_alive, 2, 1, true, nullptr, 0), decoder);
  expect_round_trip(event::with_text(event_kind::message_start, 300, 0, false, nullptr, 0), decoder);
}

TEST(EventJson, WritesStableKeysByteExact) {
  std::string json;
  event e = event::text_delta(2, "Hi \"you\"\n");
  e.set_seq(7);
  e.set_timestamp(rill::clock_kind::coarse, 123);
  ASSERT_EQ(rill::codec::encode_json(e, json), status::ok);
  EXPECT_EQ(json, R"({"type":"text_delta","seq":7,"timestamp":123,"clock":"coarse","index":2,"text":"Hi \"you\"\n"})");

  json.clear();
  ASSERT_EQ(rill::codec::encode_json(event::tool_call_start(1, "call_1", "get", 0), json), status::ok);
  EXPECT_EQ(json,
            R"({"type":"tool_call_start","seq":0,"timestamp":0,"clock":"none","index":1,"choice":0,"call_id":"call_1","name":"get"})");

  json.clear();
  ASSERT_EQ(rill::codec::encode_json(event::usage({1, 2, 3, 4, 5, 6}), json), status::ok);
  EXPECT_EQ(json,
            R"({"type":"usage","seq":0,"timestamp":0,"clock":"none","estimated":false,"input_tokens":1,"output_tokens":2,"total_tokens":3,"cache_read_tokens":4,"cache_write_tokens":5,"reasoning_tokens":6})");

  json.clear();
  ASSERT_EQ(rill::codec::encode_json(event::message_stop(rill::stop_reason::max_tokens), json), status::ok);
  EXPECT_EQ(json, R"({"type":"message_stop","seq":0,"timestamp":0,"clock":"none","stop_reason":"max_tokens"})");

  json.clear();
  ASSERT_EQ(rill::codec::encode_json(event::user(5, "x"), json), status::ok);
  EXPECT_EQ(json, R"({"type":"user","seq":0,"timestamp":0,"clock":"none","code":5,"data":"x"})");
}

TEST(EventJson, EscapesEveryControlByteAndNothingElse) {
  std::string out;
  std::string input;
  for (int c = 0; c < 0x20; ++c) input.push_back(static_cast<char>(c));
  input += "\"\\/\x7f\xc3\xa9";
  ASSERT_EQ(rill::codec::append_json_string(out, input), status::ok);
  EXPECT_EQ(out,
            "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
            "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d"
            "\\u001e\\u001f\\\"\\\\/\x7f\xc3\xa9\"");
}

TEST(EventJson, ReplacesOrRejectsInvalidUtf8) {
  std::string out;
  // A lone continuation byte, a truncated 3-byte sequence, a surrogate, an overlong form, a byte never valid.
  ASSERT_EQ(rill::codec::append_json_string(out, "a\x80" "b\xe6\x97" "c\xed\xa0\x80" "d\xc0\xaf" "e\xff"),
            status::ok);
  const std::string r = "\xef\xbf\xbd";
  EXPECT_EQ(out, "\"a" + r + "b" + r + "c" + r + r + r + "d" + r + r + "e" + r + "\"");

  out = "keep";
  EXPECT_EQ(rill::codec::append_json_string(out, "ok\xff", rill::codec::invalid_utf8::reject), status::invalid);
  EXPECT_EQ(out, "keep");
  EXPECT_EQ(rill::codec::encode_json(event::text_delta(0, "bad \xc3"), out, {rill::codec::invalid_utf8::reject}),
            status::invalid);
  EXPECT_EQ(out, "keep");
}

TEST(EventJson, FixedBufferReportsTooLargeAndWritesNothing) {
  const event e = event::text_delta(0, "hello");
  char buffer[256];
  std::size_t written = 99;
  ASSERT_EQ(rill::codec::encode_json(e, buffer, sizeof buffer, written), status::ok);
  std::string expected;
  ASSERT_EQ(rill::codec::encode_json(e, expected), status::ok);
  EXPECT_EQ(std::string_view(buffer, written), expected);
  EXPECT_EQ(rill::codec::encode_json(e, buffer, expected.size() - 1, written), status::too_large);
  EXPECT_EQ(written, 0u);
  EXPECT_EQ(rill::codec::encode_json(e, buffer, expected.size(), written), status::ok);
  EXPECT_EQ(written, expected.size());
}

TEST(EventJson, RefusesToEncodeInvalidEvents) {
  std::string out;
  EXPECT_EQ(rill::codec::encode_json(event{}, out), status::invalid);
  EXPECT_EQ(rill::codec::encode_json(event::tool_call_start(0, "id", ""), out), status::invalid);
  EXPECT_TRUE(out.empty());
}

TEST(EventJson, DecoderRefusesMalformedInputWithAMessage) {
  json_decoder decoder;
  const event sentinel = event::text_delta(9, "untouched");
  const char* cases[] = {
      "",
      "{",
      "[1,2]",
      "\"text_delta\"",
      R"({"type":"text_delta","text":"a"} trailing)",
      R"({"text":"no type"})",
      R"({"type":7})",
      R"({"type":"no_such_kind"})",
      R"({"type":"none"})",
      R"({"type":"text_delta","text":5})",
      R"({"type":"text_delta","index":-1})",
      R"({"type":"text_delta","index":65536})",
      R"({"type":"text_delta","index":1.5})",
      R"({"type":"text_delta","seq":"1"})",
      R"({"type":"text_delta","text":"a","text":"b"})",
      R"({"type":"text_delta","type":"keep_alive","index":0,"text":"hi"})",
      R"({"type":"keep_alive","type":"text_delta","index":0,"text":"hi"})",
      R"({"type":"tool_call_start","call_id":"c"})",
      R"({"type":"tool_call_start","call_id":"c","name":""})",
      R"({"type":"tool_result","content":"x"})",
      R"({"type":"content_block_start","index":0})",
      R"({"type":"content_block_start","block_type":"video"})",
      R"({"type":"message_stop"})",
      R"({"type":"message_stop","stop_reason":"bored"})",
      R"({"type":"usage","input_tokens":4294967296})",
      R"({"type":"error","retryable":"yes"})",
      R"({"type":"text_delta","clock":"sundial"})",
      R"({"type":"keep_alive","choice":1})",
      R"({"type":"content_block_stop","index":0,"choice":1})",
      R"({"type":"text_delta","text":"bad escape \q"})",
      R"({"type":"text_delta","text":"lone surrogate \ud800"})",
      "{\"type\":\"text_delta\",\"text\":\"raw control \x01\"}",
      "{\"type\":\"text_delta\",\"text\":\"bad utf8 \xff\"}",
  };
  for (const char* input : cases) {
    event out = sentinel;
    const status s = decoder.decode(input, out);
    EXPECT_EQ(s, status::invalid) << input;
    EXPECT_FALSE(decoder.error_message().empty()) << input;
    EXPECT_TRUE(out.same_content(sentinel)) << input;
  }
}

TEST(EventJson, DecoderAcceptsAnyKeyOrderAndIgnoresUnknownKeys) {
  json_decoder decoder;
  event out;
  ASSERT_EQ(decoder.decode(R"( {"text":"hey","future":{"a":[1,null]},"index":3,"type":"text_delta","seq":5} )", out),
            status::ok)
      << decoder.error_message();
  EXPECT_TRUE(out.same_content(event::text_delta(3, "hey")));
  EXPECT_EQ(out.seq(), 5u);
  EXPECT_TRUE(decoder.error_message().empty());
}

TEST(EventJson, DecodedLongTextBorrowsTheDecoderUntilOwned) {
  json_decoder decoder;
  const std::string text = long_text(500, 4);
  std::string json;
  ASSERT_EQ(rill::codec::encode_json(event::text_delta(0, text), json), status::ok);
  rill::codec::owned_event kept;
  ASSERT_EQ(decoder.decode(json, kept), status::ok);
  event other;
  ASSERT_EQ(decoder.decode(R"({"type":"text_delta","text":")" + long_text(500, 9) + "\"}", other), status::ok);
  EXPECT_EQ(kept->text(), text);  // owned: unaffected by the second decode
  rill::codec::owned_event copy = kept;
  kept.assign(event::keep_alive());
  EXPECT_EQ(copy->text(), text);
  EXPECT_TRUE(copy->text_is_external());
}

// A delta's choice (OpenAI n > 1, Gemini candidates) survives the round trip; choice 0 writes no key.
TEST(EventJson, RoundTripsTheChoiceOfTextDeltas) {
  json_decoder decoder;
  const std::string long_delta = long_text(300, 9);
  for (const std::string_view text : {std::string_view("hi"), std::string_view(long_delta)}) {
    expect_round_trip(event::text_delta(1, text, 1), decoder);
    expect_round_trip(event::thinking_delta(2, text, 3), decoder);
    expect_round_trip(event::signature_delta(0, text, 65535), decoder);
  }
  std::string json;
  ASSERT_EQ(rill::codec::encode_json(event::text_delta(1, "hi", 1), json), status::ok);
  EXPECT_NE(json.find(R"("choice":1)"), std::string::npos) << json;
  json.clear();
  ASSERT_EQ(rill::codec::encode_json(event::text_delta(1, "hi"), json), status::ok);
  EXPECT_EQ(json.find("choice"), std::string::npos) << json;
}

TEST(EventJson, OwnedEventKeepsChoiceSeqAndTimestamp) {
  const std::string id = long_text(60, 5);
  event e = event::tool_call_start(2, id, "lookup", 3);
  e.set_seq(42);
  e.set_timestamp(rill::clock_kind::tsc, 99);
  const rill::codec::owned_event owned(e);
  EXPECT_TRUE(owned->same_content(e));
  EXPECT_EQ(owned->seq(), 42u);
  EXPECT_EQ(owned->timestamp(), 99u);
  EXPECT_EQ(owned->timestamp_clock(), rill::clock_kind::tsc);
  EXPECT_NE(owned->call_id().data(), id.data());
  const rill::codec::owned_event owned_delta(event::text_delta(1, id, 2));
  EXPECT_EQ(owned_delta->choice(), 2u);
  EXPECT_EQ(owned_delta->text(), id);
  EXPECT_NE(owned_delta->text().data(), id.data());
}

// Assigning an owned event its own event (or one borrowing its text) keeps the text intact.
TEST(EventJson, OwnedEventAssignedItsOwnEventKeepsItsText) {
  const std::string text = long_text(100, 6);
  rill::codec::owned_event a{event::text_delta(0, text)};
  a.assign(a.get());
  EXPECT_EQ(a->text(), text);
  const std::string id = long_text(60, 7), name = long_text(30, 8);
  rill::codec::owned_event b{event::tool_call_start(1, id, name)};
  const event borrowed = b.get();  // a copy whose fields point into b's storage
  b.assign(borrowed);
  EXPECT_EQ(b->call_id(), id);
  EXPECT_EQ(b->tool_name(), name);
}

}  // namespace
