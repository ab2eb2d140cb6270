// rill/multicast.hpp: one producer, many subscribers, each with its own cursor over one retained ring.
//
// A multicast_stream is a Disruptor-style ring of 64-byte event slots plus a text ring for text longer than
// an event holds inline. The producer writes each event once; every subscriber reads it through its own
// cursor, so the client writer, a logger and a metrics reader see the same events without copies between
// them. The ring doubles as the retention buffer: the last `capacity` events (text included, while the
// text ring holds it) stay readable, so a reconnecting client resumes after the last sequence number it saw
// (SSE Last-Event-ID).
//
// Slow readers. Each subscriber picks what happens when it falls a whole ring behind:
//   slow_reader::hold    the producer waits for it (send() blocks, try_send() returns full, or the event is
//                        dropped under backpressure::drop). Nothing is lost to this subscriber. Once it
//                        has been a whole ring behind, the producer resumes when it has freed 1/16 of the
//                        ring (one slot for rings under 32 slots), so the two sides work in bursts.
//   slow_reader::skip    the producer overwrites; the subscriber's next receive returns status::lagged with
//                        the exact number of events it missed, then continues at the oldest retained event.
//   slow_reader::detach  as skip, but the subscriber is cut off: status::detached from then on.
// Whatever a subscriber does, memory stays what the constructor allocated.
//
// Guarantees
//   - Every subscriber sees events in send order, each at most once; for each subscriber
//     delivered + missed (the sum of its lagged counts) = events sent from its start to its cursor.
//   - try_send / try_receive never block, allocate or throw. A subscriber that is not `hold` never slows
//     the producer: its reads are validated after the fact (a sequence lock on each slot), not reserved.
//   - A `hold` subscriber is never overwritten once subscribe() or resume() has returned, wherever it
//     starts: at the newest event, at the oldest retained one, or anywhere in the backlog by resume(). A
//     send that runs while subscribe() does is accounted for: the subscriber starts after whatever that
//     send may overwrite (resume() then returns not_retained rather than start below it). The one
//     exception needs a failing membarrier call after a successful registration; such a subscriber may
//     then lose events published during the call, reported as status::lagged with the exact count.
//   - Blocking calls spin briefly, then park on a futex word; close() and stop tokens wake them. Deadlines
//     are absolute std::chrono::steady_clock times.
// Not guaranteed
//   - More than one producer thread at a time (undefined behaviour; put a flavour::mpmc stream in front to
//     fan in). Fairness between subscribers. Text of retained events when the text ring is smaller than the
//     ring's share of it: an event whose text was overwritten counts as missed (lagged), like an overwritten
//     slot, and is no longer retained.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stop_token>

#include "rill/clock.hpp"
#include "rill/detail/layout.hpp"
#include "rill/detail/parking.hpp"
#include "rill/detail/wait_loop.hpp"
#include "rill/event.hpp"
#include "rill/status.hpp"
#include "rill/stream.hpp"

namespace rill {

// What happens to a subscriber that falls a whole ring behind the producer (see the banner).
enum class slow_reader : std::uint8_t { hold, skip, detach };

// Where a new subscriber starts.
enum class start_at : std::uint8_t {
  newest,  // the next event published once subscribe() has attached it (a send racing with the call may be
           // delivered too); every event sent after subscribe() returns is
  oldest,  // the oldest event still retained
};

std::string_view to_string(slow_reader policy) noexcept;
std::string_view to_string(start_at start) noexcept;

struct multicast_options {
  // Events retained, and how far a `hold` subscriber may fall behind before the producer waits. The ring
  // has round_up_pow2(capacity + 1) slots; one is always being rewritten, so at least `capacity` events
  // are retained. At least 1, at most 2^30.
  std::size_t capacity = 1024;
  // Text ring bytes for text longer than an event holds inline; rounded up to a power of two, at least 256;
  // 0 disables it (long text then gets status::too_large). Text larger than the ring gets too_large.
  std::size_t text_bytes = 64 * 1024;
  // What a send does when a `hold` subscriber is a whole ring (or text ring) behind: block waits (send)
  // or returns full (try_send); drop rejects the event (full) and counts it dropped. drop_oldest is not
  // meaningful here (skip subscribers already see the newest events) and is refused.
  backpressure policy = backpressure::block;
  // Clock the stream stamps each event with (see stream_options::stamping; none by default).
  clock_kind stamping = clock_kind::none;
  // Subscribers attached at the same time; subscribe() returns full past it. 1 to 4096.
  std::size_t max_subscribers = 64;
  // Pause-loop iterations a blocking call spins before it parks.
  std::uint32_t spin_iterations = 512;
};

struct subscribe_options {
  slow_reader policy = slow_reader::skip;
  start_at start = start_at::newest;
};

// A snapshot of a multicast stream's counters (exact when no thread is using the stream).
struct multicast_counters {
  std::uint64_t sent = 0;        // events published (the next sequence number)
  std::uint64_t dropped = 0;     // events refused under backpressure::drop while a hold subscriber lagged
  std::uint64_t send_waits = 0;  // sends that had to wait for a hold subscriber
  std::uint64_t receive_parks = 0;    // times a blocking receive went to sleep (parked) for an event
  std::uint64_t send_parks = 0;       // times a blocking send went to sleep (parked) for a hold subscriber
  std::uint64_t oldest_retained = 0;  // sequence number of the oldest event a subscriber can still read
  std::uint32_t subscribers = 0;      // attached now
  std::uint32_t detached = 0;         // subscribers cut off under slow_reader::detach, in total
};

class multicast_stream;

// One subscriber's cursor. Move-only; detaches on destruction. Must not outlive its stream. One thread at
// a time uses a subscription (different subscriptions are independent).
class subscription {
 public:
  subscription() noexcept = default;
  subscription(subscription&& other) noexcept { take(other); }
  subscription& operator=(subscription&& other) noexcept {
    if (this != &other) {
      detach();
      take(other);
    }
    return *this;
  }
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  ~subscription() { detach(); }

  // Never blocks. Returns
  //   ok        `out` holds the next event. Text longer than inline lives in this subscription's buffer and
  //             stays valid until the next receive on this subscription.
  //   empty     nothing new yet;
  //   lagged    events were overwritten before this subscriber read them: missed_last() says exactly how
  //             many, the cursor has moved past them, and the next call continues (skip and hold);
  //   detached  slow_reader::detach: this subscriber fell a ring behind and was cut off (also after
  //             detach(), or on a subscription that was never attached);
  //   closed    the stream is closed and this subscriber has read everything published.
  status try_receive(event& out) noexcept;
  // Waits for an event: ok, lagged, detached or closed.
  status receive(event& out) noexcept;
  // As receive, giving up with status::timeout at `deadline`.
  status receive_until(event& out, std::chrono::steady_clock::time_point deadline) noexcept;
  template <class Rep, class Period>
  status receive_for(event& out, std::chrono::duration<Rep, Period> timeout) noexcept {
    return receive_until(out, detail::deadline_after(timeout));
  }
  // As receive, giving up with status::cancelled when `token` is stopped.
  status receive(event& out, std::stop_token token) noexcept;

  // Hands up to `max_events` events that are ready now to `handler(const event&, bool end_of_batch)`, in
  // order; each event's long text is valid during its call. Never blocks. Returns how many were handled;
  // `*why` (optional) gets ok when it handled any and stopped at the batch's end, else what stopped it
  // (empty, lagged, detached, closed, as try_receive). A hold subscriber publishes its cursor once per
  // batch, not per event. If the handler throws, the events handled so far, the one that threw included,
  // are consumed and the exception propagates.
  template <class Handler>
  std::size_t try_drain(Handler&& handler, std::size_t max_events, status* why = nullptr);

  // Leaves the stream (a hold subscriber stops holding the producer back). Idempotent; never blocks.
  void detach() noexcept;
  bool attached() const noexcept { return stream_ != nullptr; }

  // The sequence number the next receive expects.
  std::uint64_t next_seq() const noexcept { return cursor_; }
  // Events published but not yet read by this subscriber (a snapshot while the producer runs).
  std::uint64_t lag() const noexcept;
  // Events missed by the last lagged result, and by all of them.
  std::uint64_t missed_last() const noexcept { return missed_last_; }
  std::uint64_t missed_total() const noexcept { return missed_total_; }
  std::uint64_t received() const noexcept { return received_; }
  slow_reader policy() const noexcept { return policy_; }

 private:
  friend class multicast_stream;
  void take(subscription& other) noexcept;
  status lost(std::uint64_t cursor) noexcept;
  // try_receive without publishing a hold subscriber's cursor.
  status read_next(event& out) noexcept;
  // Publishes a hold subscriber's cursor and wakes a producer waiting for it, if this publication moved
  // the cursor across the one the producer needs.
  void publish_cursor() noexcept;
  // Counts a park in the stream's receive_parks.
  void note_park() noexcept;
  // Events published and not yet read (0 when detached).
  std::uint64_t ready() const noexcept { return lag(); }

  multicast_stream* stream_ = nullptr;
  std::uint32_t entry_ = 0;
  slow_reader policy_ = slow_reader::skip;
  bool was_detached_ = false;  // cut off by the detach policy (as opposed to never attached)
  std::uint64_t cursor_ = 0;
  std::uint64_t shown_cursor_ = 0;  // a hold subscriber's cursor as last stored in its entry [F18]
  std::uint64_t missed_last_ = 0;
  std::uint64_t missed_total_ = 0;
  std::uint64_t received_ = 0;
  std::unique_ptr<std::uint64_t[]> text_;  // this subscriber's copy of the current event's long text
};

class multicast_stream {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // Allocates the ring, the text ring and the subscriber table. Throws std::invalid_argument for an
  // out-of-range option, a drop_oldest policy or an unknown clock; std::bad_alloc.
  explicit multicast_stream(const multicast_options& options = {});
  // Every subscription must be detached or destroyed first, and the producer done.
  ~multicast_stream();
  multicast_stream(const multicast_stream&) = delete;
  multicast_stream& operator=(const multicast_stream&) = delete;

  // ---------------------------------------------------------------------------------------------------
  // Producer: one thread at a time.

  // Never blocks. ok; full (a hold subscriber is a ring behind; under drop also counted dropped); closed;
  // too_large (text larger than the text ring); invalid (see event::validate(); arena text). Nothing is
  // written on failure. Stamps the event and assigns its sequence number (0, 1, 2, ...).
  status try_send(const event& e) noexcept;
  // As try_send, but under backpressure::block waits for hold subscribers (spin, then park).
  status send(const event& e) noexcept { return send_until(e, time_point::max()); }
  status send_until(const event& e, time_point deadline) noexcept;
  template <class Rep, class Period>
  status send_for(const event& e, std::chrono::duration<Rep, Period> timeout) noexcept {
    return send_until(e, detail::deadline_after(timeout));
  }
  status send(const event& e, std::stop_token token) noexcept;

  // ---------------------------------------------------------------------------------------------------
  // Subscribers: any thread. Never block; allocate the subscriber's text buffer (text_bytes).

  // Attaches `out` (detaching whatever it held) at the newest or oldest retained event. ok, or full when
  // max_subscribers are attached (out is left detached). start_at::oldest starts at the oldest event still
  // retained once the subscriber is attached: oldest_retained() before the call, or later if the producer
  // moved on meanwhile.
  status subscribe(subscription& out, const subscribe_options& options = {});
  // Attaches `out` to continue after `last_seen` (the last sequence number the client received; SSE
  // Last-Event-ID). ok; not_retained when event last_seen + 1 is no longer retained (`*oldest` gets the
  // oldest sequence number still available; resume after oldest - 1, or subscribe at start_at::oldest);
  // invalid when last_seen + 1 is past the next sequence number; full as subscribe. On any failure `out`
  // is left detached.
  status resume(subscription& out, std::uint64_t last_seen, const subscribe_options& options = {},
                std::uint64_t* oldest = nullptr);

  // ---------------------------------------------------------------------------------------------------
  // Either side, any thread.

  // Refuses later sends (closed); subscribers read what is published, then get closed. Wakes every
  // blocked call. Idempotent; never blocks.
  void close() noexcept;
  bool is_closed() const noexcept {
    return (control_.load(std::memory_order_acquire) & kClosedBit) != 0;  // [F9] pairs with [F8]
  }
  // Events retained: at least options.capacity (the ring has one slot more).
  std::size_t capacity() const noexcept { return mask_; }
  std::size_t text_capacity() const noexcept { return text_bytes_; }
  backpressure policy() const noexcept { return policy_; }
  // The sequence number the next send gets (= events sent). It trails, briefly, a subscriber that has
  // just received the newest event: [F4] is stored after the event's slot is published.
  std::uint64_t next_seq() const noexcept { return published_.load(std::memory_order_acquire); }  // [F4]
  // Sequence number of the oldest event still readable (a snapshot while the producer runs). Counts as
  // gone the events whose text a send in progress is overwriting; rarely, such a send then finds a new
  // hold subscriber that needs that text and gives up (full), and the value moves back. resume()'s
  // not_retained and a skip subscriber's lagged count rely on this snapshot, with the same caveat.
  std::uint64_t oldest_retained() const noexcept;
  multicast_counters counters() const noexcept;

 private:
  friend class subscription;
  struct entry;

  enum : std::uint8_t { kEntryFree = 0, kEntryReading = 1, kEntryHolding = 2 };
  // control_ bits: closed, and "a holder attached since the producer's last scan".
  static constexpr std::uint32_t kClosedBit = 1;
  static constexpr std::uint32_t kRescanBit = 2;
  // Where attach() starts a subscriber: the newest event, the oldest retained, or exactly where resume()
  // asked (not_retained below the oldest retained).
  enum class start_mode : std::uint8_t { newest, oldest, exact };
  static constexpr std::uint64_t kSlotNever = ~std::uint64_t{0};        // slot never written
  static constexpr std::uint64_t kSlotWriting = ~std::uint64_t{0} - 1;  // slot being rewritten
  static constexpr std::size_t kWords = sizeof(event) / sizeof(std::uint64_t);
  static constexpr std::size_t kSeqWord = 1;  // the event's sequence number doubles as the slot's version

  std::atomic<std::uint64_t>* slot_words(std::uint64_t seq) const noexcept {
    return slots_ + (seq & mask_) * kWords;
  }
  status check_sendable(const event& e) const noexcept;
  status try_publish(const event& e) noexcept;
  bool gate_allows(std::uint64_t seq, std::uint64_t text_end, bool has_text,
                   std::uint64_t slack = 0) const noexcept;
  void refresh_gate(std::uint64_t seq) noexcept;
  std::uint64_t gate_needed(std::uint64_t seq, std::uint64_t text_end, bool has_text) const noexcept;
  void post_gate_needed(std::uint64_t needed) noexcept;
  void admit_holders() noexcept;
  struct text_retirement {
    std::uint64_t scanned_to;  // the next text_scan_
    std::uint64_t from;        // the first sequence number whose text survives
  };
  text_retirement find_text_retirement(std::uint64_t seq, std::uint64_t reclaimed) const noexcept;
  bool announce_text_retirement(std::uint64_t from, std::uint64_t seq, std::uint64_t text_end) noexcept;
  // Whether event seq has been sent, or is being sent and can no longer fail: resume()'s check. Unlike
  // seq < next_seq(), it holds as soon as a subscriber can have received seq.
  bool sent(std::uint64_t seq) const noexcept;
  std::uint64_t retained_from(std::uint64_t published, std::uint64_t text_from) const noexcept;
  status attach(subscription& out, const subscribe_options& options, std::uint64_t start, start_mode mode,
                std::uint64_t* oldest);
  void release_entry(std::uint32_t index) noexcept;

  // ---- read-mostly: fixed at construction ----
  std::atomic<std::uint64_t>* slots_ = nullptr;  // (mask_ + 1) * kWords words
  std::atomic<std::uint64_t>* text_ = nullptr;   // text_bytes_ / 8 words
  entry* entries_ = nullptr;
  std::uint64_t mask_;
  std::uint64_t refill_slack_;  // slots a full ring must free beyond one before the producer resumes
  std::uint64_t text_bytes_;
  std::uint32_t max_subscribers_;
  std::uint32_t spin_iterations_;
  backpressure policy_;
  clock_kind stamping_;

  // ---- producer-owned ----
  alignas(detail::kFalseSharingRange) std::uint64_t next_ = 0;
  std::uint64_t gate_ = 0;       // min cursor of hold subscribers at the last scan (or next_ if none)
  std::uint64_t text_head_ = 0;  // next free text ring position (monotonic)
  std::uint64_t text_scan_ = 0;  // first sequence number whose text may still be retained
  std::uint64_t text_from_ = 0;  // producer's copy of text_retained_from_
  std::uint64_t needed_ = 0;     // producer's copy of gate_needed_
  std::unique_ptr<std::uint64_t[]> text_pos_;  // per slot: text start position | kHasText, or text_head_
  std::unique_ptr<std::uint64_t[]> staging_;   // borrowed text gathered before it is stored
  std::atomic<std::uint64_t> dropped_{0};      // single writer (producer); relaxed: statistics only
  std::atomic<std::uint64_t> send_waits_{0};   // same

  // ---- written by the producer per send, read by subscribers when a slot is not ready ----
  alignas(detail::kFalseSharingRange) std::atomic<std::uint64_t> published_{0};
  // ---- written by the producer only when text is overwritten ----
  // Events below it have lost their text: subscribers validate copies against it [F7].
  alignas(detail::kFalseSharingRange) std::atomic<std::uint64_t> text_retained_from_{0};
  // Events below it are losing their text: stored before the decision to retire, read by attach() [F17].
  // At least text_retained_from_.
  std::atomic<std::uint64_t> text_retiring_from_{0};
  // ---- rarely written: close, holder attach, parking, attach/detach ----
  // kClosedBit | kRescanBit. One word, so the producer tests both with the load it needs for closed.
  alignas(detail::kFalseSharingRange) std::atomic<std::uint32_t> control_{0};
  detail::wait_word subscribers_wait_;          // subscribers park here for data or close
  detail::wait_word producer_wait_;             // the producer parks here for a hold subscriber or close
  std::atomic<std::uint32_t> entries_used_{0};  // entries ever claimed (high-water mark): the scan bound
  std::atomic<std::uint32_t> attached_{0};      // relaxed: statistics only
  std::atomic<std::uint32_t> detached_{0};      // relaxed: statistics only
  std::atomic<std::uint64_t> receive_parks_{0};  // relaxed: statistics only (parking wrote this line anyway)
  std::atomic<std::uint64_t> send_parks_{0};     // single writer (producer); relaxed: statistics only
  // The cursor every holder must reach before a refused blocking send can go ahead (0: none yet); stored
  // by the producer when it changes, before it parks. A holder's cursor publication wakes the producer
  // only when it crosses this value [F18].
  std::atomic<std::uint64_t> gate_needed_{0};
};

// ---- template definitions ----

template <class Handler>
std::size_t subscription::try_drain(Handler&& handler, std::size_t max_events, status* why) {
  const std::uint64_t ready_now = ready();
  const std::size_t batch = ready_now < max_events ? static_cast<std::size_t>(ready_now) : max_events;
  std::size_t handled = 0;
  status s = status::ok;
  struct publish_on_exit {  // the cursor moves past what was handled even if the handler throws
    subscription* self;
    std::size_t& handled;
    ~publish_on_exit() {
      if (handled != 0) self->publish_cursor();
    }
  } guard{this, handled};
  event e;
  if (max_events == 0) {
    s = status::ok;  // asked for nothing: handles nothing, reads nothing
  } else if (batch == 0) {
    s = read_next(e);  // nothing counted as ready: empty, closed or detached (or a race: one event)
    if (s == status::ok) {
      ++handled;
      handler(static_cast<const event&>(e), true);
    }
  } else {
    while (handled < batch) {
      s = read_next(e);
      if (s != status::ok) break;
      ++handled;
      handler(static_cast<const event&>(e), handled == batch);
    }
  }
  if (why != nullptr) *why = handled != 0 && s == status::ok ? status::ok : s;
  return handled;
}

}  // namespace rill
