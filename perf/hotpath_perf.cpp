// hotpath_perf: runs exactly N iterations of one hot path, single-threaded, so that callgrind can count its
// instructions. perf/check_callgrind.sh runs it under
//   valgrind --tool=callgrind --toggle-collect=rill_hotpath_*
// which counts only the loop functions below (set-up, first-send allocation and warm-up are excluded).
//
//   hotpath_perf PATH [ITERATIONS]     PATH: inline | inline_nostamp | arena | claim_commit | manager_get
//                                           | multicast | multicast_text
//                                           | peer_boost_spsc | peer_moodycamel_rwq | list
//
// The peer_* paths are the same push + pop of a 64-byte element through boost::lockfree::spsc_queue and
// moodycamel::ReaderWriterQueue, for comparison only (they have no budget): rill's send + receive does
// more (validation, sequence numbers, the wake-up checks, a stamp when asked), and these show how much more.
//
// Each loop is a separate extern "C" noinline function, so its name is stable for --toggle-collect.
#include <boost/lockfree/spsc_queue.hpp>
#include <readerwriterqueue/readerwriterqueue.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rill/manager.hpp"
#include "rill/multicast.hpp"
#include "rill/stream.hpp"

namespace {

rill::stream_options options(rill::clock_kind stamping) {
  rill::stream_options o;
  o.capacity = 1024;
  o.arena_bytes = 64 * 1024;
  o.stamping = stamping;
  o.allocate_on_first_send = false;
  return o;
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "hotpath_perf: %s\n", what);
  std::exit(1);
}

const char kLongText[] =
    "{\"location\":\"Paris\",\"unit\":\"celsius\",\"days\":3,\"note\":\"a tool argument fragment\"}";  // > 40 bytes

}  // namespace

extern "C" {

// One multicast try_send + one try_receive by a hold subscriber (its cursor published per event).
__attribute__((noinline)) std::uint64_t rill_hotpath_multicast(rill::multicast_stream& s, rill::subscription& sub,
                                                              const rill::event& e, std::uint64_t iterations) {
  rill::event out;
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    if (s.try_send(e) != rill::status::ok) fail("multicast send refused");
    if (sub.try_receive(out) != rill::status::ok) fail("multicast receive found nothing");
    sum += out.seq();
  }
  return sum;
}

// One try_send + one try_receive of a 64-byte event with inline text.
__attribute__((noinline)) std::uint64_t rill_hotpath_send_receive(rill::stream& s, const rill::event& e,
                                                                 std::uint64_t iterations) {
  rill::received r;
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    if (s.try_send(e) != rill::status::ok) fail("send refused");
    if (s.try_receive(r) != rill::status::ok) fail("receive found nothing");
    sum += r->seq();
  }
  return sum;
}

// One claim of `text_bytes` arena bytes, the event built in place, commit, receive, release.
__attribute__((noinline)) std::uint64_t rill_hotpath_claim_commit(rill::stream& s, std::size_t text_bytes,
                                                                 std::uint64_t iterations) {
  rill::received r;
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    rill::send_claim c;
    if (s.try_claim(c, text_bytes) != rill::status::ok) fail("claim refused");
    std::memcpy(c.text(), kLongText, text_bytes);
    ::new (&c.slot()) rill::event(rill::event::text_delta(0, std::string_view(c.text(), text_bytes)));
    if (s.commit(c) != rill::status::ok) fail("commit refused");
    if (s.try_receive(r) != rill::status::ok) fail("receive found nothing");
    sum += r->text_size();
    r.reset();
  }
  return sum;
}

// A 64-byte element, as rill-bench's peers carry.
struct alignas(64) peer_item {
  std::uint64_t seq = 0;
  std::uint64_t value = 0;
  unsigned char pad[48] = {};
};

using boost_queue = boost::lockfree::spsc_queue<peer_item>;
using rwq_queue = moodycamel::ReaderWriterQueue<peer_item>;

// One push + one pop through boost::lockfree::spsc_queue (comparison only).
__attribute__((noinline)) std::uint64_t rill_hotpath_peer_boost(boost_queue& q, const peer_item& e,
                                                               std::uint64_t iterations) {
  peer_item out;
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    if (!q.push(e)) fail("boost push refused");
    if (!q.pop(out)) fail("boost pop found nothing");
    sum += out.seq;
  }
  return sum;
}

// One try_enqueue + one try_dequeue through moodycamel::ReaderWriterQueue (comparison only).
__attribute__((noinline)) std::uint64_t rill_hotpath_peer_rwq(rwq_queue& q, const peer_item& e,
                                                             std::uint64_t iterations) {
  peer_item out;
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    if (!q.try_enqueue(e)) fail("rwq enqueue refused");
    if (!q.try_dequeue(out)) fail("rwq dequeue found nothing");
    sum += out.seq;
  }
  return sum;
}

// One stream_manager::get() hit, cycling over `ids`.
__attribute__((noinline)) std::uint64_t rill_hotpath_manager_get(const rill::stream_manager& m,
                                                                const std::vector<std::string>& ids,
                                                                std::uint64_t iterations) {
  rill::stream_ref ref;
  std::uint64_t sum = 0;
  std::size_t next = 0;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    if (m.get(ids[next], ref) != rill::status::ok) fail("lookup missed");
    sum += ref.id().size();
    if (++next == ids.size()) next = 0;
  }
  return sum;
}

}  // extern "C"

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "list";
  const std::uint64_t iterations = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 100000;
  if (path == "list") {
    std::printf("inline\ninline_nostamp\narena\nclaim_commit\nmanager_get\nmulticast\nmulticast_text\npeer_boost_spsc\n"
                "peer_moodycamel_rwq\n");
    return 0;
  }
  std::uint64_t sum = 0;
  if (path == "inline" || path == "inline_nostamp" || path == "arena") {
    rill::stream s(options(path == "inline_nostamp" ? rill::clock_kind::none : rill::clock_kind::coarse));
    const rill::event e = path == "arena" ? rill::event::text_delta(0, kLongText)  // external: copied to the arena
                                          : rill::event::text_delta(0, "hello");
    rill::received r;
    for (int i = 0; i < 16; ++i) {  // warm-up outside the counted function: first touch of ring and arena
      if (s.try_send(e) != rill::status::ok || s.try_receive(r) != rill::status::ok) fail("warm-up failed");
    }
    r.reset();
    sum += rill_hotpath_send_receive(s, e, iterations);
  } else if (path == "multicast" || path == "multicast_text") {
    rill::multicast_options o;
    o.capacity = 1023;
    o.text_bytes = 64 * 1024;
    rill::multicast_stream s(o);
    rill::subscription sub;
    if (s.subscribe(sub, {rill::slow_reader::hold, rill::start_at::newest}) != rill::status::ok) fail("subscribe");
    const rill::event e = path == "multicast_text" ? rill::event::text_delta(0, kLongText)  // copied to the text ring
                                                   : rill::event::text_delta(0, "hello");
    rill::event out;
    for (int i = 0; i < 2048; ++i) {  // warm-up, not counted: every slot and text page written once
      if (s.try_send(e) != rill::status::ok || sub.try_receive(out) != rill::status::ok) fail("multicast warm-up");
    }
    sum += rill_hotpath_multicast(s, sub, e, iterations);
  } else if (path == "claim_commit") {
    rill::stream s(options(rill::clock_kind::coarse));
    rill::received r;
    for (int i = 0; i < 16; ++i) {  // warm-up outside the counted function
      const rill::event e = rill::event::text_delta(0, kLongText);
      if (s.try_send(e) != rill::status::ok || s.try_receive(r) != rill::status::ok) fail("warm-up failed");
    }
    r.reset();
    sum += rill_hotpath_claim_commit(s, 64, iterations);
  } else if (path == "manager_get") {
    rill::manager_options o;
    o.hash_seed = 0x5eed;  // a fixed key: the probe runs, and so the count, repeat exactly
    rill::stream_manager m(o);
    std::vector<std::string> ids;
    rill::stream_ref ref;
    for (int i = 0; i < 1000; ++i) {
      ids.push_back("req_" + std::to_string(i * 7919) + "_gateway");
      if (m.create(ids.back(), ref) != rill::status::ok) fail("create failed");
    }
    ref.reset();
    sum += rill_hotpath_manager_get(m, ids, iterations);
  } else if (path == "peer_boost_spsc") {
    auto q = std::make_unique<boost_queue>(1024);
    const peer_item e{};
    sum += rill_hotpath_peer_boost(*q, e, iterations);
  } else if (path == "peer_moodycamel_rwq") {
    auto q = std::make_unique<rwq_queue>(1024);
    const peer_item e{};
    sum += rill_hotpath_peer_rwq(*q, e, iterations);
  } else {
    std::fprintf(stderr, "hotpath_perf: unknown path %s (try: list)\n", path.c_str());
    return 2;
  }
  std::printf("%s %llu iterations (checksum %llu)\n", path.c_str(), static_cast<unsigned long long>(iterations),
              static_cast<unsigned long long>(sum));
  return 0;
}
