// Test driver: runs `rill replay FIXTURE --from auto --to summary` (through the shell, as a user would) and
// compares its output with the fixture's .expected.json field by field. Exit 0 when equal.
#include <cstdio>
#include <string>

#include "codec_decode_test_util.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: rill-replay-check RILL FIXTURE.sse EXPECTED.json\n");
    return 2;
  }
  const std::string command = std::string("'") + argv[1] + "' replay '" + argv[2] + "' --from auto --to summary";
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    std::perror("popen");
    return 1;
  }
  std::string output;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  const int status = pclose(pipe);
  if (status != 0) {
    std::fprintf(stderr, "rill replay exited with status %d\n%s\n", status, output.c_str());
    return 1;
  }
  const std::string diff = rill::test::json_text_diff(output, rill::test::read_file(argv[3]));
  if (!diff.empty()) {
    std::fprintf(stderr, "summary differs from %s: %s\n%s\n", argv[3], diff.c_str(), output.c_str());
    return 1;
  }
  std::printf("%s matches %s\n", argv[2], argv[3]);
  return 0;
}
