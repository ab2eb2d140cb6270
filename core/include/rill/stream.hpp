// rill/stream.hpp: a bounded, lock-free stream of rill::events between threads.
//
// A stream is a ring of 64-byte event slots plus a payload arena for text longer than an event holds.
// Flavour, capacity, arena size and backpressure policy are fixed at construction.
//
//   flavour::spsc   one producer thread and one consumer thread at a time (a debug build asserts nothing
//                   about threads; using two producers is undefined behaviour). Wait-free try_ operations
//                   (except under backpressure::drop_oldest, below).
//   flavour::mpmc   any number of producers and consumers. Lock-free claims (Vyukov's bounded queue): each
//                   producer's events reach every consumer in the order that producer sent them. With
//                   stream_options::lanes > 1 the capacity is split over that many such rings, so producers
//                   on different cores do not contend for one tail (see lanes below).
//
// Guarantees
//   - try_send / try_receive / try_receive_batch / try_drain / try_claim never block, never allocate (except
//     the one-time lazy allocation of the ring and arena on a stream's first send, see stream_options), and
//     take no lock (tests/unit/hot_path_allocation_test.cpp counts both). None throws, except that
//     try_drain passes on an exception its handler throws. Under backpressure::drop_oldest a send may back
//     off (pause, then yield) while another thread finishes the slot it must evict.
//   - Events are delivered in send order (SPSC), or in ticket order, which preserves each producer's order
//     (MPMC; with lanes, ticket order within each lane). Every event is delivered at most once.
//   - A send that returns status::ok is delivered to a consumer unless the stream is destroyed first, or it
//     is evicted under backpressure::drop_oldest (counted in dropped). One exception: a send racing with a
//     close() called on another thread may return ok after a consumer already saw end-of-stream; its event
//     then stays buffered (still counted, visible in approx_size()).
//   - Counters are exact at quiescence: sent == received + dropped + buffered.
//   - Blocking calls spin briefly, then park on a per-stream futex word; close() and stop tokens wake them.
//     Deadlines are absolute std::chrono::steady_clock (CLOCK_MONOTONIC) times.
// Not guaranteed
//   - Fairness between blocked producers or consumers; approx_size() and counters are snapshots while
//     threads run.
//   - MPMC: a producer preempted between claiming a slot (or a batch's run of slots) and publishing it holds
//     back consumers (they see its lane as empty past that slot) until it runs again.
//   - MPMC with lanes: any order across producers; a producer's room is its lane's share of the capacity.
//   - SPSC under backpressure::block: that a send finds room as soon as one slot is free. After a send was
//     refused for a full ring, sends wait until stream_options::resume_room slots are free (capacity / 16
//     by default; set it to 1 for a Go channel's exact refill).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <span>
#include <stop_token>
#include <string_view>
#include <utility>

#include "rill/clock.hpp"
#include "rill/detail/assert.hpp"
#include "rill/detail/layout.hpp"
#include "rill/detail/mpmc_channel.hpp"
#include "rill/detail/parking.hpp"
#include "rill/detail/record_arena.hpp"
#include "rill/detail/spsc_channel.hpp"
#include "rill/detail/wait_loop.hpp"
#include "rill/event.hpp"
#include "rill/status.hpp"

namespace rill {

enum class flavour : std::uint8_t { spsc, mpmc };

// What a send does when the ring (or the arena) is full.
enum class backpressure : std::uint8_t {
  block,        // send() waits for room; try_send() returns full. Nothing is lost.
  drop,         // the newest event is rejected: send() and try_send() return full and count it dropped.
  drop_oldest,  // the oldest buffered event is evicted (counted dropped) and the send succeeds. A consumer
                // sees how many it missed as a gap in seq(). Text a consumer still holds is never
                // overwritten, and the arena frees space only past the oldest held record: when a
                // consumer holds it, or an open send_claim, or (lanes > 1) another lane's event, a send
                // with long text evicts nothing and returns full, counted dropped (a try_claim asking
                // for text too; either evicts at most a lap of its lane for arena room). When
                // the oldest slot is mid-publication by another producer (or mid-read by a consumer), the
                // send backs off (pause, then yield) until it can evict: try_send may yield here, about a
                // thousand times at most, then returns full (counted dropped; on MPMC the oldest slot may
                // be the calling thread's own open claim).
};

std::string_view to_string(flavour f) noexcept;
std::string_view to_string(backpressure p) noexcept;

// How an SPSC stream lays out its ring's 64-byte slots.
//   packed (the default): one after the other, capacity x 64 bytes.
//   padded: each slot on its own 128-byte line pair, the pair's other line unused: capacity x 128 bytes.
//     Cores that fetch lines in 128-byte pairs (adjacent-line prefetch) then never pull a slot's neighbour
//     in with it. In a packed ring larger than the L2 cache, a consumer just behind its producer pulls in
//     the line of the slot the producer writes next, and each such slot then costs the producer a transfer
//     from the consumer's core. Padding pays only where a consumer runs just behind its producer: on an AMD
//     EPYC VM, at 65536 slots, one event per call ran at 161-195 M events/s padded against 82-112 M packed.
//     Where the ring runs deep instead (an Intel Xeon VM: the consumer the slower side) packed was faster,
//     117-200 against 94-159 M. Keep packed for batches (padded fetches twice the lines: 287-304 against
//     402-472 M on the EPYC) and for small rings (no gain); measure before choosing padded (docs/design.md,
//     "Slot layout"; docs/benchmarking.md).
enum class slot_layout : std::uint8_t { packed, padded };
std::string_view to_string(slot_layout l) noexcept;

struct stream_options {
  // Event slots; rounded up to a power of two, at least 2, at most 2^30.
  std::size_t capacity = 1024;
  // Payload arena bytes for text longer than an event holds inline; rounded up to a power of two, at least
  // 256; 0 disables the arena (long text then gets status::too_large). A payload larger than
  // arena_bytes - 8 can never be sent (too_large); any smaller one fits once the arena has that much room
  // (a record never wraps: one that would cross the arena's end starts over at its beginning).
  std::size_t arena_bytes = 64 * 1024;
  flavour kind = flavour::spsc;
  backpressure policy = backpressure::block;
  // Clock the stream stamps each event with on send (clock.hpp). none (the default) keeps the producer's
  // own timestamp, so a producer that stamps once per upstream chunk pays once. A clock read per send is
  // the dearest part of a send: on rill's reference VM coarse and tsc each cap one-way SPSC at about
  // 52 M events/s, against about 90 M without (docs/benchmarking.md). send_batch reads it once per batch.
  clock_kind stamping = clock_kind::none;
  // MPMC only: how many rings (lanes) the capacity is split over; rounded up to a power of two, 1 to 64.
  // Each producer thread always sends into one lane: its ordinal among the threads that sent to any laned
  // stream, modulo the lane count. So each producer's order still holds, and N producer threads that
  // start sending together land in distinct lanes when lanes >= N. Each consumer looks first in a lane of
  // its own, then in the others; all consumers move on by one lane every 4096 events the stream hands out,
  // so no lane waits long for a consumer. The price: no order
  // across producers, and one producer can fill only capacity / lanes slots (capacity is raised to at
  // least 2 slots a lane). 1, the default, is one ring with a single ticket order. lanes > 1 with flavour::
  // spsc is invalid (std::invalid_argument).
  std::uint32_t lanes = 1;
  // Allocate the ring and arena on the first send (an idle stream costs only its control block) instead of
  // in the constructor.
  bool allocate_on_first_send = true;
  // Pause-loop iterations a blocking call spins before it parks.
  std::uint32_t spin_iterations = 512;
  // How the ring's 64-byte slots are laid out (slot_layout). Only SPSC rings are ever padded: MPMC streams
  // and drop_oldest streams (whose ring is an MPMC ring, so that producers can evict) keep packed rings
  // whatever this says (layout() tells which a stream has).
  slot_layout layout = slot_layout::packed;
  // SPSC streams under backpressure::block: once a send finds the ring full, sends go on only when this
  // many slots are free again (until then try_send and try_send_batch return full and send() waits).
  // Rounded down to a power of two; 0, the default, is capacity / 16 (at least 1); more than the rounded
  // capacity is invalid (std::invalid_argument), for every stream. 1 refills each slot as soon as it is
  // freed, as a Go channel does: a producer faster than its consumer then works right behind it, in the
  // lines the consumer just touched, and a full ring drains at a fraction of the consumer's own rate (65536
  // slots, a consumer with a little work per event: 27-32 M events/s at 1 against 51-67 M at the default,
  // 4096; docs/design.md, "Resume room"). A blocked send is woken once the room is there, not at every
  // receive. No event is lost or reordered. Other streams ignore it (drop refuses only while the ring is
  // full; MPMC rings refill at once).
  std::size_t resume_room = 0;
};

// A snapshot of a stream's counters (exact when no thread is using the stream).
struct stream_counters {
  std::uint64_t sent = 0;        // events the stream took: delivered, buffered or dropped by policy
  std::uint64_t received = 0;    // events handed to consumers
  std::uint64_t dropped = 0;     // rejected (drop) or evicted (drop_oldest)
  std::uint64_t send_waits = 0;  // blocking sends that had to wait for room
  // Times a blocking receive or drain went to sleep (parked) for an event; counted once the stream has
  // its ring (from the first send, unless stream_options::allocate_on_first_send is false).
  std::uint64_t receive_parks = 0;
  std::uint64_t buffered = 0;  // events in the ring now (not the void slots of aborted MPMC claims)
};

class stream;

// A received event. Owns the event's arena text (if any) until reset(), reassignment by the next receive,
// or destruction. Move-only. Must not outlive its stream. For SPSC streams, reset or destroy it on the
// consumer thread.
class received {
 public:
  received() noexcept = default;
  received(received&& other) noexcept : event_(other.event_), owner_(std::exchange(other.owner_, nullptr)) {}
  received& operator=(received&& other) noexcept {
    if (this != &other) {
      reset();
      event_ = other.event_;
      owner_ = std::exchange(other.owner_, nullptr);
    }
    return *this;
  }
  received(const received&) = delete;
  received& operator=(const received&) = delete;
  ~received() { reset(); }

  const event& get() const noexcept { return event_; }
  const event& operator*() const noexcept { return event_; }
  const event* operator->() const noexcept { return &event_; }
  // True while this holder keeps arena text reserved.
  bool holds_arena_text() const noexcept { return owner_ != nullptr; }
  // Releases the event's arena text; the event's text views become invalid. No-op for inline text.
  inline void reset() noexcept;

 private:
  friend class stream;
  event event_;
  stream* owner_ = nullptr;  // set only while arena text is held
};

// Up to capacity() events copied out of a stream by try_receive_batch() or receive_batch(). The copies free
// their ring slots at once, so producers refill them while the consumer works on the batch; arena text
// stays reserved (and its views valid) until reset(), the next receive into this batch, or destruction.
// Move-only. Must not outlive the stream it last received from. For SPSC streams, reset or destroy it on
// the consumer thread. Not thread-safe: one thread uses a batch at a time.
class received_batch {
 public:
  // Allocates room for `capacity` events, once (receives never allocate). Throws std::invalid_argument
  // for capacity 0 and std::bad_alloc.
  explicit received_batch(std::size_t capacity);
  received_batch(received_batch&& other) noexcept
      : events_(std::move(other.events_)),
        capacity_(std::exchange(other.capacity_, 0)),
        size_(std::exchange(other.size_, 0)),
        owner_(std::exchange(other.owner_, nullptr)) {}
  received_batch& operator=(received_batch&& other) noexcept {
    if (this != &other) {
      reset();
      events_ = std::move(other.events_);
      capacity_ = std::exchange(other.capacity_, 0);
      size_ = std::exchange(other.size_, 0);
      owner_ = std::exchange(other.owner_, nullptr);
    }
    return *this;
  }
  received_batch(const received_batch&) = delete;
  received_batch& operator=(const received_batch&) = delete;
  ~received_batch() { reset(); }

  // The most events one receive copies (0 only after being moved from).
  std::size_t capacity() const noexcept { return capacity_; }
  // Events held now, in the order the stream delivered them.
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  const event& operator[](std::size_t i) const noexcept {
    RILL_ASSERT(i < size_, "received_batch index out of range");
    return events_[i];
  }
  const event* begin() const noexcept { return events_.get(); }
  const event* end() const noexcept { return events_.get() + size_; }
  std::span<const event> events() const noexcept { return {events_.get(), size_}; }
  // True while some held event keeps arena text reserved.
  bool holds_arena_text() const noexcept { return owner_ != nullptr; }
  // Releases every held event's arena text and empties the batch; their text views become invalid.
  inline void reset() noexcept;

 private:
  friend class stream;
  std::unique_ptr<event[]> events_;
  std::size_t capacity_ = 0;
  std::size_t size_ = 0;
  stream* owner_ = nullptr;  // set only while some held event has arena text
};

// A slot (and optional text space) reserved by try_claim(), built in the claim, then commit()ted.
class send_claim {
 public:
  // The event to build, e.g. `::new (&c.slot()) rill::event(rill::event::text_delta(0, t))`. It lives in
  // the claim, not in the ring: commit() copies it (64 bytes) into the slot try_claim() reserved, so a
  // consumer polling that slot never sees it half-built. Valid until commit() or abort().
  event& slot() noexcept { return staging_; }
  // Reserved arena bytes for the event's text (text_capacity() bytes), or nullptr if none were asked for.
  // Build the event's text here and refer to it with an external-text factory (any text the event borrows
  // from elsewhere is copied at commit instead).
  char* text() noexcept { return text_; }
  std::size_t text_capacity() const noexcept { return text_capacity_; }
  bool active() const noexcept { return slot_ != nullptr; }

 private:
  friend class stream;
  event staging_;
  event* slot_ = nullptr;  // the reserved ring slot
  std::uint64_t ticket_ = 0;
  std::uint32_t lane_ = 0;  // MPMC: the lane slot_ belongs to
  char* text_ = nullptr;
  std::size_t text_capacity_ = 0;
};

// A stream object is its control block (what every send and receive reads) on a cache line of its own:
// alignas(64), 64 bytes. Whatever a user puts next to it (a counter beside a stream member, another local
// on the stack) never shares that line. While they could share one (the object was 32 bytes, 8-aligned), a
// producer that wrote a word on its stream's line between a send and the next receive cost the consumer a
// line transfer per event: a round trip through two streams took 170 ns against 140 (docs/design.md,
// "Control block").
class alignas(detail::kCacheLine) stream {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // Creates a stream. Throws std::invalid_argument for an unknown flavour, policy, clock or slot layout, a
  // capacity above 2^30, lanes outside 1..64 (or above 1 on SPSC), or an arena above 2 GiB; and
  // std::bad_alloc if an eager allocation fails.
  explicit stream(const stream_options& options = {});
  // Not thread-safe against concurrent use: every producer and consumer must be done.
  ~stream();
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  // ---------------------------------------------------------------------------------------------------
  // Producer side. SPSC: one producer thread at a time. MPMC: any thread.

  // Never blocks (drop_oldest: may back off, see backpressure). ok; full (ring or arena full, or the lazy
  // first allocation of the ring failed; under drop also counted dropped); closed; too_large (text larger
  // than the arena can ever hold, or a leading field over 65535 bytes); invalid (see event::validate();
  // arena text not reserved by this stream's try_claim). Nothing is written on failure.
  status try_send(const event& e) noexcept;
  // As try_send, but under backpressure::block waits for room (spin, then park). Returns ok, closed,
  // too_large or invalid (and full under drop, or under drop_oldest when no eviction can free arena room
  // for its text, see backpressure; under every policy, at once, when the lazy first allocation of the
  // ring fails).
  status send(const event& e) noexcept { return send_until(e, time_point::max()); }
  // As send, giving up with status::timeout at `deadline`.
  status send_until(const event& e, time_point deadline) noexcept;
  template <class Rep, class Period>
  status send_for(const event& e, std::chrono::duration<Rep, Period> timeout) noexcept {
    return send_until(e, detail::deadline_after(timeout));
  }
  // As send, giving up with status::cancelled when `token` is stopped.
  status send(const event& e, std::stop_token token) noexcept;

  // Sends events in order until one cannot be sent now. Never blocks (drop_oldest: as try_send). Returns
  // how many were handled: sent, or dropped by policy; `*why` gets the status that stopped it (ok when all
  // went). Under drop the whole batch counts as handled and `*why` is full when any event was dropped
  // (SPSC drops the rest of the batch from the first that found no room; MPMC tries each event). One
  // clock read per call. MPMC (block and drop): consecutive events that need no validation beyond their
  // kind and carry inline text are claimed as runs of tickets, one CAS for up to 64 (fewer when the ring
  // has less room), and each run's events are consecutive in the ring's ticket order.
  [[nodiscard]] std::size_t try_send_batch(std::span<const event> events, status* why = nullptr) noexcept;
  // Sends all events, waiting for room per policy. ok, closed, too_large or invalid (the events before the
  // failing one were sent; `*sent` says how many); full as send() returns it.
  status send_batch(std::span<const event> events, std::size_t* sent = nullptr) noexcept;

  // Reserves the next slot, and `text_bytes` of arena space if asked; the caller builds the event in
  // claim.slot() (and its text in claim.text()). Never blocks (drop_oldest: may back off and evict, as
  // try_send). ok, full (under a dropping policy counted dropped), closed, too_large. On ok the caller
  // must commit() or abort() before its next claim; on SPSC also before any other send on this stream (the
  // claimed slot is not yet counted as taken: a send in between would reuse it).
  status try_claim(send_claim& claim, std::size_t text_bytes = 0) noexcept;
  // Copies the claim's event into its slot and publishes it. ok; invalid if the event fails validation
  // (nothing is delivered: SPSC un-claims the slot, MPMC publishes a void slot that consumers skip); full or
  // too_large if borrowed text does not fit the arena, closed if the stream was closed since the claim (same
  // handling; a commit racing with close() may still deliver, as a send may).
  status commit(send_claim& claim) noexcept;
  // Gives a claimed slot back unsent (MPMC: as a void slot consumers skip).
  void abort(send_claim& claim) noexcept;

  // ---------------------------------------------------------------------------------------------------
  // Consumer side. SPSC: one consumer thread at a time. MPMC: any thread.

  // Never blocks. ok (out holds the next event; whatever it held before is released first), empty, or
  // closed once the stream is closed and drained.
  status try_receive(received& out) noexcept;
  // Waits for an event. ok or closed.
  status receive(received& out) noexcept { return receive_until(out, time_point::max()); }
  // ok, closed or timeout.
  status receive_until(received& out, time_point deadline) noexcept;
  template <class Rep, class Period>
  status receive_for(received& out, std::chrono::duration<Rep, Period> timeout) noexcept {
    return receive_until(out, detail::deadline_after(timeout));
  }
  // ok, closed or cancelled.
  status receive(received& out, std::stop_token token) noexcept;

  // Copies up to out.capacity() buffered events, in order, into `out` (releasing what it held first) and
  // frees their slots before returning, so producers can refill them while the caller works on the copies
  // (try_drain holds them until its handler returns). Never blocks. ok (out holds at least one event),
  // empty, closed once the stream is closed and drained, or invalid for a moved-from batch (capacity 0);
  // out is empty unless ok. MPMC: takes runs of published tickets, one CAS each, from this consumer's lane
  // first, then from the others.
  status try_receive_batch(received_batch& out) noexcept;
  // Waits for at least one event, then as try_receive_batch. ok, closed or invalid.
  status receive_batch(received_batch& out) noexcept { return receive_batch_until(out, time_point::max()); }
  // ok, closed, timeout or invalid.
  status receive_batch_until(received_batch& out, time_point deadline) noexcept;
  template <class Rep, class Period>
  status receive_batch_for(received_batch& out, std::chrono::duration<Rep, Period> timeout) noexcept {
    return receive_batch_until(out, detail::deadline_after(timeout));
  }
  // ok, closed, cancelled or invalid.
  status receive_batch(received_batch& out, std::stop_token token) noexcept;

  // Hands up to `max_events` buffered events to `handler(const event&, bool end_of_batch)` in order; their
  // arena text is valid during the call and released after it. Never blocks. SPSC hands events over in
  // place (no copy); MPMC copies each one out, freeing its slot at once, and runs one event behind.
  // Returns how many were handled. If the handler throws, the events handled so far, the one that threw
  // included, are consumed and the exception propagates; MPMC also drops the event it had taken ahead
  // (counted in dropped).
  template <class Handler>
  std::size_t try_drain(Handler&& handler, std::size_t max_events);
  // As try_drain, but waits until at least one event is available. ok, closed (closed and drained) or
  // timeout. `*handled` gets the count.
  template <class Handler>
  status drain_until(Handler&& handler, std::size_t max_events, time_point deadline, std::size_t* handled = nullptr);

  // Input range over received events: `for (const rill::event& e : s.events())`. Each step blocks like
  // receive(); the loop ends when the stream is closed and drained. An event's text is valid until the
  // loop advances.
  class event_range;
  event_range events() noexcept;

  // ---------------------------------------------------------------------------------------------------
  // Either side, any thread.

  // Refuses later sends (status::closed), lets consumers drain what is buffered, then end; wakes every
  // blocked sender and receiver. Idempotent. Never blocks.
  void close() noexcept;
  bool is_closed() const noexcept {
    return (state_.load(std::memory_order_acquire) & kClosedState) != 0;  // [C3] pairs with [C4]
  }
  std::size_t capacity() const noexcept { return std::size_t{1} << capacity_log2_; }
  // MPMC rings the capacity is split over (stream_options::lanes, rounded); 1 otherwise.
  std::size_t lanes() const noexcept { return std::size_t{1} << lanes_log2_; }
  // The ring's slot layout: stream_options::layout, or packed where the ring is an MPMC ring.
  slot_layout layout() const noexcept {
    return slot_spacing_log2_ != 0 ? slot_layout::padded : slot_layout::packed;
  }
  // Free slots a producer refused for a full ring waits for (stream_options::resume_room, resolved): 1
  // where the ring refills at once (not SPSC under block, or resume_room 1).
  std::size_t resume_room() const noexcept { return std::size_t{1} << resume_room_log2_; }
  std::size_t arena_capacity() const noexcept { return arena_bytes_; }
  flavour kind() const noexcept { return kind_; }
  backpressure policy() const noexcept { return policy_; }
  clock_kind stamping() const noexcept { return stamping_; }
  // Ring slots in use now (a snapshot while threads run): buffered events, plus on MPMC any void slot
  // (aborted claim, refused commit) not yet skipped. counters().buffered leaves those out.
  std::size_t approx_size() const noexcept;
  stream_counters counters() const noexcept;
  // sent + received: a number that changes whenever the stream is used (the manager's activity probe).
  std::uint64_t activity() const noexcept;
  // True once the ring and arena exist (after the first send, or at construction when eager).
  bool allocated() const noexcept { return channel_.load(std::memory_order_acquire) != nullptr; }  // [C1]
  // Arena bytes in use (approximate).
  std::size_t approx_arena_used() const noexcept;

 private:
  friend class received;
  friend class received_batch;
  struct counters_block;  // slow-path counters, allocated with the channel

  void* channel() const noexcept { return channel_.load(std::memory_order_acquire); }  // [C1] pairs with [C2]
  void* channel_or_allocate() noexcept {
    void* ch = channel();
    return ch != nullptr ? ch : allocate_channel();
  }
  void* allocate_channel() noexcept;
  detail::record_arena* arena_of(void* ch) const noexcept;
  counters_block* counters_of(void* ch) const noexcept;

  status prepare_text(event& slot, detail::record_arena& arena, std::uint32_t tag = 0) noexcept;
  status check_sendable(const event& e) const noexcept {
    if (e.validates_trivially()) [[likely]]
      return status::ok;  // one bit test and one flag test, inline
    const status s = e.validate();
    if (s != status::ok) return s;
    if (e.text_is_in_arena()) return status::invalid;  // only try_claim()'s reserved text may be arena text
    if (e.text_is_external() && e.text_size() > max_text()) return status::too_large;
    return status::ok;
  }
  std::size_t max_text() const noexcept { return arena_bytes_ == 0 ? 0 : arena_bytes_ - detail::record_arena::kHeaderBytes; }
  // The stream's stamping clock, read once per send or batch (coarse, the default, is tested first).
  std::uint64_t read_stamp_clock() const noexcept {
    if (stamping_ == clock_kind::coarse) [[likely]] return clock::coarse_now_ns();
    return stamping_ == clock_kind::none ? 0 : clock::now(stamping_);
  }
  void stamp(event& slot, std::uint64_t now) const noexcept {
    if (stamping_ != clock_kind::none) slot.set_timestamp(stamping_, now);
  }
  // The lean send paths' stamp, chosen from the state byte: coarse or TSC (steady never takes them).
  static void stamp_from_state(event& slot, std::uint8_t state) noexcept {
    if ((state & kCoarseStampState) != 0) {
      slot.set_timestamp(clock_kind::coarse, clock::coarse_now_ns());
    } else if ((state & kTscStampState) != 0) {
      slot.set_timestamp(clock_kind::tsc, clock::tsc_now());
    }
  }

  // state_ bits. The ring kind, the clock and the policy are fixed at construction; close() sets kClosedState.
  static constexpr std::uint8_t kMpmcRingState = 1u << 0;     // the channel is mpmc_channel lane 0
  static constexpr std::uint8_t kCoarseStampState = 1u << 1;  // stamping == clock_kind::coarse
  static constexpr std::uint8_t kTscStampState = 1u << 2;     // stamping == clock_kind::tsc
  static constexpr std::uint8_t kSteadyStampState = 1u << 3;  // stamping == clock_kind::steady
  static constexpr std::uint8_t kBlockPolicyState = 1u << 4;  // policy == backpressure::block
  static constexpr std::uint8_t kClosedState = 1u << 7;
  // States try_send's inline path leaves to try_send_general(): closed, an MPMC ring (MPMC flavour or
  // drop_oldest), and the steady clock (22 ns a read: the call is the least of its cost).
  static constexpr std::uint8_t kGeneralSendStates = kClosedState | kMpmcRingState | kSteadyStampState;
  static std::uint8_t initial_state(flavour kind, backpressure policy, clock_kind stamping) noexcept;
  bool uses_spsc_ring() const noexcept {
    // The ring bit never changes after construction: relaxed is enough.
    return (state_.load(std::memory_order_relaxed) & kMpmcRingState) == 0;
  }

  status try_send_general(const event& e) noexcept;
  status try_send_once(const event& e, std::uint64_t now) noexcept;
  status try_send_spsc(detail::spsc_channel& ch, const event& e, std::uint64_t now) noexcept;
  status try_send_mpmc(detail::mpmc_channel& ch, const event& e, std::uint64_t now) noexcept;
  bool evict_oldest(detail::mpmc_channel& ch, detail::mpmc_channel& lane) noexcept;
  // drop_oldest: claims `size` bytes of arena text for a send into `lane`, evicting the lane's oldest
  // events only while that can free room. nullptr when it cannot.
  // `tag` is the text's arena tag while it is not yet published.
  char* claim_text_evicting(detail::mpmc_channel& ch, detail::mpmc_channel& lane, std::size_t size,
                            std::uint32_t tag) noexcept;
  // Takes up to `max` (at least 1) events, void slots skipped, from this thread's lane, then from the
  // others, each run of published tickets with one claim; copies them to `out[0..)` and frees their slots.
  // Returns how many (0: every lane looked empty).
  std::size_t take_mpmc(detail::mpmc_channel& ch, event* out, std::size_t max) noexcept;
  // take_mpmc's body, inlined twice: with max fixed at 1 for single receives, and for any max.
  std::size_t take_mpmc_up_to(detail::mpmc_channel& ch, event* out, std::size_t max) noexcept;
  void destroy_channel(void* ch) noexcept;
  status try_receive_once(received& out) noexcept;
  status try_receive_batch_once(received_batch& out) noexcept;
  void note_dropped(void* ch) noexcept;
  void note_send_wait(void* ch) noexcept;
  void note_receive_park(void* ch) noexcept;
  void note_evicted(void* ch) noexcept;
  bool drained() const noexcept;
  // Tickets claimed and consumed so far (relaxed snapshots).
  struct ring_positions {
    std::uint64_t accepted;
    std::uint64_t consumed;
  };
  ring_positions positions(void* ch) const noexcept;
  template <class Handler>
  std::size_t try_drain_mpmc(detail::mpmc_channel& c, Handler& handler, std::size_t max_events);
  void release_text(const event& e) noexcept;
  void after_consume() noexcept {
    if ((state_.load(std::memory_order_relaxed) & kBlockPolicyState) != 0) notify_producers();
  }
  // After a consume under block: wakes parked producers, but only once an SPSC ring has its resume room
  // free (stream_options::resume_room), so that a producer waiting for it is not woken at every receive.
  void notify_producers() noexcept {
    producers_.notify_after_publish_if([this]() noexcept { return producer_may_resume(); });
  }
  bool producer_may_resume() const noexcept;

  enum class waiter : std::uint8_t { sender, receiver };
  // Waits for `attempt()` to return something other than full (a sender) or empty (a receiver), spinning
  // then parking on that side's wait word; counts a sender's wait in send_waits, a receiver's parks in
  // receive_parks.
  template <class Attempt>
  status wait_for(waiter who, Attempt&& attempt, time_point deadline, const std::stop_token* token);

  // ---- control block: read-mostly, shared by both sides ----
  std::atomic<void*> channel_{nullptr};
  // What the inline paths need, in one byte: the ring kind, the stamping clock, the policy and the closed
  // flag (the k...State bits). Written only by close().
  std::atomic<std::uint8_t> state_;
  const flavour kind_;
  const backpressure policy_;
  const clock_kind stamping_;
  // Capacity and lane count are powers of two: their exponents fit in a byte each (the fields take 32 bytes
  // of the object's 64).
  const std::uint8_t capacity_log2_;
  const std::uint8_t lanes_log2_;
  const std::uint8_t slot_spacing_log2_;  // SPSC ring: 0 packed, 1 padded (detail::slot_ring)
  const std::uint8_t resume_room_log2_;   // SPSC ring under block: stream_options::resume_room; else 0
  const std::uint32_t arena_bytes_;
  const std::uint32_t spin_iterations_;
  detail::wait_word consumers_;  // consumers park here for data or close
  detail::wait_word producers_;  // producers park here for room or close
};

// ---- range-for support ----
class stream::event_range {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = event;
    using difference_type = std::ptrdiff_t;
    using pointer = const event*;
    using reference = const event&;
    iterator() noexcept = default;
    const event& operator*() const noexcept { return *current_; }
    const event* operator->() const noexcept { return &*current_; }
    iterator& operator++() noexcept {
      advance();
      return *this;
    }
    void operator++(int) noexcept { advance(); }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return it.done_; }

   private:
    friend class event_range;
    explicit iterator(stream* s) noexcept : stream_(s) { advance(); }
    void advance() noexcept { done_ = stream_->receive(current_) != status::ok; }
    stream* stream_ = nullptr;
    received current_;
    bool done_ = true;
  };
  iterator begin() noexcept { return iterator(stream_); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  friend class stream;
  explicit event_range(stream* s) noexcept : stream_(s) {}
  stream* stream_;
};

inline stream::event_range stream::events() noexcept { return event_range(this); }

// =====================================================================================================
// Inline hot paths.

inline void received::reset() noexcept {
  if (owner_ != nullptr) {
    owner_->release_text(event_);
    owner_ = nullptr;
  }
}

inline void received_batch::reset() noexcept {
  if (owner_ != nullptr) {
    for (const event& e : events()) {
      if (e.text_is_in_arena()) owner_->release_text(e);
    }
    owner_ = nullptr;
  }
  size_ = 0;
}

// The common case inline, in as few instructions as possible: an SPSC ring with room, an event that needs
// no validation beyond its kind, and no clock, the coarse one or the TSC. A one-way stream is bound by how
// many slot transfers each core keeps in flight, and every instruction here shrinks that window (each one
// removed measured as throughput). Everything else goes to try_send_general(), out of line.
inline status stream::try_send(const event& e) noexcept {
  // [C5] relaxed: see close(). The same load says whether this stream's sends can take the path below.
  const std::uint8_t state = state_.load(std::memory_order_relaxed);
  if ((state & kGeneralSendStates) == 0 && e.validates_trivially()) [[likely]] {
    if (void* ch = channel(); ch != nullptr) [[likely]] {
      auto& c = *static_cast<detail::spsc_channel*>(ch);
      const std::uint64_t position = c.next_sequence();
      event* const slot = c.producer_slot(position);
      if (!c.resuming() && detail::spsc_channel::is_free(slot)) [[likely]] {
        detail::spsc_channel::fill(slot, e);  // every byte but the sequence word, which publish() writes
        if ((state & (kCoarseStampState | kTscStampState)) != 0) [[unlikely]] stamp_from_state(*slot, state);
        c.publish(slot, position);
        consumers_.notify_after_publish();
        return status::ok;
      }
    }
  }
  return try_send_general(e);
}

inline status stream::try_receive(received& out) noexcept {
  out.reset();
  const status s = try_receive_once(out);
  if (s != status::empty) return s;
  // [C3] acquire: every send that completed before close() is visible now, so one more look is exact.
  if (!is_closed()) return status::empty;
  const status again = try_receive_once(out);
  if (again != status::empty) return again;
  return drained() ? status::closed : status::empty;
}

// After close: no ticket is claimed but unconsumed. An MPMC producer that claimed a slot before close()
// still publishes it, and events behind it are only visible after it does.
inline bool stream::drained() const noexcept { return approx_size() == 0; }

inline status stream::try_receive_once(received& out) noexcept {
  void* ch = channel();
  if (ch == nullptr) return status::empty;
  const std::uint8_t state = state_.load(std::memory_order_relaxed);  // only its fixed bits are used here
  if ((state & kMpmcRingState) == 0) [[likely]] {
    auto& c = *static_cast<detail::spsc_channel*>(ch);
    const std::uint64_t position = c.consumer_position();
    event* const slot = c.consumer_slot(position);
    if (!detail::spsc_channel::is_published(slot, position)) return status::empty;
    out.event_ = *slot;
    c.pop_one(slot, position);
  } else if (take_mpmc(*static_cast<detail::mpmc_channel*>(ch), &out.event_, 1) == 0) {
    return status::empty;
  }
  if (out.event_.text_is_in_arena()) out.owner_ = this;
  if ((state & kBlockPolicyState) != 0) notify_producers();  // after_consume(), state at hand
  return status::ok;
}

inline status stream::try_receive_batch(received_batch& out) noexcept {
  out.reset();
  if (out.capacity_ == 0) [[unlikely]] return status::invalid;  // a moved-from batch
  const status s = try_receive_batch_once(out);
  if (s != status::empty) return s;
  if (!is_closed()) return status::empty;  // [C3] as in try_receive
  const status again = try_receive_batch_once(out);
  if (again != status::empty) return again;
  return drained() ? status::closed : status::empty;
}

inline status stream::try_receive_batch_once(received_batch& out) noexcept {
  void* ch = channel();
  if (ch == nullptr) return status::empty;
  event* const to = out.events_.get();
  std::size_t n = 0;
  if (uses_spsc_ring()) [[likely]] {
    auto& c = *static_cast<detail::spsc_channel*>(ch);
    // As in try_drain: when the consumer is behind, the next batch's slots start loading now, while the
    // caller works on this one, instead of stalling its next call.
    bool behind;
    n = c.available(out.capacity_, behind);
    if (n == 0) return status::empty;
    c.copy_out(to, n);
    c.pop(n);
    if (behind) {
      const std::uint64_t next = c.consumer_position();
      for (std::size_t i = 0; i < n; ++i) c.prefetch(next + i);
    }
  } else {
    auto& c = *static_cast<detail::mpmc_channel*>(ch);
    n = take_mpmc(c, to, out.capacity_);
    if (n == 0) return status::empty;
  }
  out.size_ = n;
  // The batch owns arena text if any event carries some: one OR over the flag bytes, no branch per event
  // (a loop that stopped at the first such event made copy-out drains of inline text 3-10% slower).
  std::uint8_t flags = 0;
  for (std::size_t i = 0; i < n; ++i) flags |= to[i].flags();
  if ((flags & event::kFlagArenaText) != 0) out.owner_ = this;
  after_consume();
  return status::ok;
}

template <class Handler>
std::size_t stream::try_drain(Handler&& handler, std::size_t max_events) {
  void* ch = channel();
  if (ch == nullptr || max_events == 0) return 0;
  std::size_t handled = 0;
  if (uses_spsc_ring()) {
    auto& c = *static_cast<detail::spsc_channel*>(ch);
    // When more is waiting than the batch takes, the consumer is behind (available(limit, behind)): each
    // event handed over starts the load of the next batch's slot at the same offset: those lines arrive while
    // the handler works rather than stalling the next call (a consumer reading a backlog in batches is
    // otherwise bound by one batch's misses, then one batch's handling, in turn). A consumer that keeps
    // pace finds that slot empty and loads nothing ahead: its lines are the ones the producer writes next.
    bool behind;
    const std::size_t n = c.available(max_events, behind);
    if (n == 0) return 0;
    const std::uint64_t head = c.consumer_position();
    event* slot = nullptr;
    try {
      for (; handled < n; ++handled) {
        slot = c.consumer_slot(head + handled);
        if (behind) c.prefetch(head + n + handled);
        handler(static_cast<const event&>(*slot), handled + 1 == n);
        if (slot->text_is_in_arena()) [[unlikely]] {
          release_text(*slot);
        }
      }
    } catch (...) {
      // The event that threw is consumed too (its text released), as are the ones before it.
      if (slot->text_is_in_arena()) release_text(*slot);
      c.pop(handled + 1);
      after_consume();
      throw;
    }
    c.pop(n);
    after_consume();
  } else {
    handled = try_drain_mpmc(*static_cast<detail::mpmc_channel*>(ch), handler, max_events);
  }
  return handled;
}

// MPMC cannot peek without claiming, so it runs one event behind: event k is handed over once event k + 1
// has been taken (end_of_batch = false) or found missing (end_of_batch = true). Each event is copied out so
// its slot returns to producers at once. If the handler throws, the event taken ahead is dropped (counted).
template <class Handler>
std::size_t stream::try_drain_mpmc(detail::mpmc_channel& c, Handler& handler, std::size_t max_events) {
  std::size_t handled = 0;
  std::size_t taken = 0;  // events taken from the ring: their slots are free again
  // Producers blocked on a full ring are woken however this returns: take_mpmc freed the slots already,
  // and a handler that throws must not leave a producer parked with room available (a lost wake-up).
  struct wake_producers {
    stream* self;
    const std::size_t& taken;
    ~wake_producers() {
      if (taken != 0) self->after_consume();
    }
  } wake{this, taken};
  event pending;
  bool have_pending = false;
  struct release_after {
    stream* self;
    const event& e;
    ~release_after() {
      if (e.text_is_in_arena()) self->release_text(e);
    }
  };
  while (handled < max_events) {
    event next;
    const bool more = handled + (have_pending ? 1 : 0) < max_events && take_mpmc(c, &next, 1) != 0;
    taken += more ? 1 : 0;
    if (have_pending) {
      struct drop_ahead {
        stream* self;
        const event& e;
        bool armed;
        ~drop_ahead() {
          if (armed) {  // the handler threw: the look-ahead event cannot be given back
            if (e.text_is_in_arena()) self->release_text(e);
            self->note_evicted(self->channel());
          }
        }
      } ahead{this, next, more};
      {
        release_after release{this, pending};
        handler(static_cast<const event&>(pending), !more);
        ++handled;
      }
      ahead.armed = false;
    }
    if (!more) break;
    pending = next;
    have_pending = true;
  }
  return handled;
}

template <class Handler>
status stream::drain_until(Handler&& handler, std::size_t max_events, time_point deadline, std::size_t* handled) {
  std::size_t n = 0;
  const status s = wait_for(
      waiter::receiver,
      [&] {
        n = try_drain(handler, max_events);
        if (n != 0) return status::ok;
        if (!is_closed()) return status::empty;  // [C3]
        n = try_drain(handler, max_events);
        if (n != 0) return status::ok;
        return drained() ? status::closed : status::empty;
      },
      deadline, nullptr);
  if (handled != nullptr) *handled = n;
  return s;
}

template <class Attempt>
status stream::wait_for(waiter who, Attempt&& attempt, time_point deadline, const std::stop_token* token) {
  const bool sender = who == waiter::sender;
  // A stream whose lazy first allocation fails has no ring: nothing would ever wake a wait for its room.
  if (sender && channel_or_allocate() == nullptr) [[unlikely]]
    return status::full;
  return detail::wait_loop(
      sender ? producers_ : consumers_, sender ? status::full : status::empty, std::forward<Attempt>(attempt),
      deadline, token, spin_iterations_,
      [&]() noexcept {
        if (!sender) return;
        if (void* ch = channel(); ch != nullptr) note_send_wait(ch);
      },
      [&]() noexcept {
        if (sender) return;
        if (void* ch = channel(); ch != nullptr) note_receive_park(ch);
      });
}

}  // namespace rill
