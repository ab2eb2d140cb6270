// libFuzzer target: the event JSON decoder and writer. Any bytes go to json_decoder::decode; whatever it
// accepts must re-encode and decode to the same event (seq, timestamp and clock included). The same bytes,
// taken as text, must escape to a JSON string that simdjson parses (to the same bytes when valid UTF-8).
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rill/codec/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static rill::codec::json_decoder decoder;
  static simdjson::dom::parser parser;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  rill::event decoded;
  if (decoder.decode(input, decoded) == rill::status::ok) {
    std::string json;
    if (rill::codec::encode_json(decoded, json) != rill::status::ok) std::abort();
    const rill::codec::owned_event first(decoded);  // the decoder's next call reuses its memory
    rill::event again;
    if (decoder.decode(json, again) != rill::status::ok) std::abort();
    if (!again.same_content(first.get()) || again.seq() != first->seq() || again.timestamp() != first->timestamp() ||
        again.timestamp_clock() != first->timestamp_clock()) {
      std::abort();
    }
  }

  std::string escaped;
  if (rill::codec::append_json_string(escaped, input) != rill::status::ok) std::abort();
  simdjson::dom::element root;
  std::string_view parsed;
  if (parser.parse(escaped).get(root) || root.get_string().get(parsed)) std::abort();
  if (simdjson::validate_utf8(input.data(), input.size()) && parsed != input) std::abort();
  return 0;
}
