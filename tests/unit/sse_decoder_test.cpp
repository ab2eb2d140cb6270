// The SSE decoder against the WHATWG event-stream rules, split feeds, limits and hostile input.
#include "rill/codec/sse_decoder.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using rill::status;
using rill::codec::sse_decoder;
using rill::codec::sse_decoder_options;
using rill::codec::sse_event;

struct seen {
  std::string type, data, id;
  std::uint64_t offset = 0;
  bool truncated = false;
  friend bool operator==(const seen&, const seen&) = default;
};

std::ostream& operator<<(std::ostream& os, const seen& s) {
  return os << "{type=" << s.type << " data=" << s.data << " id=" << s.id << " off=" << s.offset << "}";
}

struct run_result {
  std::vector<seen> events;
  status result = status::ok;
  bool truncated = false;
};

// Feeds `pieces` in order, then finishes.
run_result decode(const std::vector<std::string>& pieces, const sse_decoder_options& options = {}) {
  sse_decoder decoder(options);
  run_result r;
  auto sink = [&](const sse_event& ev) {
    r.events.push_back({std::string(ev.event_type), std::string(ev.data), std::string(ev.id), ev.offset, ev.truncated});
  };
  for (const auto& p : pieces) {
    r.result = decoder.feed(p, sink);
    if (r.result != status::ok) return r;
  }
  r.result = decoder.finish(sink);
  r.truncated = decoder.truncated();
  return r;
}

run_result decode(const std::string& whole, const sse_decoder_options& options = {}) {
  return decode(std::vector<std::string>{whole}, options);
}

// Every split of `input` into two feeds and into single bytes gives the events of the whole feed.
void expect_split_invariant(const std::string& input) {
  const run_result whole = decode(input);
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    const run_result split = decode({input.substr(0, cut), input.substr(cut)});
    ASSERT_EQ(split.events, whole.events) << "cut at " << cut;
  }
  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  EXPECT_EQ(decode(bytes).events, whole.events);
}

TEST(SseDecoder, DispatchesOnBlankLineAndJoinsDataLinesWithNewline) {
  const run_result r = decode("event: add\ndata: one\ndata: two\n\n");
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].type, "add");
  EXPECT_EQ(r.events[0].data, "one\ntwo");
}

TEST(SseDecoder, AcceptsCrLfLfAndLoneCrLineEnds) {
  for (const char* eol : {"\n", "\r\n", "\r"}) {
    const std::string e(eol);
    const run_result r = decode("data: a" + e + "data: b" + e + e + "data: c" + e + e);
    ASSERT_EQ(r.events.size(), 2u) << "eol " << int(eol[0]);
    EXPECT_EQ(r.events[0].data, "a\nb");
    EXPECT_EQ(r.events[1].data, "c");
  }
  // Mixed in one stream.
  const run_result mixed = decode("data: a\r\ndata: b\rdata: c\n\r\n");
  ASSERT_EQ(mixed.events.size(), 1u);
  EXPECT_EQ(mixed.events[0].data, "a\nb\nc");
}

TEST(SseDecoder, CrAtEndOfOneFeedAndLfAtStartOfNextAreOneLineEnd) {
  const run_result r = decode(std::vector<std::string>{"data: x\r", "\ndata: y\r", "\n\r", "\n"});
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].data, "x\ny");
  // Two CRs are two line ends (a blank line), even split.
  const run_result cr_cr = decode(std::vector<std::string>{"data: x\r", "\r"});
  ASSERT_EQ(cr_cr.events.size(), 1u);
}

TEST(SseDecoder, StripsOneLeadingBomEvenWhenSplit) {
  const std::string bom = "\xEF\xBB\xBF";
  EXPECT_EQ(decode(bom + "data: a\n\n").events.at(0).data, "a");
  EXPECT_EQ(decode(std::vector<std::string>{"\xEF", "\xBB", "\xBF" "data: a\n\n"}).events.at(0).data, "a");
  // Only once: a second BOM makes the field name "\uFEFFdata", an unknown field.
  EXPECT_TRUE(decode(bom + bom + "data: a\n\n").events.empty());
  // Not a BOM: the held-back bytes are part of the first line.
  const run_result partial = decode(std::vector<std::string>{"\xEF\xBB", "x: 1\ndata: b\n\n"});
  ASSERT_EQ(partial.events.size(), 1u);
  EXPECT_EQ(partial.events[0].data, "b");
  expect_split_invariant(bom + "data: a\r\n\r\n");
}

TEST(SseDecoder, IgnoresCommentsAndUnknownFields) {
  const run_result r = decode(": hello\nfoo: bar\n:data: no\ndata: yes\n: mid\n\n");
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].data, "yes");
}

TEST(SseDecoder, CommentOnlyAndRetryOnlyBlocksDispatchNothing) {
  const run_result r = decode(": keep-alive\n\nretry: 1000\n\nevent: ping\n\nid: 7\n\n");
  EXPECT_TRUE(r.events.empty());
}

TEST(SseDecoder, SplitsAtFirstColonAndRemovesOneSpace) {
  const run_result r = decode("data:no-space\n\ndata:  two-spaces\n\ndata: a:b: c\n\ndata\n\ndata:\n\n");
  ASSERT_EQ(r.events.size(), 5u);
  EXPECT_EQ(r.events[0].data, "no-space");
  EXPECT_EQ(r.events[1].data, " two-spaces");
  EXPECT_EQ(r.events[2].data, "a:b: c");
  EXPECT_EQ(r.events[3].data, "");  // a bare `data` line: an empty value, still dispatched
  EXPECT_EQ(r.events[4].data, "");
}

TEST(SseDecoder, EmptyDataLinesAreJoinedToo) {
  const run_result r = decode("data:\ndata\ndata: x\n\n");
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].data, "\n\nx");
}

TEST(SseDecoder, LastEventIdIsStickyAndNulIdsAreIgnored) {
  sse_decoder d;
  std::vector<std::string> ids;
  auto sink = [&](const sse_event& ev) { ids.emplace_back(ev.id); };
  ASSERT_EQ(d.feed("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 4\n\nid: x", sink), status::ok);
  ASSERT_EQ(d.feed(std::string("\0y\ndata: d\n\n", 12), sink), status::ok);
  EXPECT_EQ(ids, (std::vector<std::string>{"1", "1", "", "4"}));
  EXPECT_EQ(d.last_event_id(), "4");  // set by the id-only block; the id with a NUL was ignored
}

// Last-Event-ID names the last block that ended: an id line of a block still open, or of one the end of
// input discards, does not count (a client resuming with it would skip that event).
TEST(SseDecoder, LastEventIdCountsOnlyBlocksThatEnded) {
  for (const bool flush : {false, true}) {
    sse_decoder_options options;
    options.flush_unterminated_at_eof = flush;
    sse_decoder d(options);
    std::vector<std::string> ids;
    auto sink = [&](const sse_event& ev) { ids.emplace_back(ev.id); };
    ASSERT_EQ(d.feed("id: 1\ndata: a\n\nid: 2\n", sink), status::ok);
    EXPECT_EQ(d.last_event_id(), "1") << "block 2 has not ended";
    ASSERT_EQ(d.feed("data: b", sink), status::ok);
    ASSERT_EQ(d.finish(sink), status::ok);
    const std::vector<std::string> want =
        flush ? std::vector<std::string>{"1", "2"} : std::vector<std::string>{"1"};
    EXPECT_EQ(ids, want);
    EXPECT_EQ(d.last_event_id(), flush ? "2" : "1");
  }
}

TEST(SseDecoder, RetryAcceptsOnlyAsciiDigits) {
  sse_decoder d;
  auto sink = [](const sse_event&) {};
  ASSERT_EQ(d.feed("retry: 2500\n\n", sink), status::ok);
  EXPECT_EQ(d.retry_ms(), 2500);
  ASSERT_EQ(d.feed("retry: 12a\n\nretry: -5\n\nretry:\n\nretry:  7\n\n", sink), status::ok);
  EXPECT_EQ(d.retry_ms(), 2500);
  ASSERT_EQ(d.feed("retry:", sink), status::ok);
  ASSERT_EQ(d.feed("9", sink), status::ok);
  ASSERT_EQ(d.feed("9\n", sink), status::ok);
  EXPECT_EQ(d.retry_ms(), 99);
}

TEST(SseDecoder, DiscardsUnterminatedEventAtEof) {
  const run_result r = decode("data: complete\n\ndata: partial\n");
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_TRUE(r.truncated);
  const run_result no_newline = decode("data: complete\n\ndata: par");
  EXPECT_EQ(no_newline.events.size(), 1u);
  EXPECT_TRUE(no_newline.truncated);
  const run_result clean = decode("data: complete\n\n: trailing comment");
  EXPECT_FALSE(clean.truncated);
}

TEST(SseDecoder, FlushesUnterminatedEventWhenAskedAndMarksIt) {
  sse_decoder_options options;
  options.flush_unterminated_at_eof = true;
  const run_result r = decode("event: e\ndata: complete\n\ndata: part\ndata: ial", options);
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_FALSE(r.events[0].truncated);
  EXPECT_EQ(r.events[1].data, "part\nial");
  EXPECT_EQ(r.events[1].type, "");
  EXPECT_TRUE(r.events[1].truncated);
  EXPECT_TRUE(r.truncated);
}

TEST(SseDecoder, MultiByteUtf8SplitAcrossFeedsSurvives) {
  const std::string input = "data: caf\xC3\xA9 \xF0\x9F\x8C\x8A \xE6\x97\xA5\n\n";
  expect_split_invariant(input);
  EXPECT_EQ(decode(input).events.at(0).data, "caf\xC3\xA9 \xF0\x9F\x8C\x8A \xE6\x97\xA5");
}

TEST(SseDecoder, EverySplitOfAMixedStreamGivesTheSameEvents) {
  expect_split_invariant(
      "\xEF\xBB\xBF: c\r\nid: 5\r\nevent: a\rdata:x\ndata:  y\r\n\r\nretry: 10\n\n:\n\ndata\r\rdata: z:w\n\n");
}

TEST(SseDecoder, ReportsEventOffsets) {
  const run_result r = decode(": c\n\ndata: a\n\nevent: x\ndata: b\n\n");
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[0].offset, 5u);
  EXPECT_EQ(r.events[1].offset, 14u);
}

TEST(SseDecoder, EventOverTheCapIsTooLargeWithOffsetNeverTruncated) {
  sse_decoder_options options;
  options.max_event_bytes = 1024;
  sse_decoder d(options);
  std::vector<std::string> got;
  auto sink = [&](const sse_event& ev) { got.emplace_back(ev.data); };
  ASSERT_EQ(d.feed("data: small\n\n", sink), status::ok);
  const std::string huge = "data: " + std::string(4000, 'x');
  EXPECT_EQ(d.feed(huge, sink), status::too_large);
  EXPECT_EQ(d.error(), status::too_large);
  EXPECT_NE(d.error_message().find("1024"), std::string_view::npos) << d.error_message();
  EXPECT_NE(d.error_message().find("byte offset"), std::string_view::npos);
  EXPECT_EQ(d.error_offset(), 13u + 6u + 1024u);
  EXPECT_EQ(got.size(), 1u);  // nothing of the big event was emitted
  // It stays failed.
  EXPECT_EQ(d.feed("\n\ndata: after\n\n", sink), status::too_large);
  EXPECT_EQ(d.finish(sink), status::too_large);
  EXPECT_EQ(got.size(), 1u);
  // reset() recovers.
  d.reset();
  EXPECT_EQ(d.feed("data: again\n\n", sink), status::ok);
  EXPECT_EQ(got.back(), "again");
}

TEST(SseDecoder, CapCountsAllDataLinesOfOneEventAcrossFeeds) {
  sse_decoder_options options;
  options.max_event_bytes = 100;
  sse_decoder d(options);
  auto sink = [](const sse_event&) {};
  status s = status::ok;
  for (int i = 0; i < 30 && s == status::ok; ++i) s = d.feed("data: 0123456789\n", sink);
  EXPECT_EQ(s, status::too_large);
  // A stream of many small events never hits the cap.
  sse_decoder ok_decoder(options);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(ok_decoder.feed("data: 0123456789\n\n", sink), status::ok);
}

TEST(SseDecoder, HugeCommentsAndUnknownFieldsAreSkippedWithoutBuffering) {
  sse_decoder_options options;
  options.max_event_bytes = 64;
  sse_decoder d(options);
  std::vector<std::string> got;
  auto sink = [&](const sse_event& ev) { got.emplace_back(ev.data); };
  const std::string comment_start = ":" + std::string(10000, 'c');
  std::string comment_end_and_unknown(10000, 'c');
  comment_end_and_unknown.append("\nunknownfield: ");
  comment_end_and_unknown.append(5000, 'u');
  ASSERT_EQ(d.feed(comment_start, sink), status::ok);
  ASSERT_EQ(d.feed(comment_end_and_unknown, sink), status::ok);
  ASSERT_EQ(d.feed("\ndata: ok\n\n", sink), status::ok);
  EXPECT_EQ(got, std::vector<std::string>{"ok"});
}

TEST(SseDecoder, SinkStatusStopsDecoding) {
  sse_decoder d;
  int calls = 0;
  auto sink = [&](const sse_event&) {
    ++calls;
    return status::full;
  };
  EXPECT_EQ(d.feed("data: a\n\ndata: b\n\n", sink), status::full);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(d.error(), status::full);
}

TEST(SseDecoder, FeedAfterFinishIsClosed) {
  sse_decoder d;
  auto sink = [](const sse_event&) {};
  ASSERT_EQ(d.finish(sink), status::ok);
  EXPECT_EQ(d.feed("data: a\n\n", sink), status::closed);
}

TEST(SseDecoder, DataIsPaddedForInPlaceParsing) {
  sse_decoder d;
  bool checked = false;
  auto sink = [&](const sse_event& ev) {
    // Reading the padding must be valid (ASan checks this in sanitizer builds).
    volatile char sum = 0;
    for (std::size_t i = 0; i < sse_decoder::kDataPadding; ++i) sum = static_cast<char>(sum + ev.data.data()[ev.data.size() + i]);
    (void)sum;
    checked = true;
  };
  ASSERT_EQ(d.feed("data: " + std::string(5000, 'p') + "\n\n", sink), status::ok);
  EXPECT_TRUE(checked);
}

TEST(SseDecoder, CountsEventsAndBytes) {
  sse_decoder d;
  auto sink = [](const sse_event&) {};
  ASSERT_EQ(d.feed("data: a\n\n: c\n\ndata: b\n\n", sink), status::ok);
  EXPECT_EQ(d.events_dispatched(), 2u);
  EXPECT_EQ(d.bytes_consumed(), 23u);
}

}  // namespace
