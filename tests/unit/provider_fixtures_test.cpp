// Every provider transcript (the shared fixtures and tests/fixtures) decoded whole, one byte at a time and
// at every 2-way split, checked against its hand-written .expected.json and against the whole-feed events.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "codec_decode_test_util.hpp"

namespace {

using rill::status;
using rill::test::decode_run;

struct fixture {
  std::string dir;
  std::string name;
};

std::vector<fixture> all_fixtures() {
  std::vector<fixture> out;
  for (const char* name : {"openai_chat_text", "openai_chat_tool_calls", "openai_responses_text", "anthropic_text",
                           "anthropic_thinking_tool_use", "anthropic_error_midstream"}) {
    out.push_back({RILL_SHARED_FIXTURES_DIR, name});
  }
  for (const char* name :
       {"anthropic_crlf_comments", "openai_chat_lone_cr", "anthropic_multiline_data",
        "openai_responses_tool_call", "gemini_text", "gemini_function_call", "openai_chat_error_midstream",
        "anthropic_bom_utf8", "anthropic_truncated_tool", "openai_chat_two_choices"}) {
    out.push_back({RILL_TEST_FIXTURES_DIR, name});
  }
  return out;
}

class ProviderFixture : public ::testing::TestWithParam<fixture> {
 protected:
  std::string bytes() const { return rill::test::read_file(GetParam().dir + "/" + GetParam().name + ".sse"); }
  std::string expected() const {
    return rill::test::read_file(GetParam().dir + "/" + GetParam().name + ".expected.json");
  }
};

TEST_P(ProviderFixture, WholeFeedMatchesExpectedJson) {
  const std::string input = bytes();
  ASSERT_FALSE(input.empty()) << "missing fixture " << GetParam().name;
  const decode_run run = rill::test::decode_with_cuts(input, {});
  ASSERT_EQ(run.result, status::ok) << run.error_message;
  EXPECT_EQ(rill::test::json_text_diff(run.summary, expected()), "") << run.summary << "\nevents:\n" << run.log;
}

TEST_P(ProviderFixture, ExplicitDialectGivesTheSameResultAsDetection) {
  const std::string input = bytes();
  const decode_run detected = rill::test::decode_with_cuts(input, {});
  rill::codec::provider_decoder_options options;
  options.dialect = detected.native.dialect;
  ASSERT_NE(options.dialect, rill::codec::provider::unknown);
  const decode_run fixed = rill::test::decode_with_cuts(input, {}, options);
  EXPECT_EQ(fixed.log, detected.log);
  EXPECT_EQ(fixed.summary, detected.summary);
}

TEST_P(ProviderFixture, OneByteAtATimeGivesTheSameEvents) {
  const std::string input = bytes();
  const decode_run whole = rill::test::decode_with_cuts(input, {});
  const decode_run bytewise = rill::test::decode_bytewise(input);
  ASSERT_EQ(bytewise.result, status::ok) << bytewise.error_message;
  EXPECT_EQ(bytewise.log, whole.log);
  EXPECT_EQ(rill::test::json_text_diff(bytewise.summary, expected()), "") << bytewise.summary;
}

TEST_P(ProviderFixture, EveryTwoWaySplitGivesTheSameEvents) {
  const std::string input = bytes();
  const decode_run whole = rill::test::decode_with_cuts(input, {});
  const std::string want = expected();
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    const decode_run split = rill::test::decode_with_cuts(input, {cut});
    ASSERT_EQ(split.result, status::ok) << "cut " << cut << ": " << split.error_message;
    ASSERT_EQ(split.log, whole.log) << "cut at byte " << cut;
    ASSERT_EQ(split.summary, whole.summary) << "cut at byte " << cut;
  }
  EXPECT_EQ(rill::test::json_text_diff(whole.summary, want), "");
}

TEST_P(ProviderFixture, EveryThreeWaySplitNearLineEndsGivesTheSameEvents) {
  // Three pieces around each line end: catches state carried across two boundaries (CR | LF, BOM bytes).
  const std::string input = bytes();
  const decode_run whole = rill::test::decode_with_cuts(input, {});
  std::size_t splits = 0;
  for (std::size_t i = 0; i + 1 < input.size(); ++i) {
    if (input[i] != '\n' && input[i] != '\r') continue;
    for (std::size_t a = i > 2 ? i - 2 : 0; a <= i + 1; ++a) {
      for (std::size_t b = a; b <= std::min(input.size(), i + 3); ++b) {
        const decode_run split = rill::test::decode_with_cuts(input, {a, b});
        ASSERT_EQ(split.result, whole.result) << "cuts " << a << ", " << b << ": " << split.error_message;
        ASSERT_EQ(split.log, whole.log) << "cuts " << a << ", " << b;
        ASSERT_EQ(split.summary, whole.summary) << "cuts " << a << ", " << b;
        ++splits;
      }
    }
  }
  EXPECT_GT(splits, 0u) << "a transcript with no line ends checks nothing here";
}

INSTANTIATE_TEST_SUITE_P(AllTranscripts, ProviderFixture, ::testing::ValuesIn(all_fixtures()),
                         [](const ::testing::TestParamInfo<fixture>& param_info) { return param_info.param.name; });

}  // namespace
