// Shared body of the provider adapter libFuzzer targets. The input is decoded three ways (whole, split at two
// offsets taken from its first bytes, one byte at a time when short) and every way must give the same events;
// the reassembled summary must be valid JSON. Any difference or crash is a bug.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rill/codec/provider.hpp"
#include "rill/codec/reassembler.hpp"

namespace rill::fuzz {

inline void append_event(std::string& log, const event& e) {
  log += to_string(e.kind());
  log += static_cast<char>('0' + (e.index() & 7));
  log += static_cast<char>('0' + (e.choice() & 7));
  log += static_cast<char>('0' + (e.aux() & 15));
  log += e.kind_bit() ? '1' : '0';
  for (std::size_t i = 0; i < e.field_count(); ++i) {
    log += '|';
    log += e.field(i);
  }
  log += '\n';
}

struct outcome {
  status result = status::ok;
  std::string log;
  std::string summary;
};

template <class Cuts>
outcome decode(std::string_view input, codec::provider dialect, const Cuts& cuts, std::size_t cut_count) {
  codec::provider_decoder_options options;
  options.dialect = dialect;
  options.sse.max_event_bytes = 1 << 16;  // small enough that the fuzzer reaches the cap
  codec::provider_decoder decoder(options);
  codec::reassembler fold;
  outcome out;
  auto sink = [&](const event& e) {
    append_event(out.log, e);
    fold.add(e);
  };
  std::size_t at = 0;
  for (std::size_t i = 0; i < cut_count && out.result == status::ok; ++i) {
    out.result = decoder.feed(input.substr(at, cuts[i] - at), sink);
    at = cuts[i];
  }
  if (out.result == status::ok) out.result = decoder.feed(input.substr(at), sink);
  if (out.result == status::ok) out.result = decoder.finish(sink);
  out.summary = codec::summary_json(fold.result(), codec::extras_from(decoder.summary()));
  return out;
}

inline int fuzz_provider(const std::uint8_t* data, std::size_t size, codec::provider dialect) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t none[1] = {0};
  const outcome whole = decode(input, dialect, none, 0);

  std::size_t cuts[2] = {0, 0};
  if (size >= 2) {
    cuts[0] = data[0] % size;
    cuts[1] = cuts[0] + data[1] % (size - cuts[0]);
  }
  const outcome split = decode(input, dialect, cuts, 2);
  if (split.result != whole.result || split.log != whole.log || split.summary != whole.summary) std::abort();

  if (size <= 512) {
    std::size_t every[512];
    for (std::size_t i = 0; i + 1 < size; ++i) every[i] = i + 1;
    const outcome bytewise = decode(input, dialect, every, size > 0 ? size - 1 : 0);
    if (bytewise.result != whole.result || bytewise.log != whole.log) std::abort();
  }

  static simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(whole.summary).get(root) != simdjson::SUCCESS) std::abort();
  return 0;
}

}  // namespace rill::fuzz
