// The wire codecs: sse_decode (SSE framing), adapter_decode (provider SSE bytes to rill events) and
// sse_encode (rill events to SSE), each on one pinned thread over a large synthetic transcript
// (bench/support/synthetic_transcripts.hpp, shared with bench/codec_*_bench.cpp) built once per process;
// adapter_decode decodes each response of it as its own stream, as a proxy does.
// A run repeats whole passes over the transcript until its time budget is spent (at least one pass) and
// checks every pass: event counts, checksums of the decoded data (sse_decode: against a plain line splitter
// run once over the transcript; adapter_decode: against the text the generator wrote), output sizes; the
// last encode output is compared byte for byte with a reference that was itself checked by decoding it
// back into events. Reported: bytes/s of the transcript read (decode) or of the SSE written (encode), and
// events/s.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "harness.hpp"
#include "rill/codec/json.hpp"
#include "rill/codec/provider.hpp"
#include "rill/codec/sse_decoder.hpp"
#include "rill/codec/sse_encoder.hpp"
#include "support/synthetic_transcripts.hpp"

namespace rill_bench {
namespace {

using rill::codec::provider;
using rill_synthetic::provider_transcript;

constexpr std::size_t kReadBytes = 16 * 1024;  // one socket read
constexpr int kDeltasPerTurn = 40;
constexpr provider kDialects[] = {provider::openai_chat, provider::openai_responses, provider::anthropic,
                                  provider::gemini};

// Responses per provider transcript: 11-24 MiB each, 71 MiB in all (quick: a fifth of that).
int turns(const run_config& cfg) { return cfg.quick ? 400 : 2000; }
// Responses of 2000 text deltas in the encode transcript: 23 MiB of SSE (quick: a fifth).
int encode_responses(const run_config& cfg) { return cfg.quick ? 20 : 100; }

// The four provider transcripts, built on first use and kept (sse_decode and adapter_decode share them).
struct decode_corpus {
  std::map<provider, provider_transcript> by_dialect;
  std::size_t total_bytes = 0;
  std::size_t total_sse_events = 0;
  std::size_t total_data_bytes = 0;                      // the dispatched events' data, per reference_data()
  std::uint64_t data_hash = rill_synthetic::kFnvOffset;  // fnv1a over that data, event by event, in order
};

// What an SSE parser must dispatch from `bytes`, worked out by the simplest reading of the format, to check
// rill's decoder against: lines end in LF, CRLF or CR; a blank line dispatches the data gathered since the
// last one (when there is any); `data` lines add their value (after one optional space) and join with LF;
// other fields and comments are ignored. Slow and allocating: it runs once per corpus, untimed.
void reference_data(std::string_view bytes, decode_corpus& c) {
  std::string data;
  bool have_data = false;
  std::size_t at = 0;
  while (at < bytes.size()) {
    const std::size_t end = bytes.find_first_of("\r\n", at);
    const std::string_view line =
        bytes.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    at = end == std::string_view::npos ? bytes.size() : end + (bytes.substr(end, 2) == "\r\n" ? 2 : 1);
    if (line.empty()) {
      if (have_data) {
        ++c.total_sse_events;
        c.total_data_bytes += data.size();
        c.data_hash = rill_synthetic::fnv1a(c.data_hash, data);
      }
      data.clear();
      have_data = false;
    } else if (line.substr(0, 5) == "data:") {
      std::string_view value = line.substr(5);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (have_data) data += '\n';
      data += value;
      have_data = true;
    }
  }
}

std::shared_ptr<const decode_corpus> corpus_for(const run_config& cfg) {
  static std::map<int, std::shared_ptr<const decode_corpus>> cache;
  auto& slot = cache[turns(cfg)];
  if (slot) return slot;
  auto c = std::make_shared<decode_corpus>();
  std::size_t generated_events = 0;
  for (const provider p : kDialects) {
    auto& t = c->by_dialect[p] = rill_synthetic::make_provider_transcript(p, turns(cfg), kDeltasPerTurn);
    c->total_bytes += t.bytes.size();
    generated_events += t.sse_events;
    reference_data(t.bytes, *c);
  }
  if (c->total_sse_events != generated_events) {
    throw verification_error("sse_decode: the reference splitter found " +
                             std::to_string(c->total_sse_events) + " events where the generator wrote " +
                             std::to_string(generated_events));
  }
  slot = c;
  return slot;
}

// Feeds `bytes` to `decoder` in kReadBytes reads. False when a feed fails.
template <class Decoder, class Sink>
bool feed_in_reads(Decoder& decoder, std::string_view bytes, Sink& sink) {
  for (std::size_t at = 0; at < bytes.size(); at += kReadBytes) {
    if (decoder.feed(bytes.substr(at, kReadBytes), sink) != rill::status::ok) return false;
  }
  return true;
}

// Runs `pass` (one whole transcript; returns false after noting a failure) on cpu0 until the time budget is
// spent, at least once; the clock is read at the start and the end only.
template <class Pass>
run_result timed_passes(const run_config& cfg, const std::string& context, std::size_t bytes_per_pass,
                        std::size_t events_per_pass, Pass pass) {
  failure_note failure;
  std::uint64_t passes = 0;
  steady::time_point start, end;
  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>& stop) {
    start = steady::now();
    do {
      if (!pass(failure)) break;
      ++passes;
    } while (!stop.load(std::memory_order_relaxed));  // relaxed: a time-out flag, orders nothing
    end = steady::now();
  });
  run_workers(std::move(workers), cfg.run_time, {0});
  failure.throw_if_failed(context);
  const double seconds = seconds_between(start, end);
  run_result r;
  r.bytes_per_sec = static_cast<double>(passes * bytes_per_pass) / seconds;
  r.events_per_sec = static_cast<double>(passes * events_per_pass) / seconds;
  return r;
}

// ---- sse_decode --------------------------------------------------------------------------------------

// The four transcripts back to back through one decoder (each ends on a blank line, so the concatenation is
// one valid stream): LF and CRLF, with and without `event:` lines.
run_result sse_decode_run(const run_config& cfg, const decode_corpus& corpus) {
  rill::codec::sse_decoder decoder;
  // One pass; with `checksum`, also hashes every dispatched data field (a byte-at-a-time hash would cost
  // more than the framing, so the timed passes compare counts and byte totals, and one untimed pass before
  // them the checksum).
  auto pass = [&](failure_note& failure, bool checksum) {
    decoder.reset();
    std::size_t events = 0, data_bytes = 0;
    std::uint64_t data_hash = rill_synthetic::kFnvOffset;
    auto sink = [&](const rill::codec::sse_event& ev) {
      ++events;
      data_bytes += ev.data.size();
      if (checksum) data_hash = rill_synthetic::fnv1a(data_hash, ev.data);
    };
    for (const provider p : kDialects) {
      if (!feed_in_reads(decoder, corpus.by_dialect.at(p).bytes, sink)) {
        failure.fail("feed failed: " + std::string(decoder.error_message()));
        return false;
      }
    }
    if (decoder.finish(sink) != rill::status::ok || decoder.truncated()) {
      failure.fail("finish failed or reported a truncated event");
      return false;
    }
    const bool checksum_differs = checksum && data_hash != corpus.data_hash;
    if (events != corpus.total_sse_events || decoder.bytes_consumed() != corpus.total_bytes ||
        data_bytes != corpus.total_data_bytes || checksum_differs) {
      failure.fail("dispatched " + std::to_string(events) + " events, " + std::to_string(data_bytes) +
                   " data bytes over " + std::to_string(decoder.bytes_consumed()) + " bytes, want " +
                   std::to_string(corpus.total_sse_events) + ", " + std::to_string(corpus.total_data_bytes) +
                   " over " + std::to_string(corpus.total_bytes) +
                   (checksum_differs ? " (data checksum differs)" : ""));
      return false;
    }
    return true;
  };
  failure_note first;
  if (!pass(first, true)) first.throw_if_failed("sse_decode");
  return timed_passes(cfg, "sse_decode", corpus.total_bytes, corpus.total_sse_events,
                      [&](failure_note& failure) { return pass(failure, false); });
}

// ---- adapter_decode ----------------------------------------------------------------------------------

struct decoded_counts {
  std::size_t events = 0, sse_events = 0, skipped = 0, completed = 0;
  std::size_t text_deltas = 0, text_bytes = 0, tool_calls = 0;
  std::uint64_t text_hash = rill_synthetic::kFnvOffset;
};

// Each response is one provider stream, as a proxy sees it: reset, its bytes in reads of at most 16 KiB,
// finish. The checks cover every response: all SSE events accounted for and none skipped, each stream
// completed, the decoded text exactly the transcript's, one tool call per response where the dialect has one.
run_result adapter_decode_run(const run_config& cfg, provider dialect, const provider_transcript& t) {
  rill::codec::provider_decoder_options options;
  options.dialect = dialect;
  rill::codec::provider_decoder decoder(options);
  std::size_t events_per_pass = 0;  // rill events: the same in every pass (set by the first)
  const std::string context = "adapter_decode provider=" + std::string(rill::codec::to_string(dialect));
  auto pass = [&](failure_note& failure) {
    decoded_counts got;
    auto sink = [&](const rill::event& e) {
      ++got.events;
      if (e.kind() == rill::event_kind::text_delta) {
        const std::string_view text = e.text();
        if (!text.empty()) {
          ++got.text_deltas;
          got.text_bytes += text.size();
          got.text_hash = rill_synthetic::fnv1a(got.text_hash, text);
        }
      } else if (e.kind() == rill::event_kind::tool_call_start) {
        ++got.tool_calls;
      }
    };
    const std::string_view all = t.bytes;
    std::size_t begin = 0;
    for (const std::size_t end : t.response_ends) {
      decoder.reset();
      if (!feed_in_reads(decoder, all.substr(begin, end - begin), sink) ||
          decoder.finish(sink) != rill::status::ok) [[unlikely]] {
        failure.fail("decode failed at byte " + std::to_string(begin + decoder.error_offset()) + ": " +
                     std::string(decoder.error_message()));
        return false;
      }
      const auto& summary = decoder.summary();
      got.sse_events += summary.counters.sse_events;
      got.skipped += summary.counters.unknown_events + summary.counters.non_json_data +
                     summary.counters.malformed_payloads;
      got.completed += summary.completed ? 1 : 0;
      begin = end;
    }
    std::string wrong;
    if (got.sse_events != t.sse_events) wrong += " sse_events " + std::to_string(got.sse_events);
    if (got.skipped != 0) wrong += " skipped " + std::to_string(got.skipped);
    if (got.completed != t.response_ends.size()) wrong += " completed " + std::to_string(got.completed);
    if (got.text_deltas != t.text_deltas) wrong += " text_deltas " + std::to_string(got.text_deltas);
    if (got.text_bytes != t.text_bytes) wrong += " text_bytes " + std::to_string(got.text_bytes);
    if (got.text_hash != t.text_hash) wrong += " text checksum";
    if (got.tool_calls != t.tool_calls) wrong += " tool_calls " + std::to_string(got.tool_calls);
    if (events_per_pass == 0) events_per_pass = got.events;
    if (got.events != events_per_pass) wrong += " events " + std::to_string(got.events);
    if (!wrong.empty()) {
      failure.fail("wrong decode:" + wrong);
      return false;
    }
    return true;
  };
  // The first pass, untimed, learns the event count (then checked in every timed pass).
  failure_note first;
  if (!pass(first)) first.throw_if_failed(context);
  return timed_passes(cfg, context, t.bytes.size(), events_per_pass, pass);
}

// ---- sse_encode --------------------------------------------------------------------------------------

struct encode_corpus {
  rill_synthetic::event_transcript transcript;
  std::string reference;  // the SSE of every event, checked once by decoding it
};

// Builds the transcript and its reference SSE, and checks the reference with the SSE and JSON decoders: one
// block per event, in order, `id:` = the seq, `event:` = the kind's name, data = the JSON of an event with
// the same content and seq (json.hpp's exact round trip).
std::shared_ptr<const encode_corpus> encode_corpus_for(const run_config& cfg) {
  static std::map<int, std::shared_ptr<const encode_corpus>> cache;
  auto& slot = cache[encode_responses(cfg)];
  if (slot) return slot;
  auto c = std::make_shared<encode_corpus>();
  rill_synthetic::fill_event_transcript(c->transcript, encode_responses(cfg), 2000);
  const auto& events = c->transcript.events;
  for (const rill::event& e : events) {
    if (rill::codec::encode_sse(e, c->reference) != rill::status::ok) {
      throw verification_error("sse_encode: reference encode failed");
    }
  }
  rill::codec::sse_decoder decoder;
  rill::codec::json_decoder json;
  rill::event decoded;
  std::size_t k = 0;
  std::string wrong;
  auto sink = [&](const rill::codec::sse_event& ev) {
    if (k >= events.size()) {
      wrong = "more blocks than events";
    } else if (ev.id != std::to_string(events[k].seq()) ||
               ev.event_type != rill::to_string(events[k].kind()) ||
               json.decode(ev.data, decoded) != rill::status::ok || !decoded.same_content(events[k]) ||
               decoded.seq() != events[k].seq()) {
      if (wrong.empty()) wrong = "block " + std::to_string(k) + " does not match its event";
    }
    ++k;
  };
  if (decoder.feed(c->reference, sink) != rill::status::ok || decoder.finish(sink) != rill::status::ok) {
    wrong = "reference SSE does not decode";
  }
  if (wrong.empty() && k != events.size()) wrong = std::to_string(k) + " blocks for " + std::to_string(events.size());
  if (!wrong.empty()) throw verification_error("sse_encode: " + wrong);
  slot = c;
  return slot;
}

run_result sse_encode_run(const run_config& cfg, const encode_corpus& corpus) {
  const auto& events = corpus.transcript.events;
  std::string out;
  out.reserve(corpus.reference.size());
  run_result r = timed_passes(cfg, "sse_encode", corpus.reference.size(), events.size(), [&](failure_note& failure) {
    out.clear();
    for (const rill::event& e : events) {
      if (rill::codec::encode_sse(e, out) != rill::status::ok) [[unlikely]] {
        failure.fail("encode_sse failed at seq " + std::to_string(e.seq()));
        return false;
      }
    }
    if (out.size() != corpus.reference.size()) {
      failure.fail("wrote " + std::to_string(out.size()) + " bytes, want " + std::to_string(corpus.reference.size()));
      return false;
    }
    return true;
  });
  if (std::memcmp(out.data(), corpus.reference.data(), out.size()) != 0) {
    throw verification_error("sse_encode: the last pass's output differs from the reference");
  }
  return r;
}

}  // namespace

std::vector<scenario_entry> codec_scenarios() {
  std::vector<scenario_entry> out;
  out.push_back({"sse_decode", [](const run_config& cfg) {
                   auto corpus = corpus_for(cfg);
                   scenario_case sc{"sse_decode", {}, metric::byte_rate, {}, ""};
                   sc.one_thread = true;
                   sc.impls = {{"rill", {}, [corpus](const run_config& c) { return sse_decode_run(c, *corpus); }}};
                   sc.note = "SSE framing only: the four provider transcripts back to back (" +
                             std::to_string(corpus->total_bytes >> 20) +
                             " MiB), 16 KiB reads, one thread on cpu0; bytes/s of input";
                   return std::vector<scenario_case>{sc};
                 }});
  out.push_back({"adapter_decode", [](const run_config& cfg) {
                   auto corpus = corpus_for(cfg);
                   std::vector<scenario_case> cases;
                   for (const provider p : kDialects) {
                     const provider_transcript& t = corpus->by_dialect.at(p);
                     scenario_case sc{"adapter_decode", {{"provider", std::string(rill::codec::to_string(p))}},
                                      metric::byte_rate, {}, ""};
                     sc.one_thread = true;
                     sc.impls = {{"rill", {}, [corpus, p](const run_config& c) {
                                    return adapter_decode_run(c, p, corpus->by_dialect.at(p));
                                  }}};
                     sc.note = "provider SSE bytes to rill events (framing + JSON + adapter), " +
                               std::to_string(t.bytes.size() >> 20) + " MiB, " +
                               std::to_string(t.response_ends.size()) +
                               " responses each its own stream in reads of <= 16 KiB, one thread on cpu0; "
                               "bytes/s of input";
                     cases.push_back(std::move(sc));
                   }
                   return cases;
                 }});
  out.push_back({"sse_encode", [](const run_config& cfg) {
                   auto corpus = encode_corpus_for(cfg);
                   scenario_case sc{"sse_encode", {}, metric::byte_rate, {}, ""};
                   sc.one_thread = true;
                   sc.impls = {{"rill", {}, [corpus](const run_config& c) { return sse_encode_run(c, *corpus); }}};
                   sc.note = "rill events to SSE (id, event, one JSON data line), " +
                             std::to_string(corpus->transcript.events.size()) + " events, " +
                             std::to_string(corpus->reference.size() >> 20) +
                             " MiB out, one thread on cpu0; bytes/s of output";
                   return std::vector<scenario_case>{sc};
                 }});
  return out;
}

}  // namespace rill_bench
