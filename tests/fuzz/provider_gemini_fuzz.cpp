// libFuzzer target: the gemini adapter (SSE bytes to rill events); see provider_fuzz_common.hpp.
#include "provider_fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return rill::fuzz::fuzz_provider(data, size, rill::codec::provider::gemini);
}
