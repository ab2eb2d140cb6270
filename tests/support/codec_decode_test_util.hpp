// Test helpers for the decode side of the codecs: file reading, decoding a transcript with arbitrary
// splits, and a field-by-field JSON comparison (simdjson DOM) that names the first difference.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "rill/codec/provider.hpp"
#include "rill/codec/reassembler.hpp"
#include "rill/event.hpp"

namespace rill::test {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// One line per event: kind, index, choice, aux, kind bit and every text field. Equal logs mean equal events.
inline std::string describe(const event& e) {
  std::string s(to_string(e.kind()));
  s += " i=" + std::to_string(e.index()) + " c=" + std::to_string(e.choice()) + " a=" + std::to_string(e.aux()) +
       " b=" + std::to_string(e.kind_bit() ? 1 : 0);
  for (std::size_t i = 0; i < e.field_count(); ++i) {
    s += " [";
    s += e.field(i);
    s += "]";
  }
  if (e.kind() == event_kind::usage) {
    const usage_counts u = e.usage_values();
    s += " u=" + std::to_string(u.input_tokens) + "/" + std::to_string(u.output_tokens) + "/" +
         std::to_string(u.total_tokens) + "/" + std::to_string(u.cache_read_tokens) + "/" +
         std::to_string(u.cache_write_tokens) + "/" + std::to_string(u.reasoning_tokens);
  }
  if (e.kind() == event_kind::stream_complete) s += " n=" + std::to_string(e.total_chunks());
  return s;
}

struct decode_run {
  status result = status::ok;   // first non-ok status of feed/finish
  std::string error_message;
  std::uint64_t error_offset = 0;
  std::string log;              // describe() of every event, one per line
  std::string summary;          // summary_json()
  codec::reassembled response;  // the reassembled response, for field-by-field checks
  codec::provider_summary native;
};

// Decodes `bytes` fed in pieces that end at each of `cuts` (ascending offsets), then finishes.
inline decode_run decode_with_cuts(std::string_view bytes, const std::vector<std::size_t>& cuts,
                                   const codec::provider_decoder_options& options = {}) {
  decode_run run;
  codec::provider_decoder decoder(options);
  codec::reassembler fold;
  auto sink = [&](const event& e) {
    run.log += describe(e);
    run.log += '\n';
    fold.add(e);
  };
  std::size_t at = 0;
  for (std::size_t cut : cuts) {
    if (run.result == status::ok) run.result = decoder.feed(bytes.substr(at, cut - at), sink);
    at = cut;
  }
  if (run.result == status::ok) run.result = decoder.feed(bytes.substr(at), sink);
  if (run.result == status::ok) run.result = decoder.finish(sink);
  run.error_message = std::string(decoder.error_message());
  run.error_offset = decoder.error_offset();
  run.native = decoder.summary();
  run.response = fold.result();
  run.summary = codec::summary_json(run.response, codec::extras_from(decoder.summary()));
  return run;
}

inline decode_run decode_bytewise(std::string_view bytes, const codec::provider_decoder_options& options = {}) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < bytes.size(); ++i) cuts.push_back(i);
  return decode_with_cuts(bytes, cuts, options);
}

// Compares two JSON values field by field: same object keys (top-level keys in `ignored` skipped), arrays
// element by element, strings byte for byte, numbers of the same kind and value. Returns "" when equal, else
// the path and what differs.
inline std::string json_diff(simdjson::dom::element a, simdjson::dom::element b, const std::string& path,
                             const std::vector<std::string>& ignored = {}) {
  using simdjson::dom::element_type;
  const auto ta = a.type(), tb = b.type();
  const auto numeric_kind = [](element_type t) {
    return t == element_type::INT64 || t == element_type::UINT64 ? 1 : t == element_type::DOUBLE ? 2 : 0;
  };
  if (ta != tb && !(numeric_kind(ta) == 1 && numeric_kind(tb) == 1)) {
    return path + ": types differ (" + simdjson::to_string(a) + " vs " + simdjson::to_string(b) + ")";
  }
  switch (ta) {
    case element_type::OBJECT: {
      simdjson::dom::object oa = a.get_object().value_unsafe(), ob = b.get_object().value_unsafe();
      const auto skip = [&](std::string_view k) {
        if (path != "$") return false;
        for (const auto& i : ignored) {
          if (k == i) return true;
        }
        return false;
      };
      std::size_t na = 0, nb = 0;
      for (auto [k, v] : oa) {
        if (skip(k)) continue;
        ++na;
        simdjson::dom::element other;
        if (ob.at_key(k).get(other) != simdjson::SUCCESS) return path + "." + std::string(k) + ": missing on the right";
        std::string d = json_diff(v, other, path + "." + std::string(k), ignored);
        if (!d.empty()) return d;
      }
      for (auto [k, v] : ob) {
        (void)v;
        if (!skip(k)) ++nb;
        simdjson::dom::element other;
        if (!skip(k) && oa.at_key(k).get(other) != simdjson::SUCCESS) return path + "." + std::string(k) + ": missing on the left";
      }
      return na == nb ? "" : path + ": key counts differ";
    }
    case element_type::ARRAY: {
      simdjson::dom::array xa = a.get_array().value_unsafe(), xb = b.get_array().value_unsafe();
      std::size_t size_a = 0, size_b = 0;  // counted: dom::array::size() trips g++'s -Wnull-dereference
      for ([[maybe_unused]] simdjson::dom::element v : xa) ++size_a;
      for ([[maybe_unused]] simdjson::dom::element v : xb) ++size_b;
      if (size_a != size_b) return path + ": array sizes differ";
      auto ib = xb.begin();
      std::size_t i = 0;
      for (simdjson::dom::element v : xa) {
        std::string d = json_diff(v, *ib, path + "[" + std::to_string(i) + "]", ignored);
        if (!d.empty()) return d;
        ++ib;
        ++i;
      }
      return "";
    }
    default:
      return simdjson::to_string(a) == simdjson::to_string(b)
                 ? ""
                 : path + ": " + simdjson::to_string(a) + " vs " + simdjson::to_string(b);
  }
}

// Parses both texts and compares them (ignoring top-level `notes`). "" when equal.
inline std::string json_text_diff(const std::string& actual, const std::string& expected) {
  simdjson::dom::parser pa, pb;
  simdjson::dom::element a, b;
  if (pa.parse(actual).get(a) != simdjson::SUCCESS) return "actual is not JSON: " + actual;
  if (pb.parse(expected).get(b) != simdjson::SUCCESS) return "expected is not JSON";
  return json_diff(a, b, "$", {"notes"});
}

}  // namespace rill::test
