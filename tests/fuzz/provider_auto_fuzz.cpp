// libFuzzer target: dialect detection plus whichever adapter it picks; see provider_fuzz_common.hpp.
#include "provider_fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return rill::fuzz::fuzz_provider(data, size, rill::codec::provider::unknown);
}
