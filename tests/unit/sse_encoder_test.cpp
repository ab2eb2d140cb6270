// SSE framing and the JSON-RPC 2.0 notification form, byte-exact.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <string>

#include "rill/codec/json.hpp"
#include "rill/codec/sse_encoder.hpp"

namespace {

using rill::event;
using rill::status;
namespace codec = rill::codec;

event stamped_text(std::uint64_t seq, std::string_view text) {
  event e = event::text_delta(0, text);
  e.set_seq(seq);
  return e;
}

TEST(SseEncoder, FramesOneEventWithIdEventNameAndOneDataLine) {
  std::string out;
  ASSERT_EQ(codec::encode_sse(stamped_text(41, "line one\nline two"), out), status::ok);
  EXPECT_EQ(out,
            "id: 41\n"
            "event: text_delta\n"
            "data: {\"type\":\"text_delta\",\"seq\":41,\"timestamp\":0,\"clock\":\"none\",\"index\":0,"
            "\"text\":\"line one\\nline two\"}\n"
            "\n");
}

TEST(SseEncoder, WritesDataOnlyBlocksWhenAsked) {
  std::string out;
  codec::sse_options options;
  options.fields = codec::sse_fields::data_only;
  ASSERT_EQ(codec::encode_sse(event::keep_alive(), out, options), status::ok);
  EXPECT_EQ(out, "data: {\"type\":\"keep_alive\",\"seq\":0,\"timestamp\":0,\"clock\":\"none\"}\n\n");
  out.clear();
  options.fields = codec::sse_fields::event_name;
  ASSERT_EQ(codec::encode_sse(event::keep_alive(), out, options), status::ok);
  EXPECT_EQ(out.substr(0, 24), "event: keep_alive\ndata: ");
}

TEST(SseEncoder, KeepAliveIsACommentBlock) {
  std::string out = "x";
  codec::append_sse_keep_alive(out);
  EXPECT_EQ(out, "x: keep-alive\n\n");
  out.clear();
  const codec::sse_encoder encoder;
  encoder.keep_alive(out);
  EXPECT_EQ(out, ": keep-alive\n\n");
}

TEST(SseEncoder, JsonRpcNotificationWrapsTheEventJson) {
  const event e = stamped_text(3, "hi");
  std::string event_json;
  ASSERT_EQ(codec::encode_json(e, event_json), status::ok);

  std::string bare;
  ASSERT_EQ(codec::encode_jsonrpc(e, bare), status::ok);
  EXPECT_EQ(bare, R"({"jsonrpc":"2.0","method":"event","params":)" + event_json + "}");

  std::string line;
  ASSERT_EQ(codec::encode_json_line(e, line, codec::sse_payload::jsonrpc), status::ok);
  EXPECT_EQ(line, bare + "\n");

  std::string sse;
  codec::sse_options options;
  options.payload = codec::sse_payload::jsonrpc;
  ASSERT_EQ(codec::encode_sse(e, sse, options), status::ok);
  EXPECT_EQ(sse, "id: 3\nevent: text_delta\ndata: " + bare + "\n\n");

  // Parsed back: a JSON-RPC 2.0 notification (no id) whose params decode to the same event.
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_FALSE(parser.parse(bare).get(root));
  std::string_view version, method;
  ASSERT_FALSE(root["jsonrpc"].get_string().get(version));
  ASSERT_FALSE(root["method"].get_string().get(method));
  EXPECT_EQ(version, "2.0");
  EXPECT_EQ(method, "event");
  EXPECT_EQ(root["id"].error(), simdjson::NO_SUCH_FIELD);
  codec::json_decoder decoder;
  event decoded;
  ASSERT_EQ(decoder.decode(simdjson::minify(root["params"]), decoded), status::ok) << decoder.error_message();
  EXPECT_TRUE(decoded.same_content(e));
  EXPECT_EQ(decoded.seq(), 3u);
}

TEST(SseEncoder, JsonLinesEndInOneNewline) {
  std::string out;
  ASSERT_EQ(codec::encode_json_line(event::message_stop(rill::stop_reason::end_turn), out), status::ok);
  EXPECT_EQ(out, "{\"type\":\"message_stop\",\"seq\":0,\"timestamp\":0,\"clock\":\"none\",\"stop_reason\":\"end_turn\"}\n");
}

TEST(SseEncoder, AppendsNothingOnFailure) {
  std::string out = "kept";
  EXPECT_EQ(codec::encode_sse(event{}, out), status::invalid);
  codec::sse_options strict;
  strict.json.on_invalid_utf8 = codec::invalid_utf8::reject;
  EXPECT_EQ(codec::encode_sse(event::text_delta(0, "\xff"), out, strict), status::invalid);
  EXPECT_EQ(codec::encode_jsonrpc(event{}, out), status::invalid);
  EXPECT_EQ(codec::encode_json_line(event{}, out), status::invalid);
  EXPECT_EQ(out, "kept");
}

TEST(SseEncoder, NoRawLineBreakEverReachesTheDataLine) {
  std::string text;
  for (int c = 0; c < 256; ++c) text.push_back(static_cast<char>(c));
  std::string out;
  ASSERT_EQ(codec::encode_sse(stamped_text(1, text), out), status::ok);
  // Exactly the framing's own line feeds: id, event, data, blank.
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 4);
  EXPECT_EQ(out.find('\r'), std::string::npos);
}

}  // namespace
