// The domain's own runs: memory_buffered_event and llm_replay.
#include <malloc.h>

#include <any>
#include <cstring>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "harness.hpp"
#include "rill/stream.hpp"
#include "workload.hpp"

namespace rill_bench {
namespace {

// ---- memory_buffered_event ----------------------------------------------------------------------------

// Heap bytes in use (small-object arenas plus mmapped blocks).
std::size_t heap_in_use() noexcept {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

std::size_t buffered_count(const run_config& cfg) { return cfg.quick ? 65536 : 262144; }

run_result rill_buffered(const run_config& cfg) {
  const std::size_t n = buffered_count(cfg);
  const auto& pool = rill_pool();
  const std::size_t before = heap_in_use();
  rill::stream_options o;
  o.capacity = n;
  o.allocate_on_first_send = false;  // everything the buffered events need, default arena included
  auto s = std::make_unique<rill::stream>(o);
  const auto start = steady::now();
  for (std::size_t i = 0; i < n; ++i) {
    if (s->try_send(pool[i & kPoolMask]) != rill::status::ok) {
      throw verification_error("memory_buffered_event: rill refused send " + std::to_string(i));
    }
  }
  const auto end = steady::now();
  const std::size_t after = heap_in_use();
  rill::received r;
  std::size_t k = 0;
  while (s->try_receive(r) == rill::status::ok) {
    if (r->seq() != k || r->index() != (k & kPoolMask)) throw verification_error("memory_buffered_event: order");
    ++k;
  }
  if (k != n) throw verification_error("memory_buffered_event: rill lost events");
  run_result res;
  res.bytes = static_cast<double>(after - before) / static_cast<double>(n);
  res.events_per_sec = static_cast<double>(n) / seconds_between(start, end);
  return res;
}

// The replaced design: streams in a map behind a reader-writer lock, each a mutex + condition variable
// deque (a Go buffered channel) of dynamically typed events (Go's map[string]any).
using dynamic_event = std::map<std::string, std::any>;
struct locked_channel {
  std::mutex mutex;
  std::condition_variable not_empty;
  std::deque<dynamic_event> items;
};
struct locked_registry {
  std::shared_mutex lock;
  std::unordered_map<std::string, std::unique_ptr<locked_channel>> streams;
  bool send(const std::string& id, dynamic_event e) {
    std::shared_lock read(lock);
    const auto it = streams.find(id);
    if (it == streams.end()) return false;
    locked_channel& ch = *it->second;
    {
      std::lock_guard guard(ch.mutex);
      ch.items.push_back(std::move(e));
    }
    ch.not_empty.notify_one();
    return true;
  }
};

run_result shared_mutex_map_buffered(const run_config& cfg) {
  const std::size_t n = buffered_count(cfg);
  const std::string id = "req_0123456789abcdef";
  const std::size_t before = heap_in_use();
  auto registry = std::make_unique<locked_registry>();
  registry->streams.emplace(id, std::make_unique<locked_channel>());
  const auto start = steady::now();
  for (std::size_t i = 0; i < n; ++i) {
    dynamic_event e;  // a new event per send, as the Go design built one
    e.emplace("type", std::string("text_delta"));
    e.emplace("index", static_cast<int>(i & kPoolMask));
    e.emplace("text", std::string(token_text(i)));
    e.emplace("seq", static_cast<std::uint64_t>(i));
    if (!registry->send(id, std::move(e))) throw verification_error("memory_buffered_event: map lost the stream");
  }
  const auto end = steady::now();
  const std::size_t after = heap_in_use();
  auto& items = registry->streams.at(id)->items;
  if (items.size() != n) throw verification_error("memory_buffered_event: map lost events");
  for (std::size_t k = 0; k < n; ++k) {
    if (std::any_cast<std::uint64_t>(items[k].at("seq")) != k) throw verification_error("memory_buffered_event: order");
  }
  run_result res;
  res.bytes = static_cast<double>(after - before) / static_cast<double>(n);
  res.events_per_sec = static_cast<double>(n) / seconds_between(start, end);
  return res;
}

// ---- llm_replay -----------------------------------------------------------------------------------------

// Synthetic LLM responses: message_start, a text block of 20-60 deltas of 1-40 bytes, in a third of the
// responses a tool call with 2-6 argument fragments of 200-2000 bytes, usage, message_stop.
constexpr std::size_t kScripts = 64;
constexpr std::size_t kReplayCapacity = 64;
constexpr std::size_t kReplayArena = 16384;

// Every byte of a text block: the length, and the bytes read as words that together cover all of them (the
// last overlapping), each multiplied by an odd constant of its own position, so a changed byte changes the
// hash and a moved one almost surely does. The multiplies are independent of each other: about a cycle per
// 8 bytes, the same work for both implementations (each hands the consumer a view of the bytes it received).
std::uint64_t text_hash(std::string_view text) noexcept {
  const char* p = text.data();
  const std::size_t n = text.size();
  auto word = [](const char* at) {
    std::uint64_t w;
    std::memcpy(&w, at, sizeof w);
    return w;
  };
  std::uint64_t h = std::uint64_t{n} * 0x9e3779b97f4a7c15u;
  if (n >= 8) {
    std::size_t i = 0;
    for (; i + 8 < n; i += 8) h ^= word(p + i) * (0xff51afd7ed558ccdu + 2 * i);
    h ^= word(p + n - 8) * 0xc2b2ae3d27d4eb4fu;
  } else if (n >= 4) {
    std::uint32_t head, tail;
    std::memcpy(&head, p, sizeof head);
    std::memcpy(&tail, p + n - 4, sizeof tail);
    h ^= ((std::uint64_t{head} << 32) | tail) * 0xc2b2ae3d27d4eb4fu;
  } else if (n != 0) {
    const auto byte = [&](std::size_t i) { return std::uint64_t{static_cast<unsigned char>(p[i])}; };
    h ^= ((byte(0) << 16) | (byte(n / 2) << 8) | byte(n - 1)) * 0xc2b2ae3d27d4eb4fu;
  }
  return h;
}

// One event of a script and what the consumer must receive for it: the kind, the text size and the hash of
// the whole text block (all fields back to back), computed once when the scripts are built.
struct script_step {
  rill::event event;
  std::size_t text_size;
  std::uint64_t text_hash;
};

struct rng {
  std::uint64_t x;
  std::uint64_t next() noexcept {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
  std::size_t between(std::size_t lo, std::size_t hi) noexcept { return lo + next() % (hi - lo + 1); }
};

const std::string& corpus() {
  static const std::string text = [] {
    std::string t;
    rng r{0x1234567u};
    while (t.size() < 4096) {
      t += "{\"location\":\"Paris\",\"unit\":\"celsius\",\"days\":" + std::to_string(r.next() % 10) + ",\"note\":\"";
      t += token_text(r.next());
      t += "\"},";
    }
    return t;
  }();
  return text;
}

const std::vector<std::vector<script_step>>& scripts() {
  static const auto all = [] {
    std::vector<std::vector<script_step>> out(kScripts);
    const std::string& text = corpus();
    for (std::size_t s = 0; s < kScripts; ++s) {
      rng r{0x9e3779b97f4a7c15u + s * 7919};
      std::vector<rill::event> events;
      events.push_back(rill::event::message_start("msg_" + std::to_string(s), "model-x"));
      events.push_back(rill::event::content_block_start(0, rill::block_type::text));
      const std::size_t deltas = r.between(20, 60);
      for (std::size_t d = 0; d < deltas; ++d) {
        const std::size_t len = r.between(1, 40);
        events.push_back(rill::event::text_delta(0, std::string_view(text).substr(r.between(0, 2000), len)));
      }
      events.push_back(rill::event::content_block_stop(0));
      const bool tool = s % 3 == 0;
      if (tool) {
        events.push_back(rill::event::tool_call_start(1, "call_" + std::to_string(s), "get_weather"));
        const std::size_t fragments = r.between(2, 6);
        for (std::size_t f = 0; f < fragments; ++f) {
          const std::size_t len = r.between(200, 2000);
          // External text: borrowed from the corpus, copied into the stream's arena by the send.
          events.push_back(rill::event::tool_args_delta(1, std::string_view(text).substr(r.between(0, 2000), len)));
        }
        events.push_back(rill::event::tool_call_end(1));
      }
      rill::usage_counts usage;
      usage.input_tokens = static_cast<std::uint32_t>(r.between(10, 4000));
      usage.output_tokens = static_cast<std::uint32_t>(deltas);
      usage.total_tokens = usage.input_tokens + usage.output_tokens;
      events.push_back(rill::event::usage(usage));
      events.push_back(rill::event::message_stop(tool ? rill::stop_reason::tool_use : rill::stop_reason::end_turn));
      for (const auto& e : events) {
        std::string block;  // every field, as a received event's text block holds them
        for (std::size_t f = 0; f < e.field_count(); ++f) block += e.field(f);
        if (block.size() != e.text_size()) throw verification_error("llm_replay: script text size");
        out[s].push_back({e, e.text_size(), text_hash(block)});
      }
    }
    return out;
  }();
  return all;
}

// Per-stream progress of the producer or the consumer through its script.
struct cursor {
  std::uint32_t script = 0;
  std::uint32_t position = 0;
  std::uint64_t seq = 0;
  const script_step& step() const noexcept { return scripts()[script][position]; }
  void advance() noexcept {
    ++seq;
    if (++position == scripts()[script].size()) position = 0;
  }
};

// Kind, size and every byte of the text (its hash against the script's).
bool matches(const script_step& want, rill::event_kind kind, std::string_view text) noexcept {
  return kind == want.event.kind() && text.size() == want.text_size && text_hash(text) == want.text_hash;
}

// The peer's element: the replaced design's owned copy of an event.
struct owned_item {
  rill::event_kind kind = rill::event_kind::none;
  std::uint64_t seq = 0;
  std::uint64_t stamp = 0;
  std::string text;
};

struct replay_totals {
  std::uint64_t events = 0, bytes = 0;
};

// Runs one producer (cpu0) over `streams` queues round-robin, one event per visit, and one consumer
// (cpu1) sweeping them with batched takes. `Channels` adapts rill streams or mutex deques.
template <class Channels>
run_result replay(Channels& channels, std::size_t streams, const run_config& cfg) {
  const double tick_ns = ns_per_tick();
  // Each thread keeps its own cursors and totals (no shared cache lines) and copies them out at the end.
  auto start_cursors = [streams] {
    std::vector<cursor> v(streams);
    for (std::size_t s = 0; s < streams; ++s) v[s].script = static_cast<std::uint32_t>(s % kScripts);
    return v;
  };
  replay_totals sent_out, got_out;
  latency_histogram histogram_out;
  steady::time_point start, end;
  failure_note failure;
  std::vector<std::function<void(const std::atomic<bool>&)>> workers;
  workers.emplace_back([&](const std::atomic<bool>& stop) {
    std::vector<cursor> sender = start_cursors();
    replay_totals sent;
    start = steady::now();
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a time-out flag, orders nothing
      for (std::size_t s = 0; s < streams; ++s) {
        cursor& c = sender[s];
        const script_step& step = c.step();
        if (channels.try_send(s, step.event)) {
          ++sent.events;
          sent.bytes += step.text_size;
          c.advance();
        }
      }
    }
    channels.close_all();
    sent_out = sent;
  });
  workers.emplace_back([&](const std::atomic<bool>&) {
    std::vector<cursor> receiver = start_cursors();
    replay_totals got;
    latency_histogram histogram;
    std::vector<char> done(streams, 0);
    std::size_t open = streams;
    backoff wait;
    while (open != 0) {
      bool any = false;
      for (std::size_t s = 0; s < streams; ++s) {
        if (done[s]) continue;
        cursor& c = receiver[s];
        // Verifies after reading the clock: a sample ends when the event is in the consumer's hands, before
        // its bytes are hashed (a later event of the same drain waits for the hashes before it, alike in
        // both implementations; the hashing is in the rate).
        const auto handle = [&](rill::event_kind kind, std::uint64_t seq, std::string_view text,
                                std::uint64_t stamp) {
          const std::uint64_t now = tsc();
          // rdtsc is not ordered after the loads before it, and the vCPUs' counters may differ by a few
          // ticks: a read can precede the producer's stamp. Such a sample counts as 0, not as 2^64 ticks.
          const std::uint64_t ticks = now > stamp ? now - stamp : 0;
          histogram.add(static_cast<std::uint64_t>(static_cast<double>(ticks) * tick_ns));
          if (seq != c.seq || !matches(c.step(), kind, text)) [[unlikely]] {
            failure.fail("stream " + std::to_string(s) + " event " + std::to_string(c.seq) + " wrong");
          }
          ++got.events;
          got.bytes += text.size();
          c.advance();
        };
        const std::size_t n = channels.drain(s, handle);
        if (n != 0) {
          any = true;
        } else if (channels.finished(s, handle)) {
          done[s] = 1;
          --open;
        }
      }
      if (any) {
        wait.reset();
      } else {
        wait.pause();
      }
    }
    end = steady::now();
    got_out = got;
    histogram_out = std::move(histogram);
  });
  run_workers(std::move(workers), cfg.run_time);
  failure.throw_if_failed("llm_replay");
  const replay_totals& sent = sent_out;
  const replay_totals& got = got_out;
  if (got.events != sent.events || got.bytes != sent.bytes) {
    throw verification_error("llm_replay: sent " + std::to_string(sent.events) + " events, received " +
                             std::to_string(got.events));
  }
  run_result r;
  const double seconds = seconds_between(start, end);
  r.events_per_sec = static_cast<double>(got.events) / seconds;
  r.bytes_per_sec = static_cast<double>(got.bytes) / seconds;
  r.set_latency(histogram_out);
  return r;
}

struct rill_channels {
  explicit rill_channels(std::size_t streams) {
    rill::stream_options o;
    o.capacity = kReplayCapacity;
    o.arena_bytes = kReplayArena;
    o.stamping = rill::clock_kind::tsc;  // the stream stamps each send; the consumer subtracts
    o.allocate_on_first_send = false;     // allocation is set-up, not replay
    list.reserve(streams);
    for (std::size_t s = 0; s < streams; ++s) list.push_back(std::make_unique<rill::stream>(o));
  }
  bool try_send(std::size_t s, const rill::event& e) noexcept { return list[s]->try_send(e) == rill::status::ok; }
  template <class Handle>
  std::size_t drain(std::size_t s, const Handle& handle) {
    return list[s]->try_drain(
        [&](const rill::event& e, bool) { handle(e.kind(), e.seq(), e.text_block(), e.timestamp()); }, 64);
  }
  // True once the stream is closed and drained. Closing happens-before [C3], so one more drain is exact.
  template <class Handle>
  bool finished(std::size_t s, const Handle& handle) {
    if (!list[s]->is_closed()) return false;
    return drain(s, handle) == 0;
  }
  void close_all() noexcept {
    for (auto& s : list) s->close();
  }
  std::vector<std::unique_ptr<rill::stream>> list;
};

struct mutex_deque_channels {
  explicit mutex_deque_channels(std::size_t streams) : sequence(streams, 0) {
    list.reserve(streams);
    for (std::size_t s = 0; s < streams; ++s) list.push_back(std::make_unique<mutex_deque<owned_item>>(kReplayCapacity));
  }
  bool try_send(std::size_t s, const rill::event& e) {
    // Stamped before the text copy, as rill's general send path reads its clock before copying text.
    owned_item item{e.kind(), sequence[s], tsc(), std::string(e.text_block())};
    if (!list[s]->try_push(std::move(item))) return false;
    ++sequence[s];
    return true;
  }
  template <class Handle>
  std::size_t drain(std::size_t s, const Handle& handle) {
    const std::size_t n = list[s]->try_pop_many(buffer, 64);
    for (std::size_t i = 0; i < n; ++i) {
      const owned_item& it = buffer[i];
      handle(it.kind, it.seq, std::string_view(it.text), it.stamp);
    }
    return n;
  }
  template <class Handle>
  bool finished(std::size_t s, const Handle&) {
    return list[s]->closed_and_empty();
  }
  void close_all() {
    for (auto& q : list) q->close();
  }
  std::vector<std::unique_ptr<mutex_deque<owned_item>>> list;
  std::vector<std::uint64_t> sequence;  // producer side
  alignas(rill::detail::kFalseSharingRange) owned_item buffer[64];  // consumer side, off the producer's lines
};

template <class Channels>
std::function<run_result(const run_config&)> replay_case(std::size_t streams) {
  return [=](const run_config& cfg) {
    auto channels = std::make_unique<Channels>(streams);
    return replay(*channels, streams, cfg);
  };
}

}  // namespace

std::vector<scenario_entry> replay_scenarios() {
  std::vector<scenario_entry> out;
  out.push_back({"memory_buffered_event", [](const run_config& cfg) {
                   scenario_case sc{"memory_buffered_event",
                                    {{"events", std::to_string(buffered_count(cfg))}},
                                    metric::bytes,
                                    {},
                                    ""};
                   sc.impls = {{"rill", {}, rill_buffered}, {"shared_mutex_map", {}, shared_mutex_map_buffered}};
                   sc.one_thread = true;
                   sc.note = "heap bytes in use (mallinfo2) per buffered text delta, stream + ring + arena "
                             "included; events_per_sec = single-thread buffered sends/s";
                   return std::vector<scenario_case>{sc};
                 }});
  out.push_back({"llm_replay", [](const run_config& cfg) {
                   std::vector<scenario_case> cases;
                   (void)cfg;
                   for (const std::size_t streams : {std::size_t{1}, std::size_t{100}, std::size_t{10000}}) {
                     scenario_case sc{"llm_replay", {{"streams", std::to_string(streams)}}, metric::throughput, {}, ""};
                     sc.impls = {{"rill", {}, replay_case<rill_channels>(streams)},
                                 {"mutex_deque", {}, replay_case<mutex_deque_channels>(streams)}};
                     sc.note =
                         "one producer (cpu0) round-robin over the streams, one consumer (cpu1) draining "
                         "64 per visit and hashing every text byte; latency = consumer rdtsc (read before "
                         "the hash) - stamp taken at send (rill stamping=tsc)";
                     cases.push_back(std::move(sc));
                   }
                   return cases;
                 }});
  return out;
}

}  // namespace rill_bench
