// ring_rtt_perf: what a round trip through a ring costs on this machine, against two core-to-core hops.
//
//   ring_rtt_perf [--rounds N] [--trips N]
//
// Ping (cpu0) sends one message and waits for its echo from pong (cpu1); nothing else is in flight. The
// same trip runs over several layouts, interleaved round by round (each layout once per round):
//   c2c                  one atomic word per direction, rewritten every trip (rill-bench's c2c_floor);
//   ring L x S           L 64-byte slots per direction, slot k on cache line k*S, each slot published by
//                        its own sequence word and nothing else (rill-bench's ring_floor is 65536 x 1);
//   ring 65536 x 1 +pfw D   the same, each side also write-prefetching the slot it fills D trips ahead;
//   ring 65536 x S huge  the same on 2 MiB pages (madvise(MADV_HUGEPAGE); the program reports whether the
//                        kernel granted them);
//   channel capacity C   rill's SPSC ring alone (detail::spsc_channel: room check, fill, publish), no stream;
//   rill capacity C      two rill::stream (SPSC, default options, capacity C), try_send / try_receive;
//   ... padded           the same with stream_options::layout = slot_layout::padded.
// Each layout reports the medians over rounds of its per-round p50 and mid-half mean (ns; every sample
// includes one rdtsc read), and the mean's ratio to c2c's. A core-to-core probe runs before and after
// every round; rounds whose probes differ by more than 1.5x ran on a different vCPU placement and are left
// out of the medians (counted).
//
// What it shows (docs/benchmarking.md, "Round trip"): a ring costs two hops only while it cycles through
// a few dozen cache lines that are not neighbours; once a ring's lines outnumber what stays hot, or its
// slots sit on adjacent lines, every trip costs about 40 ns more, whatever the prefetch distance or page
// size.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <new>  // std::bad_alloc
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "perf_support.hpp"
#include "rill/clock.hpp"
#include "rill/detail/layout.hpp"
#include "rill/stream.hpp"

namespace {

using rill_bench::median_of;
constexpr const char* kProgram = "ring_rtt_perf";

struct alignas(64) slot {
  std::atomic<std::uint64_t> seq{0};  // trips count from 1: no slot starts published
  std::uint64_t payload[7] = {};
};
static_assert(sizeof(slot) == 64);

constexpr std::size_t kHugePage = std::size_t{2} << 20;

// One direction of a bare ring: `lines` slots (a power of two), slot k on line k * stride. Its memory is
// 2 MiB-aligned either way, so the two page sizes differ in nothing else; `huge_pages` asks the kernel to
// back it with 2 MiB pages, and without it the ring asks for 4 KiB pages.
class bare_ring {
 public:
  bare_ring(std::size_t lines, std::size_t stride, bool huge_pages)
      : lines_(lines),
        stride_(stride),
        bytes_((lines * stride * sizeof(slot) + kHugePage - 1) / kHugePage * kHugePage),
        memory_(std::aligned_alloc(kHugePage, bytes_)) {
    if (memory_ == nullptr) throw std::bad_alloc();
    // Advice only (huge_page_kib() tells the outcome). The other rows opt out, in case the kernel puts every
    // large aligned block on huge pages (transparent huge pages "always").
    madvise(memory_, bytes_, huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    slots_ = static_cast<slot*>(memory_);
    std::uninitialized_value_construct_n(slots_, lines * stride);  // touches every slot: the pages exist now
  }
  bare_ring(const bare_ring&) = delete;
  bare_ring& operator=(const bare_ring&) = delete;
  ~bare_ring() { std::free(memory_); }  // slot is trivially destructible
  // A mask, not `%`: a division on every trip would be a cost the rill rows do not have.
  slot& at(std::uint64_t trip) noexcept { return slots_[(trip & (lines_ - 1)) * stride_]; }

 private:
  std::size_t lines_, stride_, bytes_;
  void* memory_;
  slot* slots_ = nullptr;
};

// This process's anonymous memory on huge pages (KiB), from /proc/self/smaps_rollup; 0 when unreadable.
std::uint64_t huge_page_kib() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string key;
  std::uint64_t kib = 0;
  while (in >> key) {
    if (key == "AnonHugePages:") {
      in >> kib;
      return kib;
    }
    in.ignore(1 << 12, '\n');
  }
  return 0;
}
std::uint64_t g_most_huge_page_kib = 0;  // the most seen while a huge-page ring pair existed

// The middle of a sample of round trips: its p50 and the mean of its middle half, both in ns. This VM's
// TSC advances in steps of about 10 ns, so the p50 moves in those steps; the interquartile mean does not.
struct trip_ns {
  double p50 = 0;
  double iq_mean = 0;
};

// Runs `trips` round trips: `ping(i)` on cpu0 sends trip i and waits for its echo, `pong(i)` on cpu1 waits
// for trip i and echoes it. Times every trip after the first 10% (warm-up). After each trip's timing,
// `echo_correct(i)` says whether the echo carried what was sent; a wrong echo ends the program (exit 1).
//
// Both sides run on threads of their own, and what each writes per trip lives on its own stack: the rows'
// queues, and the closures pong reads them through, sit on the calling thread's stack, which nothing writes
// during the trips. (While ping ran on the calling thread, the rill rows ran 30 ns slower near and 150 ns
// far; most likely its per-trip writes there, the sample vector's header among them, shared a line with
// what pong read on every trip.)
template <class Ping, class Pong, class EchoCorrect>
trip_ns round_trip_ns(const char* what, std::uint64_t trips, Ping ping, Pong pong, EchoCorrect echo_correct) {
  std::vector<std::uint64_t> ticks;  // moved in by ping after its last trip
  std::uint64_t wrong = 0;           // written by ping after its last trip
  std::atomic<bool> ready{false};
  std::thread echo([&] {
    rill_bench::pin_this_thread(1);
    ready.store(true, std::memory_order_release);  // pairs with ping's acquire: pong is pinned first
    for (std::uint64_t i = 1; i <= trips; ++i) pong(i);
  });
  std::thread timer([&] {
    rill_bench::pin_this_thread(0);
    while (!ready.load(std::memory_order_acquire)) rill::detail::cpu_relax();  // pairs with pong's release
    const std::uint64_t warmup = trips / 10;
    std::vector<std::uint64_t> samples(trips - warmup);
    std::uint64_t wrong_here = 0;
    for (std::uint64_t i = 1; i <= trips; ++i) {
      const std::uint64_t t0 = rill::clock::tsc_now();
      ping(i);
      const std::uint64_t t1 = rill::clock::tsc_now();
      if (i > warmup) samples[i - warmup - 1] = t1 - t0;
      if (!echo_correct(i)) [[unlikely]]
        ++wrong_here;
    }
    ticks = std::move(samples);
    wrong = wrong_here;
  });
  timer.join();
  echo.join();
  if (wrong != 0) {
    std::fprintf(stderr, "ring_rtt_perf: %llu wrong echoes through %s\n",
                 static_cast<unsigned long long>(wrong), what);
    std::exit(1);
  }
  std::sort(ticks.begin(), ticks.end());
  const double ns_per_tick = rill::clock::tsc_calibration().ns_per_tick;
  double middle = 0;
  for (std::size_t k = ticks.size() / 4; k < ticks.size() * 3 / 4; ++k)
    middle += static_cast<double>(ticks[k]);
  return {static_cast<double>(ticks[ticks.size() / 2]) * ns_per_tick,
          middle / static_cast<double>(ticks.size() * 3 / 4 - ticks.size() / 4) * ns_per_tick};
}

trip_ns c2c_round_trip(std::uint64_t trips) {
  struct alignas(rill::detail::kFalseSharingRange) word {
    std::atomic<std::uint64_t> value{0};
  };
  auto there = std::make_unique<word>();
  auto back = std::make_unique<word>();
  return round_trip_ns(
      "c2c", trips,
      [&](std::uint64_t i) {
        there->value.store(i, std::memory_order_release);  // pairs with pong's acquire
        while (back->value.load(std::memory_order_acquire) != i)
          rill::detail::cpu_relax();  // pairs with pong
      },
      [&](std::uint64_t i) {
        while (there->value.load(std::memory_order_acquire) != i)
          rill::detail::cpu_relax();                      // pairs with ping
        back->value.store(i, std::memory_order_release);  // pairs with ping's acquire
      },
      [](std::uint64_t) { return true; });  // ping's wait accepts only the echo of its own trip
}

// PREFETCHW: fetch the line for writing. __builtin_prefetch(p, 1) emits it only when the target enables
// PRFCHW (the baseline x86-64 target does not, and gets a read prefetch), so it is spelled out.
inline void write_prefetch(const void* p) noexcept {
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
}

// `prefetch_ahead`: 0 for none, else each side write-prefetches the slot it fills that many trips later.
trip_ns ring_round_trip(std::uint64_t trips, std::size_t lines, std::size_t stride,
                        std::uint64_t prefetch_ahead, bool huge_pages) {
  bare_ring there(lines, stride, huge_pages), back(lines, stride, huge_pages);
  if (huge_pages) g_most_huge_page_kib = std::max(g_most_huge_page_kib, huge_page_kib());
  return round_trip_ns(
      "a bare ring", trips,
      [&](std::uint64_t i) {
        slot& out = there.at(i);
        for (std::uint64_t& w : out.payload) w = i;
        out.seq.store(i, std::memory_order_release);  // publishes the payload; pairs with pong's acquire
        // Pairs with pong's release: the echoed payload is visible.
        while (back.at(i).seq.load(std::memory_order_acquire) != i) rill::detail::cpu_relax();
        if (prefetch_ahead != 0) write_prefetch(&there.at(i + prefetch_ahead));
      },
      [&](std::uint64_t i) {
        slot& in = there.at(i);
        while (in.seq.load(std::memory_order_acquire) != i) rill::detail::cpu_relax();  // pairs with ping
        slot& out = back.at(i);
        for (std::size_t k = 0; k < 7; ++k) out.payload[k] = in.payload[k];
        out.seq.store(i, std::memory_order_release);  // pairs with ping's acquire
        if (prefetch_ahead != 0) write_prefetch(&back.at(i + prefetch_ahead));
      },
      [&](std::uint64_t i) {
        // Pong rewrites this slot only a lap later, after a ping not sent yet.
        const slot& in = back.at(i);
        return std::all_of(std::begin(in.payload), std::end(in.payload),
                           [i](std::uint64_t w) { return w == i; });
      });
}

// rill's SPSC ring without the stream: detail::spsc_channel used directly (its room check on the slot's
// free mark, its position word, fill() and publish()), the channel object followed by its slots in one block as
// rill::stream allocates them. Between the bare ring and the rill rows: what the bounded ring's own
// bookkeeping costs, apart from the stream's API (validation, the closed check, the wake-up checks).
class channel_block {
 public:
  channel_block(std::size_t capacity, unsigned spacing_log2)
      : memory_(::operator new (kSlotsOffset + rill::detail::slot_ring::bytes_for(capacity, spacing_log2),
                                std::align_val_t{rill::detail::kFalseSharingRange})),
        channel_(new (memory_) rill::detail::spsc_channel(
            rill::detail::slot_ring(
                reinterpret_cast<rill::event*>(static_cast<char*>(memory_) + kSlotsOffset), capacity,
                spacing_log2),
            nullptr, 0, nullptr)) {}
  channel_block(const channel_block&) = delete;
  channel_block& operator=(const channel_block&) = delete;
  ~channel_block() {
    channel_->~spsc_channel();
    ::operator delete (memory_, std::align_val_t{rill::detail::kFalseSharingRange});
  }
  bool try_send(const rill::event& e) noexcept {
    const std::uint64_t position = channel_->next_sequence();
    rill::event* const slot = channel_->producer_slot(position);
    if (!rill::detail::spsc_channel::is_free(slot)) return false;
    rill::detail::spsc_channel::fill(slot, e);
    channel_->publish(slot, position);
    return true;
  }
  bool try_receive(rill::event& out) noexcept {
    const std::uint64_t position = channel_->consumer_position();
    rill::event* const slot = channel_->consumer_slot(position);
    if (!rill::detail::spsc_channel::is_published(slot, position)) return false;
    out = *slot;
    channel_->pop_one(slot, position);
    return true;
  }

 private:
  static constexpr std::size_t kSlotsOffset =
      rill::detail::align_up(sizeof(rill::detail::spsc_channel), rill::detail::kFalseSharingRange);
  void* memory_;
  rill::detail::spsc_channel* channel_;
};

trip_ns channel_round_trip(std::uint64_t trips, std::size_t capacity, unsigned spacing_log2) {
  channel_block there(capacity, spacing_log2), back(capacity, spacing_log2);
  const rill::event message = rill::event::text_delta(0, "ping");
  struct alignas(rill::detail::kFalseSharingRange) reply_box {
    rill::event reply;
  } box;  // ping's per-trip writes, on lines of their own
  return round_trip_ns(
      "rill's channel", trips,
      [&](std::uint64_t) {
        while (!there.try_send(message)) rill::detail::cpu_relax();
        while (!back.try_receive(box.reply)) rill::detail::cpu_relax();
      },
      [&](std::uint64_t) {
        rill::event echo;
        while (!there.try_receive(echo)) rill::detail::cpu_relax();
        while (!back.try_send(echo)) rill::detail::cpu_relax();
      },
      [&](std::uint64_t i) {  // the echo of trip i carries sequence number i - 1 (fill() keeps it)
        return box.reply.seq() == i - 1 && box.reply.kind() == rill::event_kind::text_delta &&
               box.reply.field(0) == "ping";
      });
}

trip_ns rill_round_trip(std::uint64_t trips, std::size_t capacity, rill::slot_layout layout) {
  rill::stream_options options;
  options.capacity = capacity;
  options.layout = layout;
  options.allocate_on_first_send = false;
  rill::stream there(options), back(options);
  const rill::event message = rill::event::text_delta(0, "ping");
  rill::received reply;
  return round_trip_ns(
      "rill", trips,
      [&](std::uint64_t) {
        while (there.try_send(message) != rill::status::ok) rill::detail::cpu_relax();
        while (back.try_receive(reply) != rill::status::ok) rill::detail::cpu_relax();
      },
      [&](std::uint64_t) {
        rill::received r;
        while (there.try_receive(r) != rill::status::ok) rill::detail::cpu_relax();
        while (back.try_send(*r) != rill::status::ok) rill::detail::cpu_relax();
      },
      [&](std::uint64_t i) {  // the echo of trip i is the stream's event i - 1, with the text sent
        return reply->seq() == i - 1 && reply->kind() == rill::event_kind::text_delta &&
               reply->field(0) == "ping";
      });
}

struct layout {
  layout(std::string n, std::function<trip_ns(std::uint64_t trips)> r)
      : name(std::move(n)), run(std::move(r)) {}
  std::string name;
  std::function<trip_ns(std::uint64_t trips)> run;
  std::vector<double> p50s, iq_means;  // one each per kept round
};

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t rounds = 7, trips = 50000;
  rill_perf::parse_count_flags(kProgram, "ring_rtt_perf [--rounds N] [--trips N]", argc, argv,
                               {{"--rounds", &rounds}, {"--trips", &trips}});
  trips = std::max<std::uint64_t>(trips, 100);

  std::vector<layout> layouts;
  layouts.emplace_back("c2c (one word per direction)", c2c_round_trip);
  for (std::size_t lines : {2, 4, 16, 64, 256, 1024, 65536}) {
    for (std::size_t stride : {1, 2, 3}) {
      if (stride == 3 && lines != 64 && lines != 256) continue;
      layouts.emplace_back("ring " + std::to_string(lines) + " x " + std::to_string(stride),
                           [=](std::uint64_t t) { return ring_round_trip(t, lines, stride, 0, false); });
    }
  }
  for (std::uint64_t ahead : {1, 4, 16, 64}) {
    layouts.emplace_back("ring 65536 x 1 +pfw " + std::to_string(ahead),
                         [=](std::uint64_t t) { return ring_round_trip(t, 65536, 1, ahead, false); });
  }
  for (std::size_t stride : {1, 2}) {
    layouts.emplace_back("ring 65536 x " + std::to_string(stride) + " huge",
                         [=](std::uint64_t t) { return ring_round_trip(t, 65536, stride, 0, true); });
  }
  for (std::size_t capacity : {16, 65536}) {
    layouts.emplace_back("channel capacity " + std::to_string(capacity),
                         [=](std::uint64_t t) { return channel_round_trip(t, capacity, 0); });
    layouts.emplace_back("channel capacity " + std::to_string(capacity) + " padded",
                         [=](std::uint64_t t) { return channel_round_trip(t, capacity, 1); });
  }
  for (std::size_t capacity : {4, 16, 64, 1024, 65536}) {
    layouts.emplace_back("rill capacity " + std::to_string(capacity), [=](std::uint64_t t) {
      return rill_round_trip(t, capacity, rill::slot_layout::packed);
    });
  }
  for (std::size_t capacity : {16, 64, 65536}) {
    layouts.emplace_back("rill capacity " + std::to_string(capacity) + " padded", [=](std::uint64_t t) {
      return rill_round_trip(t, capacity, rill::slot_layout::padded);
    });
  }

  std::printf("ring_rtt_perf: %llu rounds of %llu round trips per layout, ping on cpu0, pong on cpu1\n",
              static_cast<unsigned long long>(rounds), static_cast<unsigned long long>(trips));
  const std::uint64_t skipped = rill_perf::run_probed_rounds(
      rounds,
      [&] {
        std::vector<trip_ns> round;
        for (layout& l : layouts) round.push_back(l.run(trips));
        return round;
      },
      [](const std::vector<trip_ns>&) {},  // the table after the rounds has the figures
      [&](const std::vector<trip_ns>& round) {
        for (std::size_t i = 0; i < layouts.size(); ++i) {
          layouts[i].p50s.push_back(round[i].p50);
          layouts[i].iq_means.push_back(round[i].iq_mean);
        }
      });
  if (skipped == rounds) {
    std::printf("every round changed placement; nothing to report\n");
    return 0;  // not an error: exit status 1 is kept for echoes out of order
  }
  const double floor = median_of(layouts[0].iq_means);
  std::printf("\n%-30s %10s %16s %12s\n", "layout", "p50 (ns)", "mid-half mean", "x two hops");
  for (const layout& l : layouts) {
    std::printf("%-30s %10.0f %16.1f %11.2fx\n", l.name.c_str(), median_of(l.p50s), median_of(l.iq_means),
                median_of(l.iq_means) / floor);
  }
  std::printf("(medians over %llu rounds; %llu left out for a placement change)\n",
              static_cast<unsigned long long>(rounds - skipped), static_cast<unsigned long long>(skipped));
  if (g_most_huge_page_kib != 0) {
    std::printf("(huge rows: %llu KiB of this process's memory was on huge pages during them)\n",
                static_cast<unsigned long long>(g_most_huge_page_kib));
  } else {
    std::printf("(huge rows: the kernel granted no huge pages, so they ran on 4 KiB pages)\n");
  }
  return 0;
}
