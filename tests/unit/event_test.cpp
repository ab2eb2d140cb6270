#include "rill/event.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <system_error>
#include <thread>

#include "rill/status.hpp"

namespace {

using rill::event;
using rill::event_kind;
using rill::status;

TEST(Event, IsOneAlignedTriviallyCopyableCacheLine) {
  EXPECT_EQ(sizeof(event), 64u);
  EXPECT_EQ(alignof(event), 64u);
  EXPECT_TRUE(std::is_trivially_copyable_v<event>);
}

TEST(Event, EveryKindHasAUniqueStableNameThatParsesBack) {
  std::set<std::string_view> names;
  for (std::size_t i = 1; i < rill::kEventKindCount; ++i) {
    const auto kind = static_cast<event_kind>(i);
    const std::string_view name = rill::to_string(kind);
    EXPECT_NE(name, "none");
    EXPECT_TRUE(names.insert(name).second) << name;
    EXPECT_EQ(rill::kind_from_string(name), kind);
  }
  EXPECT_EQ(rill::kind_from_string("no_such_kind"), event_kind::none);
  EXPECT_EQ(rill::to_string(static_cast<event_kind>(250)), "none");
  EXPECT_EQ(rill::to_string(event_kind::text_delta), "text_delta");
  EXPECT_EQ(rill::to_string(event_kind::mcp_disconnected), "mcp_disconnected");
}

TEST(Event, BlockTypesAndStopReasonsRoundTripByName) {
  for (std::size_t i = 0; i < rill::kBlockTypeCount; ++i) {
    bool ok = false;
    const auto t = static_cast<rill::block_type>(i);
    EXPECT_EQ(rill::block_type_from_string(rill::to_string(t), ok), t);
    EXPECT_TRUE(ok);
  }
  for (std::size_t i = 0; i < rill::kStopReasonCount; ++i) {
    bool ok = false;
    const auto r = static_cast<rill::stop_reason>(i);
    EXPECT_EQ(rill::stop_reason_from_string(rill::to_string(r), ok), r);
    EXPECT_TRUE(ok);
  }
  bool ok = true;
  (void)rill::stop_reason_from_string("bogus", ok);
  EXPECT_FALSE(ok);
}

TEST(Event, TextDeltaUpToFortyBytesIsInline) {
  const std::string forty(40, 'a');
  const event e = event::text_delta(3, forty);
  EXPECT_TRUE(e.text_is_inline());
  EXPECT_EQ(e.text(), forty);
  EXPECT_EQ(e.index(), 3);
  EXPECT_EQ(e.validate(), status::ok);

  const std::string forty_one(41, 'b');
  const event longer = event::text_delta(0, forty_one);
  EXPECT_TRUE(longer.text_is_external());
  EXPECT_EQ(longer.text().data(), forty_one.data()) << "long text is borrowed, not copied";
  EXPECT_EQ(longer.text(), forty_one);
}

// The one-field factories build inline text themselves (fixed-size moves); they must give the very bytes
// with_text() gives, for every length around the inline capacity and for every one-field kind.
TEST(Event, OneFieldFactoriesMatchTheGeneralBuilderByteForByte) {
  std::string text(event::kInlineTextCapacity + 2, '\0');
  for (std::size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('A' + i);
  const auto same_bytes = [](const event& a, const event& b) {
    return std::memcmp(&a, &b, sizeof(event)) == 0;
  };
  for (std::size_t n = 0; n <= text.size(); ++n) {
    const std::string_view t(text.data(), n);
    const auto general = [&](event_kind kind, std::uint16_t index) {
      return event::with_text(kind, index, 0, false, &t, 1);
    };
    EXPECT_TRUE(same_bytes(event::text_delta(3, t), general(event_kind::text_delta, 3))) << n;
    EXPECT_TRUE(same_bytes(event::thinking_delta(4, t), general(event_kind::thinking_delta, 4))) << n;
    EXPECT_TRUE(same_bytes(event::signature_delta(5, t), general(event_kind::signature_delta, 5))) << n;
    EXPECT_TRUE(same_bytes(event::user(6, t), general(event_kind::user, 6))) << n;
    EXPECT_TRUE(same_bytes(event::tool_args_delta(7, t), general(event_kind::tool_args_delta, 7))) << n;
    for (const event& second_choice : {event::tool_args_delta(7, t, 2), event::text_delta(7, t, 2),
                                       event::thinking_delta(7, t, 2), event::signature_delta(7, t, 2)}) {
      EXPECT_EQ(second_choice.choice(), 2u) << n;
      EXPECT_EQ(second_choice.index(), 7u) << n;
      EXPECT_EQ(second_choice.field(0), t) << n;
      EXPECT_EQ(second_choice.text_is_inline(), n <= event::kInlineTextCapacity) << n;
      EXPECT_FALSE(second_choice.same_content(event::with_text(second_choice.kind(), 7, 0, false, &t, 1)))
          << n;
    }
  }
}

TEST(Event, InlineCapacityShrinksByTwoBytesPerExtraField) {
  EXPECT_EQ(rill::inline_capacity_for_fields(1), 40u);
  EXPECT_EQ(rill::inline_capacity_for_fields(2), 38u);
  EXPECT_EQ(rill::inline_capacity_for_fields(3), 36u);
  const event fits = event::tool_call_start(1, std::string(18, 'i'), std::string(20, 'n'));
  EXPECT_TRUE(fits.text_is_inline());
  const event spills = event::tool_call_start(1, std::string(19, 'i'), std::string(20, 'n'));
  EXPECT_TRUE(spills.text_is_external());
  const event three = event::stream_start(std::string(12, 'p'), std::string(12, 'm'), std::string(12, 'r'));
  EXPECT_TRUE(three.text_is_inline());
  EXPECT_EQ(three.provider(), std::string(12, 'p'));
  EXPECT_EQ(three.model(), std::string(12, 'm'));
  EXPECT_EQ(three.request_id(), std::string(12, 'r'));
}

TEST(Event, BorrowedFieldsFromSeparateBuffersStaySeparate) {
  const std::string id(100, 'x');
  const std::string name(70, 'y');
  const event e = event::tool_call_start(2, id, name, 1);
  ASSERT_TRUE(e.text_is_external());
  EXPECT_EQ(e.call_id(), id);
  EXPECT_EQ(e.tool_name(), name);
  EXPECT_EQ(e.choice(), 1);
  EXPECT_EQ(e.text_size(), id.size() + name.size());

  std::string arena(e.text_size(), '\0');
  event moved = e;
  moved.move_text_to_arena(arena.data());
  EXPECT_TRUE(moved.text_is_in_arena());
  EXPECT_EQ(moved.call_id(), id);
  EXPECT_EQ(moved.tool_name(), name);
  EXPECT_EQ(moved.text_block(), id + name);
  EXPECT_TRUE(moved.same_content(e));
}

TEST(Event, AccessorsReturnWhatFactoriesStored) {
  rill::usage_counts u{10, 20, 30, 4, 5, 6};
  const event usage = event::usage(u, true);
  EXPECT_EQ(usage.usage_values(), u);
  EXPECT_TRUE(usage.usage_estimated());

  const event err = event::error("overloaded_error", "Overloaded", true);
  EXPECT_EQ(err.error_code(), "overloaded_error");
  EXPECT_EQ(err.error_message(), "Overloaded");
  EXPECT_TRUE(err.retryable());

  const event stop = event::message_stop(rill::stop_reason::tool_use);
  EXPECT_EQ(stop.stop(), rill::stop_reason::tool_use);

  const event block = event::content_block_start(4, rill::block_type::thinking);
  EXPECT_EQ(block.block(), rill::block_type::thinking);
  EXPECT_EQ(block.index(), 4);

  const event done = event::stream_complete(123, 456789);
  EXPECT_EQ(done.total_chunks(), 123u);
  EXPECT_EQ(done.duration_ns(), 456789u);

  const event result = event::tool_result("call_1", "42", true);
  EXPECT_EQ(result.call_id(), "call_1");
  EXPECT_EQ(result.tool_content(), "42");
  EXPECT_TRUE(result.tool_is_error());

  const event end = event::tool_call_end(7, true, 2);
  EXPECT_TRUE(end.args_invalid());
  EXPECT_EQ(end.choice(), 2);

  const event step = event::lifecycle(event_kind::step_failed, "step-3", "timed out", 3);
  EXPECT_EQ(step.subject(), "step-3");
  EXPECT_EQ(step.detail(), "timed out");
  EXPECT_EQ(step.index(), 3);

  const event user = event::user(77, std::string("\0\1\2", 3));
  EXPECT_EQ(user.user_code(), 77);
  EXPECT_EQ(user.text(), std::string("\0\1\2", 3));

  const event start = event::message_start("msg_1", "claude");
  EXPECT_EQ(start.message_id(), "msg_1");
  EXPECT_EQ(start.model(), "claude");
}

TEST(Event, ValidateRejectsUnknownKindsMissingFieldsAndOversizeLeadingFields) {
  EXPECT_EQ(event{}.validate(), status::invalid);
  EXPECT_EQ(event::lifecycle(event_kind::text_delta, "not a lifecycle kind").validate(), status::invalid);
  EXPECT_EQ(event::tool_call_start(0, "id", "").validate(), status::invalid) << "tool name is required";
  EXPECT_EQ(event::tool_result("", "content").validate(), status::invalid) << "call id is required";
  EXPECT_EQ(event::lifecycle(event_kind::agent_added, "").validate(), status::invalid);
  EXPECT_EQ(event::tool_call_start(0, "", "name").validate(), status::ok) << "Gemini calls have no id";
  // Enums carried in aux are range-checked, and validates_trivially() leaves those kinds to validate().
  const event bad_stop = event::message_stop(static_cast<rill::stop_reason>(200));
  const event bad_block = event::content_block_start(0, static_cast<rill::block_type>(99));
  EXPECT_EQ(bad_stop.validate(), status::invalid);
  EXPECT_EQ(bad_block.validate(), status::invalid);
  EXPECT_FALSE(bad_stop.validates_trivially());
  EXPECT_FALSE(bad_block.validates_trivially());
  EXPECT_EQ(event::message_stop(rill::stop_reason::end_turn).validate(), status::ok);
  EXPECT_EQ(event::content_block_start(0, rill::block_type::text).validate(), status::ok);

  const std::string huge(70000, 'k');
  EXPECT_EQ(event::lifecycle(event_kind::state_updated, huge, "v").validate(), status::too_large);
  EXPECT_EQ(event::lifecycle(event_kind::state_updated, "k", huge).validate(), status::ok)
      << "only leading fields are limited to 65535 bytes";
}

TEST(Event, SameContentIgnoresSequenceTimestampAndTextLocation) {
  const std::string text(100, 'z');
  event a = event::text_delta(1, text);
  std::string copy = text;
  event b = event::text_delta(1, copy);
  b.set_seq(99);
  b.set_timestamp(rill::clock_kind::coarse, 1234);
  EXPECT_TRUE(a.same_content(b));
  copy[50] = 'y';
  EXPECT_FALSE(a.same_content(b));
  EXPECT_FALSE(event::text_delta(1, "a").same_content(event::text_delta(2, "a")));
  EXPECT_FALSE(event::usage({1}).same_content(event::usage({2})));
}

// Stamps can arrive from outside (a decoded JSON event): the conversions saturate instead of wrapping or
// overflowing (UBSan reported signed overflow for these before).
TEST(Clock, HostileStampsSaturate) {
  using rill::clock_kind;
  using steady = std::chrono::steady_clock;
  constexpr std::uint64_t kHuge = ~std::uint64_t{0};
  constexpr std::uint64_t kPastSigned = std::uint64_t{1} << 63;
  EXPECT_EQ(rill::clock::to_steady(clock_kind::steady, kHuge), steady::time_point::max());
  EXPECT_EQ(rill::clock::to_steady(clock_kind::coarse, kPastSigned), steady::time_point::max());
  EXPECT_GT(rill::clock::to_steady(clock_kind::tsc, kHuge), steady::now() + std::chrono::hours(24 * 365));
  EXPECT_GE(rill::clock::to_steady(clock_kind::tsc, 0), steady::time_point{});
  EXPECT_EQ(rill::clock::to_steady(clock_kind::steady, 12345),
            steady::time_point(std::chrono::nanoseconds(12345)));
  // Far future stamps give the latest wall-clock time; the epoch of a steady clock gives about boot time.
  EXPECT_EQ(rill::clock::to_system(clock_kind::steady, kHuge), std::chrono::system_clock::time_point::max());
  EXPECT_GT(rill::clock::to_system(clock_kind::tsc, kHuge), std::chrono::system_clock::now());
  EXPECT_EQ(rill::clock::to_system(clock_kind::coarse, kPastSigned),
            std::chrono::system_clock::time_point::max());
  EXPECT_LE(rill::clock::to_system(clock_kind::steady, 0), std::chrono::system_clock::now());
}

TEST(Event, TimestampsConvertToSteadyAndSystemTime) {
  // Each stamp is checked against clock readings taken just before and just after it, so a preemption
  // between them cannot fail the test. The slack covers the coarse clock's lag (a few kernel ticks) and the
  // TSC's calibration error over the process's lifetime; a wrong unit or epoch would be off by far more.
  constexpr auto kSlack = std::chrono::milliseconds(50);
  event e = event::keep_alive();
  auto before = std::chrono::steady_clock::now();
  e.set_timestamp(rill::clock_kind::coarse, rill::clock::coarse_now_ns());
  auto after = std::chrono::steady_clock::now();
  EXPECT_EQ(e.timestamp_clock(), rill::clock_kind::coarse);
  EXPECT_GE(e.steady_time(), before - kSlack);
  EXPECT_LE(e.steady_time(), after + kSlack);

  (void)rill::clock::tsc_calibration();  // calibrates on first use (about 10 ms): not between the readings
  before = std::chrono::steady_clock::now();
  const auto system_before = std::chrono::system_clock::now();
  e.set_timestamp(rill::clock_kind::tsc, rill::clock::tsc_now());
  after = std::chrono::steady_clock::now();
  const auto system_after = std::chrono::system_clock::now();
  EXPECT_GE(e.steady_time(), before - kSlack);
  EXPECT_LE(e.steady_time(), after + kSlack);
  EXPECT_GE(e.system_time(), system_before - kSlack);
  EXPECT_LE(e.system_time(), system_after + kSlack);

  e.set_timestamp(rill::clock_kind::none, 0);
  EXPECT_EQ(e.steady_time(), std::chrono::steady_clock::time_point{});
}

#if RILL_ASSERTS_ENABLED
TEST(EventDeathTest, ReadingAnotherKindsPayloadAssertsInDebugBuilds) {
  const event e = event::keep_alive();
  EXPECT_DEATH((void)e.usage_values(), "usage_values");
  EXPECT_DEATH((void)e.text(), "single text field");
}
#endif

TEST(Status, HasNamesAnErrorCategoryAndStandardConditions) {
  EXPECT_EQ(rill::to_string(status::ok), "ok");
  EXPECT_EQ(rill::to_string(status::too_large), "too_large");
  EXPECT_EQ(rill::to_string(status::already_exists), "already_exists");
  const std::error_code ec = status::timeout;
  EXPECT_EQ(ec.category().name(), std::string("rill"));
  EXPECT_EQ(ec.message(), "timeout");
  EXPECT_EQ(ec, std::errc::timed_out);
  EXPECT_EQ(std::error_code(status::invalid), std::errc::invalid_argument);
  EXPECT_FALSE(std::error_code(status::ok));
}

}  // namespace
