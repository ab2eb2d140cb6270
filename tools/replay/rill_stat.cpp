// `rill stat FILE|-`: renders rill metrics snapshots (rill::to_json, rill/metrics_exposition.hpp) as readable tables.
//
// The input holds one snapshot, or several one after another (JSON lines, as a gateway that prints a
// snapshot every second writes them). Each snapshot is rendered as soon as it is complete, so
// `gateway | rill stat -` shows a live view; on a terminal each new snapshot replaces the last.
// Exit status: 0, 1 when the input cannot be read or is not a snapshot, 2 for usage errors.
#include "rill_stat.hpp"

#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

std::string format_ns(std::uint64_t ns) {
  char buf[32];
  if (ns < 10'000) std::snprintf(buf, sizeof buf, "%llu ns", static_cast<unsigned long long>(ns));
  else if (ns < 10'000'000) std::snprintf(buf, sizeof buf, "%.1f us", static_cast<double>(ns) / 1e3);
  else if (ns < 10'000'000'000ull) std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(ns) / 1e6);
  else std::snprintf(buf, sizeof buf, "%.2f s", static_cast<double>(ns) / 1e9);
  return buf;
}

std::uint64_t u64(simdjson::dom::element e, std::string_view key) {
  std::uint64_t v = 0;
  if (e[key].get(v) != simdjson::SUCCESS) {
    std::int64_t s = 0;
    if (e[key].get(s) == simdjson::SUCCESS && s > 0) v = static_cast<std::uint64_t>(s);
  }
  return v;
}

double num(simdjson::dom::element e, std::string_view key) {
  double v = 0;
  if (e[key].get(v) == simdjson::SUCCESS) return v;
  return static_cast<double>(u64(e, key));
}

std::string text(simdjson::dom::element e, std::string_view key) {
  std::string_view v;
  return e[key].get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
}

// Renders one snapshot. False when `root` does not look like one.
bool render(simdjson::dom::element root, std::string& out) {
  simdjson::dom::object events;
  if (root["events"].get(events) != simdjson::SUCCESS) return false;
  char line[512];
  std::snprintf(line, sizeof line,
                "streams  started %llu  ended %llu  failed %llu  active %llu  error rate %.1f%%\n",
                static_cast<unsigned long long>(u64(root, "streams_started")),
                static_cast<unsigned long long>(u64(root, "streams_ended")),
                static_cast<unsigned long long>(u64(root, "streams_failed")),
                static_cast<unsigned long long>(u64(root, "active_streams")), num(root, "error_rate") * 100.0);
  out += line;
  simdjson::dom::element ttft;
  if (root["ttft"].get(ttft) == simdjson::SUCCESS) {
    std::snprintf(line, sizeof line, "ttft     count %llu  p50 <= %s  p90 <= %s  p99 <= %s\n",
                  static_cast<unsigned long long>(u64(ttft, "count")), format_ns(u64(ttft, "p50_ns")).c_str(),
                  format_ns(u64(ttft, "p90_ns")).c_str(), format_ns(u64(ttft, "p99_ns")).c_str());
    out += line;
  }
  std::vector<std::pair<std::string, std::uint64_t>> kinds;
  for (auto field : events) {
    std::uint64_t n = 0;
    if (field.value.get(n) == simdjson::SUCCESS) kinds.emplace_back(std::string(field.key), n);
  }
  std::stable_sort(kinds.begin(), kinds.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  out += "events  ";
  for (const auto& [name, n] : kinds) {
    std::snprintf(line, sizeof line, " %s %llu", name.c_str(), static_cast<unsigned long long>(n));
    out += line;
  }
  out += kinds.empty() ? " none\n" : "\n";

  simdjson::dom::array models;
  if (root["models"].get(models) == simdjson::SUCCESS && models.size() != 0) {
    std::snprintf(line, sizeof line, "\n%-14s %-24s %12s %12s %12s %12s %10s\n", "provider", "model", "input",
                  "output", "cache read", "cache write", "cost");
    out += line;
    for (auto m : models) {
      std::snprintf(line, sizeof line, "%-14s %-24s %12llu %12llu %12llu %12llu %10.5f\n", text(m, "provider").c_str(),
                    text(m, "model").c_str(), static_cast<unsigned long long>(u64(m, "input_tokens")),
                    static_cast<unsigned long long>(u64(m, "output_tokens")),
                    static_cast<unsigned long long>(u64(m, "cache_read_tokens")),
                    static_cast<unsigned long long>(u64(m, "cache_write_tokens")), num(m, "cost"));
      out += line;
    }
    std::snprintf(line, sizeof line, "%-14s %-24s %12s %12s %12s %12s %10.5f\n", "total", "", "", "", "", "",
                  num(root, "total_cost"));
    out += line;
  }

  simdjson::dom::array streams;
  if (root["streams"].get(streams) == simdjson::SUCCESS && streams.size() != 0) {
    std::snprintf(line, sizeof line, "\n%-24s %8s %8s %10s %10s %8s %9s %6s %9s %9s\n", "stream", "events", "chunks",
                  "ttft", "duration", "out tok", "tok/s", "errors", "gap p50", "gap p99");
    out += line;
    for (auto s : streams) {
      std::int64_t ttft_ns = -1;
      if (s["ttft_ns"].get(ttft_ns) != simdjson::SUCCESS) ttft_ns = -1;
      std::snprintf(line, sizeof line, "%-24s %8llu %8llu %10s %10s %8llu %9.1f %6llu %9s %9s\n",
                    text(s, "id").substr(0, 24).c_str(), static_cast<unsigned long long>(u64(s, "events")),
                    static_cast<unsigned long long>(u64(s, "chunks")),
                    ttft_ns < 0 ? "-" : format_ns(static_cast<std::uint64_t>(ttft_ns)).c_str(),
                    format_ns(u64(s, "duration_ns")).c_str(),
                    static_cast<unsigned long long>(u64(s, "output_tokens")), num(s, "output_tokens_per_sec"),
                    static_cast<unsigned long long>(u64(s, "errors")), format_ns(u64(s, "gap_p50_ns")).c_str(),
                    format_ns(u64(s, "gap_p99_ns")).c_str());
      out += line;
    }
  }
  return true;
}

int stat_usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "rill stat: %s\n", why);
  std::fputs("usage: rill stat FILE|-   (renders rill metrics JSON snapshots, one or more, as tables)\n", stderr);
  return 2;
}

}  // namespace

int stat_main(int argc, char** argv) {
  if (argc != 1) return stat_usage(argc == 0 ? "stat needs FILE or -" : "unexpected argument");
  const std::string file = argv[0];
  std::FILE* in = stdin;
  if (file != "-") {
    in = std::fopen(file.c_str(), "rb");
    if (in == nullptr) {
      std::fprintf(stderr, "rill stat: cannot open %s: %s\n", file.c_str(), std::strerror(errno));
      return 1;
    }
  }
  const bool live = isatty(STDOUT_FILENO) != 0;
  simdjson::dom::parser parser;
  std::string pending;  // bytes of a snapshot not yet complete
  std::string out;
  std::size_t rendered = 0;
  bool bad = false;
  char buf[4096];
  // A snapshot is complete when the bytes gathered so far parse; a pretty-printed one spans several lines.
  auto try_render = [&]() {
    const auto first = pending.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) {
      pending.clear();
      return;
    }
    simdjson::dom::element root;
    if (parser.parse(pending).get(root) != simdjson::SUCCESS) return;  // incomplete (or bad: seen at the end)
    out.clear();
    if (rendered != 0) out += live ? "\033[H\033[2J" : "\n";  // a live view redraws; a log separates
    if (!render(root, out)) {
      std::fprintf(stderr, "rill stat: %s: not a rill metrics snapshot\n", file.c_str());
      bad = true;
    } else {
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
      ++rendered;
    }
    pending.clear();
  };
  while (!bad && std::fgets(buf, sizeof buf, in) != nullptr) {
    pending += buf;
    if (!pending.empty() && pending.back() == '\n') try_render();
  }
  const bool read_error = std::ferror(in) != 0;
  if (in != stdin) std::fclose(in);
  if (!bad) try_render();
  if (read_error) {
    std::fprintf(stderr, "rill stat: %s: read error\n", file.c_str());
    return 1;
  }
  if (!bad && pending.find_first_not_of(" \t\r\n") != std::string::npos) {
    std::fprintf(stderr, "rill stat: %s: input ends inside a snapshot, or is not JSON\n", file.c_str());
    return 1;
  }
  if (!bad && rendered == 0) {
    std::fprintf(stderr, "rill stat: %s: no snapshot\n", file.c_str());
    return 1;
  }
  return bad ? 1 : 0;
}
