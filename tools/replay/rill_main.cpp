// `rill`: rill's command-line tool. Subcommands:
//
//   rill replay FILE --from openai-chat|openai-responses|anthropic|gemini|auto
//                    --to jsonl|sse|jsonrpc|openai-chat|openai-responses|anthropic|summary [--strict]
//   rill stat FILE|-     renders rill metrics JSON snapshots as tables (rill_stat.cpp)
//
// replay reads a provider SSE transcript (FILE, or stdin for `-`), decodes it on a producer thread into a
// rill stream, and on the main thread converts what it receives: to rill's own forms, to another provider's
// dialect, or (`summary`) to the reassembled response as one JSON object with the provider fixtures'
// .expected.json keys. Output is written once per drained batch. On bad input, what was already converted is
// written first, then the error goes to stderr with its byte offset, and the exit status is 1 (2 for usage
// errors).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include "rill/codec/dialect_encoder.hpp"
#include "rill/codec/provider.hpp"
#include "rill/codec/reassembler.hpp"
#include "rill/stream.hpp"
#include "rill_stat.hpp"

namespace {

constexpr std::size_t kReadBytes = 64 * 1024;
constexpr std::size_t kMaxEventBytes = std::size_t{8} << 20;  // an SSE event; its text always fits the arena

int usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "rill: %s\n", why);
  std::fputs(
      "usage: rill replay FILE|- --from openai-chat|openai-responses|anthropic|gemini|auto\n"
      "                          --to jsonl|sse|jsonrpc|openai-chat|openai-responses|anthropic|summary\n"
      "                          [--strict]   (non-JSON data is an error instead of being skipped)\n"
      "       rill stat FILE|-           (renders rill metrics JSON snapshots as tables)\n",
      stderr);
  return 2;
}

struct replay_args {
  std::string file;
  rill::codec::provider from = rill::codec::provider::unknown;
  bool to_summary = false;
  rill::codec::output_format to = rill::codec::output_format::jsonl;
  bool strict = false;
};

// What the producer thread reports once it has ended (read by the main thread after join()).
struct producer_report {
  rill::status result = rill::status::ok;
  std::string message;
  rill::codec::provider_summary summary;
};

void write_out(std::string& out) {
  if (!out.empty()) std::fwrite(out.data(), 1, out.size(), stdout);
  out.clear();
}

// Producer: bytes from `in` through the provider decoder into the stream; closes the stream at the end.
void produce(std::FILE* in, const std::string& name, const replay_args& args, rill::stream& s,
             producer_report& report) {
  rill::codec::provider_decoder_options options;
  options.dialect = args.from;
  options.strict_json = args.strict;
  options.sse.max_event_bytes = kMaxEventBytes;
  rill::codec::provider_decoder decoder(options);
  auto send = [&s](const rill::event& e) { return s.send(e); };
  std::string buffer(kReadBytes, '\0');
  for (;;) {
    const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), in);
    if (n > 0) {
      report.result = decoder.feed(std::string_view(buffer.data(), n), send);
      if (report.result != rill::status::ok) break;
    }
    if (n < buffer.size()) {
      if (std::ferror(in)) {
        report.result = rill::status::invalid;
        report.message = name + ": read error: " + std::strerror(errno) + " at byte offset " +
                         std::to_string(decoder.sse().bytes_consumed());
        break;
      }
      report.result = decoder.finish(send);
      break;
    }
  }
  if (report.result != rill::status::ok && report.message.empty()) {
    report.message = name + ": " + std::string(rill::to_string(report.result)) + ": " +
                     std::string(decoder.error_message());
  }
  if (report.result == rill::status::ok && decoder.summary().truncated) {
    std::fprintf(stderr, "rill replay: %s: warning: input ended inside an SSE event (discarded)\n", name.c_str());
  }
  report.summary = decoder.summary();
  s.close();
}

int replay(const replay_args& args) {
  std::FILE* in = stdin;
  const std::string name = args.file == "-" ? "<stdin>" : args.file;
  if (args.file != "-") {
    in = std::fopen(args.file.c_str(), "rb");
    if (in == nullptr) {
      std::fprintf(stderr, "rill replay: cannot open %s: %s\n", args.file.c_str(), std::strerror(errno));
      return 1;
    }
  }

  rill::stream_options options;
  options.capacity = 4096;
  options.arena_bytes = 2 * kMaxEventBytes;
  rill::stream s(options);
  producer_report report;
  std::thread producer([&] { produce(in, name, args, s, report); });

  rill::codec::reassembler fold;
  rill::codec::output_encoder encoder(args.to);
  std::string out;
  rill::status encode_error = rill::status::ok;
  auto handle = [&](const rill::event& e, bool end_of_batch) {
    if (args.to_summary) {
      fold.add(e);
    } else if (encode_error == rill::status::ok) {
      encode_error = encoder.encode(e, out);
    }
    if (end_of_batch) write_out(out);
  };
  while (s.drain_until(handle, 256, rill::stream::time_point::max()) == rill::status::ok) {
  }
  producer.join();
  if (in != stdin) std::fclose(in);

  if (args.to_summary) {
    out = rill::codec::summary_json(fold.result(), rill::codec::extras_from(report.summary), true);
  } else if (report.result == rill::status::ok && encode_error == rill::status::ok) {
    (void)encoder.finish(out);
  }
  write_out(out);
  std::fflush(stdout);

  if (report.result != rill::status::ok) {
    std::fprintf(stderr, "rill replay: %s\n", report.message.c_str());
    return 1;
  }
  if (encode_error != rill::status::ok) {
    std::fprintf(stderr, "rill replay: %s: an event could not be encoded (%s)\n", name.c_str(),
                 std::string(rill::to_string(encode_error)).c_str());
    return 1;
  }
  return 0;
}

int replay_main(int argc, char** argv) {
  replay_args args;
  bool have_file = false, have_from = false, have_to = false;
  for (int i = 0; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--from" || a == "--to") {
      if (i + 1 >= argc) return usage("missing value after --from / --to");
      const std::string_view v = argv[++i];
      bool ok = false;
      if (a == "--from") {
        args.from = rill::codec::provider_from_string(v, ok);
        if (!ok) return usage("unknown --from dialect");
        have_from = true;
      } else if (v == "summary") {
        args.to_summary = true;
        have_to = true;
      } else {
        args.to = rill::codec::output_format_from_string(v, ok);
        if (!ok) return usage("unknown --to format");
        have_to = true;
      }
    } else if (a == "--strict") {
      args.strict = true;
    } else if (!have_file && (a == "-" || a.substr(0, 1) != "-")) {
      args.file = std::string(a);
      have_file = true;
    } else {
      return usage("unexpected argument");
    }
  }
  if (!have_file || !have_from || !have_to) return usage("replay needs FILE, --from and --to");
  return replay(args);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(nullptr);
  const std::string_view command = argv[1];
  if (command == "replay") return replay_main(argc - 2, argv + 2);
  if (command == "stat") return stat_main(argc - 2, argv + 2);
  if (command == "-h" || command == "--help" || command == "help") {
    usage(nullptr);
    return 0;
  }
  return usage("unknown command");
}
