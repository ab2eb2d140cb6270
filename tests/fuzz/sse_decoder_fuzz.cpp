// libFuzzer target: the SSE decoder. The input is decoded whole, split at two offsets taken from its first
// bytes, and (when short) one byte at a time; all must dispatch the same events with the same ids, types,
// offsets and final state. A small cap makes the too_large path reachable; it must fail the same way too.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rill/codec/sse_decoder.hpp"

namespace {

struct outcome {
  rill::status result = rill::status::ok;
  std::string log;
  std::uint64_t error_offset = 0;
  bool truncated = false;
  std::string last_id;
  std::int64_t retry = -1;
};

outcome decode(std::string_view input, const std::size_t* cuts, std::size_t cut_count, bool flush) {
  rill::codec::sse_decoder_options options;
  options.max_event_bytes = 4096;
  options.flush_unterminated_at_eof = flush;
  rill::codec::sse_decoder decoder(options);
  outcome out;
  auto sink = [&](const rill::codec::sse_event& ev) {
    if (ev.data.size() > options.max_event_bytes) std::abort();
    out.log.append(ev.event_type).append("\x01").append(ev.data).append("\x01").append(ev.id);
    out.log.append("\x01").append(std::to_string(ev.offset)).append(ev.truncated ? "T\n" : "\n");
  };
  std::size_t at = 0;
  for (std::size_t i = 0; i < cut_count && out.result == rill::status::ok; ++i) {
    out.result = decoder.feed(input.substr(at, cuts[i] - at), sink);
    at = cuts[i];
  }
  if (out.result == rill::status::ok) out.result = decoder.feed(input.substr(at), sink);
  if (out.result == rill::status::ok) out.result = decoder.finish(sink);
  out.error_offset = decoder.error_offset();
  out.truncated = decoder.truncated();
  out.last_id = decoder.last_event_id();
  out.retry = decoder.retry_ms();
  return out;
}

bool same(const outcome& a, const outcome& b) {
  return a.result == b.result && a.log == b.log && a.error_offset == b.error_offset && a.truncated == b.truncated &&
         a.last_id == b.last_id && a.retry == b.retry;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const bool flush = size > 0 && (data[size - 1] & 1) != 0;
  const outcome whole = decode(input, nullptr, 0, flush);
  std::size_t cuts[2] = {0, 0};
  if (size >= 2) {
    cuts[0] = data[0] % size;
    cuts[1] = cuts[0] + data[1] % (size - cuts[0]);
  }
  if (!same(decode(input, cuts, 2, flush), whole)) std::abort();
  if (size <= 1024) {
    static std::size_t every[1024];
    for (std::size_t i = 0; i + 1 < size; ++i) every[i] = i + 1;
    if (!same(decode(input, every, size > 0 ? size - 1 : 0, flush), whole)) std::abort();
  }
  return 0;
}
