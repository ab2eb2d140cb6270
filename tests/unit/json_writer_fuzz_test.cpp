// Seeded fuzz of the JSON writer against simdjson: random strings and bytes are escaped, parsed back, and must
// give back the same bytes (valid UTF-8) or the U+FFFD-replaced bytes (invalid UTF-8). Whole events round trip
// through the decoder too. Prints its seed; replay with `--seed=N` (or RILL_FUZZ_SEED=N).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdlib>
#include <random>
#include <string>

#include "rill/codec/json.hpp"

namespace {

using rill::status;
namespace codec = rill::codec;

std::uint64_t fuzz_seed() {
  for (const std::string& arg : ::testing::internal::GetArgvs()) {
    if (arg.rfind("--seed=", 0) == 0) return std::strtoull(arg.c_str() + 7, nullptr, 10);
  }
  if (const char* env = std::getenv("RILL_FUZZ_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

std::size_t iterations() {
  if (const char* env = std::getenv("RILL_FUZZ_ITERATIONS")) return std::strtoull(env, nullptr, 10);
  return 20000;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// Random text biased towards what breaks escapers: controls, quotes, backslashes, every UTF-8 length, and
// (when `raw_bytes`) arbitrary bytes, truncated sequences and surrogates.
std::string random_text(std::mt19937_64& rng, bool raw_bytes) {
  std::uniform_int_distribution<int> length_dist(0, 300);
  std::uniform_int_distribution<int> choice(0, 9);
  const int length = length_dist(rng);
  std::string s;
  while (static_cast<int>(s.size()) < length) {
    switch (choice(rng)) {
      case 0: s.push_back(static_cast<char>(rng() % 0x20)); break;
      case 1: s.push_back("\"\\/"[rng() % 3]); break;
      case 2: append_utf8(s, static_cast<std::uint32_t>(0x80 + rng() % (0x800 - 0x80))); break;
      case 3: {
        std::uint32_t cp = static_cast<std::uint32_t>(0x800 + rng() % (0x10000 - 0x800));
        if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
        append_utf8(s, cp);
        break;
      }
      case 4: append_utf8(s, static_cast<std::uint32_t>(0x10000 + rng() % (0x110000 - 0x10000))); break;
      case 5:
        if (raw_bytes) {
          s.push_back(static_cast<char>(rng() % 256));
          break;
        }
        [[fallthrough]];
      default: s.push_back(static_cast<char>(0x20 + rng() % 0x5f)); break;
    }
  }
  return s;
}

TEST(JsonWriterFuzz, EscapedStringsParseBackToTheSameBytes) {
  const std::uint64_t seed = fuzz_seed();
  std::printf("JsonWriterFuzz seed: %llu (replay with --seed=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  simdjson::dom::parser parser;
  std::string json;
  std::size_t invalid_inputs = 0;
  for (std::size_t i = 0; i < iterations(); ++i) {
    const std::string input = random_text(rng, i % 2 == 1);
    json.clear();
    ASSERT_EQ(codec::append_json_string(json, input), status::ok);
    simdjson::dom::element root;
    ASSERT_FALSE(parser.parse(json).get(root)) << "seed " << seed << " iteration " << i;
    std::string_view parsed;
    ASSERT_FALSE(root.get_string().get(parsed)) << "seed " << seed << " iteration " << i;
    if (simdjson::validate_utf8(input.data(), input.size())) {
      ASSERT_EQ(parsed, input) << "seed " << seed << " iteration " << i;
    } else {
      ++invalid_inputs;
      // Replacement is stable: the replaced text is valid and writes back to itself.
      const std::string replaced(parsed);
      std::string again;
      ASSERT_EQ(codec::append_json_string(again, replaced, codec::invalid_utf8::reject), status::ok);
      ASSERT_EQ(again, json) << "seed " << seed << " iteration " << i;
      std::string rejected = "x";
      ASSERT_EQ(codec::append_json_string(rejected, input, codec::invalid_utf8::reject), status::invalid);
      ASSERT_EQ(rejected, "x");
    }
  }
  EXPECT_GT(invalid_inputs, 0u);
}

TEST(JsonWriterFuzz, RandomEventsRoundTripThroughTheDecoder) {
  const std::uint64_t seed = fuzz_seed() ^ 0x9e3779b97f4a7c15ull;
  std::printf("JsonWriterFuzz event seed: %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  codec::json_decoder decoder;
  std::string json;
  std::size_t checked = 0;
  for (std::size_t i = 0; i < iterations(); ++i) {
    const auto kind = static_cast<rill::event_kind>(1 + rng() % (rill::kEventKindCount - 1));
    const std::string a = random_text(rng, false), b = random_text(rng, false), c = random_text(rng, false);
    const std::string_view fields[] = {a, b, c};
    const std::size_t count = rill::kind_info(kind).field_count;
    rill::event e;
    if (kind == rill::event_kind::usage) {
      e = rill::event::usage({static_cast<std::uint32_t>(rng()), static_cast<std::uint32_t>(rng()), 0, 1, 2, 3},
                             rng() % 2 == 0);
    } else if (kind == rill::event_kind::stream_complete) {
      e = rill::event::stream_complete(rng(), rng());
    } else if (kind == rill::event_kind::tool_call_start && rng() % 2 == 0) {
      e = rill::event::tool_call_start(static_cast<std::uint16_t>(rng()), a, b, static_cast<std::uint16_t>(rng()));
    } else {
      const std::uint8_t aux = kind == rill::event_kind::content_block_start ? static_cast<std::uint8_t>(rng() % rill::kBlockTypeCount)
                               : kind == rill::event_kind::message_stop  ? static_cast<std::uint8_t>(rng() % rill::kStopReasonCount)
                                                                         : static_cast<std::uint8_t>(rng() % 4);
      e = rill::event::with_text(kind, static_cast<std::uint16_t>(rng()), aux, rng() % 2 == 0, fields, count);
    }
    e.set_seq(rng());
    e.set_timestamp(static_cast<rill::clock_kind>(rng() % 4), rng());
    if (e.validate() != status::ok) continue;
    json.clear();
    ASSERT_EQ(codec::encode_json(e, json), status::ok);
    rill::event decoded;
    ASSERT_EQ(decoder.decode(json, decoded), status::ok) << decoder.error_message() << " seed " << seed << " iteration " << i;
    ASSERT_TRUE(decoded.same_content(e)) << "seed " << seed << " iteration " << i << "\n" << json;
    ASSERT_EQ(decoded.seq(), e.seq());
    ASSERT_EQ(decoded.timestamp(), e.timestamp());
    ASSERT_EQ(decoded.timestamp_clock(), e.timestamp_clock());
    ++checked;
  }
  EXPECT_GT(checked, iterations() / 2);
}

}  // namespace
