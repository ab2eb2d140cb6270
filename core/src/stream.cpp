#include "rill/stream.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <stdexcept>
#include <thread>

#include "internal/slot_writer.hpp"

namespace rill {

// Slow-path counters, on their own line in front of the channel. Written only when a send is dropped,
// evicted or voided, when a void slot is taken, when a send has to wait and when a receiver parks; read by
// counters(). fetch_add (relaxed) because MPMC producers and consumers share them; relaxed is enough: they
// order nothing, they only count.
struct alignas(detail::kFalseSharingRange) stream::counters_block {
  std::atomic<std::uint64_t> rejected{0};    // refused under backpressure::drop
  std::atomic<std::uint64_t> evicted{0};     // taken from the ring without being received (drop_oldest)
  std::atomic<std::uint64_t> voided{0};      // MPMC slots published empty by a failed commit or an abort
  std::atomic<std::uint64_t> voids_taken{0};  // of those, the ones consumers or evictions have taken off
  std::atomic<std::uint64_t> send_waits{0};  // sends that waited for room
  std::atomic<std::uint64_t> receive_parks{0};  // receivers that parked for an event
};

namespace {

bool spsc_ring_for(flavour kind, backpressure policy) noexcept {
  return kind == flavour::spsc && policy != backpressure::drop_oldest;
}

std::size_t normalized_capacity(std::size_t requested) {
  if (requested > (std::size_t{1} << 30)) throw std::invalid_argument("rill::stream: capacity above 2^30 events");
  return std::max<std::size_t>(2, detail::round_up_pow2(requested));
}

unsigned log2_of(std::size_t power_of_two) noexcept { return static_cast<unsigned>(std::countr_zero(power_of_two)); }

std::size_t normalized_lanes(const stream_options& options) {
  if (options.lanes == 0 || options.lanes > 64) throw std::invalid_argument("rill::stream: lanes outside 1..64");
  if (options.lanes > 1 && options.kind != flavour::mpmc) {
    throw std::invalid_argument("rill::stream: lanes > 1 need flavour::mpmc");
  }
  return detail::round_up_pow2(options.lanes);
}

// 0: packed, 1: padded (detail::slot_ring). Only an SPSC ring is ever padded.
std::uint8_t slot_spacing_log2_for(const stream_options& options) {
  switch (options.layout) {
    case slot_layout::packed:
      return 0;
    case slot_layout::padded:
      return spsc_ring_for(options.kind, options.policy) ? 1 : 0;
  }
  throw std::invalid_argument("rill::stream: unknown slot layout");
}

// log2 of the slots a refused SPSC producer waits for (stream_options::resume_room); 0 (one slot, refill at
// once) where the option does not apply. `capacity`: the normalized capacity.
std::uint8_t resume_room_log2_for(const stream_options& options, std::size_t capacity) {
  if (options.resume_room > capacity) {
    throw std::invalid_argument("rill::stream: resume_room above the capacity");
  }
  if (options.kind != flavour::spsc || options.policy != backpressure::block) return 0;
  const std::size_t room = options.resume_room != 0 ? std::bit_floor(options.resume_room)
                                                    : std::max<std::size_t>(1, capacity / 16);
  return static_cast<std::uint8_t>(log2_of(room));
}

std::size_t normalized_arena(std::size_t requested) {
  if (requested == 0) return 0;
  if (requested > (std::size_t{1} << 31)) throw std::invalid_argument("rill::stream: arena above 2 GiB");
  return std::max(detail::record_arena::kMinBytes, detail::round_up_pow2(requested));
}

flavour checked(flavour f) {
  if (f != flavour::spsc && f != flavour::mpmc) throw std::invalid_argument("rill::stream: unknown flavour");
  return f;
}
backpressure checked(backpressure p) {
  if (p != backpressure::block && p != backpressure::drop && p != backpressure::drop_oldest) {
    throw std::invalid_argument("rill::stream: unknown backpressure policy");
  }
  return p;
}
clock_kind checked(clock_kind c) {
  if (static_cast<std::uint8_t>(c) > static_cast<std::uint8_t>(clock_kind::steady)) {
    throw std::invalid_argument("rill::stream: unknown clock");
  }
  return c;
}

// The counters block is one false-sharing range, at the start of the channel's allocation.
constexpr std::size_t kCountersBytes = detail::kFalseSharingRange;

// Layout of the one allocation behind a channel: counters, the channel object (MPMC: one per lane), slots,
// turns (MPMC), arena. Lane k owns slots and turns [k * capacity / lanes, (k + 1) * capacity / lanes).
struct channel_layout {
  static constexpr std::size_t channel_offset = kCountersBytes;
  std::size_t slots_offset;
  std::size_t turns_offset;
  std::size_t arena_offset;
  std::size_t total;

  // `slot_spacing_log2`: the stream's (0 for every MPMC ring: slot_spacing_log2_for).
  channel_layout(bool spsc_ring, std::size_t capacity, unsigned slot_spacing_log2, std::size_t lanes,
                 std::size_t arena_bytes) noexcept {
    const std::size_t channel_size =
        spsc_ring ? sizeof(detail::spsc_channel) : lanes * sizeof(detail::mpmc_channel);
    slots_offset = detail::align_up(channel_offset + channel_size, detail::kFalseSharingRange);
    turns_offset = slots_offset + detail::slot_ring::bytes_for(capacity, slot_spacing_log2);
    const std::size_t turns_size = spsc_ring ? 0 : capacity * sizeof(std::atomic<std::uint64_t>);
    arena_offset = detail::align_up(turns_offset + turns_size, detail::kFalseSharingRange);
    total = arena_offset + arena_bytes;
  }
};

constexpr std::align_val_t kChannelAlignment{detail::kFalseSharingRange};

// Which MPMC lane a thread uses. A producer always sends into lane (its ordinal mod lanes): one producer's
// events then stay in one FIFO ring, which keeps their order. A consumer looks first in lane (its ordinal
// + rotation) mod lanes, then in the others. The rotation is the stream's consumed count / 4096, refreshed
// every 256 takes: consumers with distinct ordinals keep to distinct lanes (no contention on one head)
// while all of them move on together, so no lane waits long for a consumer (a busy lane cannot starve the
// others). Per thread, not per stream: a thread that uses several laned streams has one ordinal for all.
struct lane_affinity {
  bool has_producer_ordinal = false;
  bool has_consumer_ordinal = false;
  std::uint32_t producer_ordinal = 0;
  std::uint32_t consumer_ordinal = 0;
  std::uint32_t consumer_rotation = 0;
  std::uint32_t takes_until_rotation = 0;
};
constexpr std::uint32_t kTakesPerRotationCheck = 256;
constexpr unsigned kEventsPerRotationLog2 = 12;
thread_local lane_affinity t_lane_affinity;
// Ordinals for threads' first laned send and receive. Relaxed: each is only a distinct number.
std::atomic<std::uint32_t> g_next_producer_ordinal{0};
std::atomic<std::uint32_t> g_next_consumer_ordinal{0};

detail::mpmc_channel& producer_lane(detail::mpmc_channel& ch) noexcept {
  const std::uint32_t lanes = ch.lanes();
  if (lanes == 1) return ch;
  lane_affinity& me = t_lane_affinity;
  if (!me.has_producer_ordinal) {
    me.producer_ordinal = g_next_producer_ordinal.fetch_add(1, std::memory_order_relaxed);  // a number only
    me.has_producer_ordinal = true;
  }
  return ch.lane(me.producer_ordinal & (lanes - 1));
}

// Waiting for another thread to finish a step it has already begun: pause first, then yield the core (it
// may be the one that thread needs, with more threads than cores).
void backoff(std::uint32_t attempt) noexcept {
  if (attempt < 64) {
    detail::cpu_relax();
  } else {
    std::this_thread::yield();
  }
}

// The most events a batch send claims with one CAS on an MPMC tail: bounds its scan of the batch for events
// that need no checks, so a batch that keeps meeting a full ring under drop is not scanned over and over.
constexpr std::size_t kMaxRunClaim = 64;

// drop_oldest gives up evicting after this many back-offs (64 pauses, then yields): the oldest slot may
// be this very thread's own open claim (MPMC allows a send while a claim is open), which no wait frees.
constexpr std::uint32_t kMaxEvictionBackoffs = 64 + 1024;

// Arena record tags under drop_oldest (record_arena::try_claim's tag; 0 is untagged): 1 + the lane index
// for text whose event is in, or about to be published into, that lane; kOpenClaimTag for text a
// send_claim reserved and has not committed.
constexpr std::uint32_t kOpenClaimTag = detail::record_arena::kMaxTag;
std::uint32_t lane_tag(std::uint32_t lane_index) noexcept {
  return lane_index + 1;
}
std::uint32_t lane_tag(const detail::mpmc_channel& ch, const detail::mpmc_channel& lane) noexcept {
  return lane_tag(static_cast<std::uint32_t>(&lane - &ch));  // lanes are an array starting at ch (at most 64)
}

}  // namespace

std::string_view to_string(flavour f) noexcept { return f == flavour::spsc ? "spsc" : "mpmc"; }

std::string_view to_string(backpressure p) noexcept {
  switch (p) {
    case backpressure::block: return "block";
    case backpressure::drop: return "drop";
    case backpressure::drop_oldest: return "drop_oldest";
  }
  return "unknown";
}

std::string_view to_string(slot_layout l) noexcept {
  switch (l) {
    case slot_layout::packed:
      return "packed";
    case slot_layout::padded:
      return "padded";
  }
  return "unknown";
}

std::uint8_t stream::initial_state(flavour kind, backpressure policy, clock_kind stamping) noexcept {
  std::uint8_t state = spsc_ring_for(kind, policy) ? 0 : kMpmcRingState;
  if (policy == backpressure::block) state |= kBlockPolicyState;
  switch (stamping) {
    case clock_kind::none: break;
    case clock_kind::coarse: state |= kCoarseStampState; break;
    case clock_kind::tsc: state |= kTscStampState; break;
    case clock_kind::steady: state |= kSteadyStampState; break;
  }
  return state;
}

stream::stream(const stream_options& options)
    : state_(initial_state(checked(options.kind), checked(options.policy), checked(options.stamping))),
      kind_(options.kind),
      policy_(options.policy),
      stamping_(options.stamping),
      capacity_log2_(static_cast<std::uint8_t>(
          log2_of(std::max(normalized_capacity(options.capacity), 2 * normalized_lanes(options))))),
      lanes_log2_(static_cast<std::uint8_t>(log2_of(normalized_lanes(options)))),
      slot_spacing_log2_(slot_spacing_log2_for(options)),
      resume_room_log2_(resume_room_log2_for(options, std::size_t{1} << capacity_log2_)),
      arena_bytes_(static_cast<std::uint32_t>(normalized_arena(options.arena_bytes))),
      spin_iterations_(options.spin_iterations) {
  static_assert(sizeof(counters_block) == kCountersBytes);
  if (!options.allocate_on_first_send && allocate_channel() == nullptr) throw std::bad_alloc();
}

stream::~stream() {
  void* ch = channel_.load(std::memory_order_acquire);  // [C1] the last user is gone; see the constructor
  if (ch != nullptr) destroy_channel(ch);
}

void stream::destroy_channel(void* ch) noexcept {
  char* base = static_cast<char*>(ch) - channel_layout::channel_offset;
  if (uses_spsc_ring()) {
    static_cast<detail::spsc_channel*>(ch)->~spsc_channel();
  } else {
    auto& lane0 = *static_cast<detail::mpmc_channel*>(ch);
    for (std::uint32_t i = lane0.lanes(); i-- > 0;) lane0.lane(i).~mpmc_channel();
  }
  reinterpret_cast<counters_block*>(base)->~counters_block();
  ::operator delete(base, kChannelAlignment);
}

void* stream::allocate_channel() noexcept {
  const bool spsc_ring = uses_spsc_ring();
  const std::size_t capacity = this->capacity();
  const std::size_t lanes = this->lanes();
  const channel_layout layout(spsc_ring, capacity, slot_spacing_log2_, lanes, arena_bytes_);
  char* base = static_cast<char*>(::operator new(layout.total, kChannelAlignment, std::nothrow));
  if (base == nullptr) return nullptr;
  // The arena must start zeroed (record_arena.hpp says why); slots need no initialization.
  if (arena_bytes_ != 0) std::memset(base + layout.arena_offset, 0, arena_bytes_);
  new (base) counters_block();
  auto* slots = reinterpret_cast<event*>(base + layout.slots_offset);
  char* arena = arena_bytes_ != 0 ? base + layout.arena_offset : nullptr;
  // Producers park on a full arena only under block; the arena wakes them whenever its head moves.
  detail::wait_word* room_waiters = policy_ == backpressure::block ? &producers_ : nullptr;
  void* ch;
  if (spsc_ring) {
    const detail::slot_ring ring(slots, capacity, slot_spacing_log2_);
    ch = new (base + layout.channel_offset)
        detail::spsc_channel(ring, arena, arena_bytes_, room_waiters, resume_room());
  } else {
    // Lane 0 holds the arena and the lane count; each lane gets an equal share of slots and turns.
    auto* turns = reinterpret_cast<std::atomic<std::uint64_t>*>(base + layout.turns_offset);
    auto* lane_objects = reinterpret_cast<detail::mpmc_channel*>(base + layout.channel_offset);
    const std::size_t per_lane = capacity / lanes;
    for (std::size_t i = 0; i < lanes; ++i) {
      new (&lane_objects[i]) detail::mpmc_channel(slots + i * per_lane, turns + i * per_lane, per_lane,
                                                  i == 0 ? arena : nullptr, arena_bytes_, room_waiters,
                                                  static_cast<std::uint32_t>(lanes));
    }
    ch = lane_objects;
  }
  void* expected = nullptr;
  // [C2] release: the constructed channel is visible to every thread that acquires the pointer ([C1]).
  // MPMC producers may race to allocate; the loser frees its copy and uses the winner's.
  if (channel_.compare_exchange_strong(expected, ch, std::memory_order_release, std::memory_order_acquire)) {
    return ch;
  }
  destroy_channel(ch);
  return expected;
}

detail::record_arena* stream::arena_of(void* ch) const noexcept {
  if (uses_spsc_ring()) return &static_cast<detail::spsc_channel*>(ch)->arena();
  return &static_cast<detail::mpmc_channel*>(ch)->arena();
}

stream::counters_block* stream::counters_of(void* ch) const noexcept {
  return reinterpret_cast<counters_block*>(static_cast<char*>(ch) - channel_layout::channel_offset);
}

void stream::note_dropped(void* ch) noexcept {
  counters_of(ch)->rejected.fetch_add(1, std::memory_order_relaxed);  // a count; orders nothing
}
void stream::note_evicted(void* ch) noexcept {
  counters_of(ch)->evicted.fetch_add(1, std::memory_order_relaxed);  // a count; orders nothing
}
void stream::note_send_wait(void* ch) noexcept {
  counters_of(ch)->send_waits.fetch_add(1, std::memory_order_relaxed);  // a count; orders nothing
}
void stream::note_receive_park(void* ch) noexcept {
  counters_of(ch)->receive_parks.fetch_add(1, std::memory_order_relaxed);  // a count; orders nothing
}

// Moves a slot's borrowed text into the arena, its record tagged with `tag` (record_arena::try_claim). On
// failure the slot is left unpublished.
status stream::prepare_text(event& slot, detail::record_arena& arena, std::uint32_t tag) noexcept {
  if (!slot.text_is_external()) return status::invalid;  // check_sendable let only external text through
  const std::size_t size = slot.text_size();
  if (size == 0) {
    slot.set_arena_block(nullptr, 0);  // empty long text cannot happen, but stay well-defined
    return status::ok;
  }
  char* dest = uses_spsc_ring() ? arena.try_claim<false>(size, tag) : arena.try_claim<true>(size, tag);
  if (dest == nullptr) return status::full;
  slot.move_text_to_arena(dest);
  return status::ok;
}

inline status stream::try_send_once(const event& e, std::uint64_t now) noexcept {
  const status valid = check_sendable(e);
  if (valid != status::ok) [[unlikely]] return valid;
  void* ch = channel_or_allocate();
  if (ch == nullptr) [[unlikely]] return status::full;  // the lazy allocation failed
  status s;
  if (uses_spsc_ring()) {
    s = try_send_spsc(*static_cast<detail::spsc_channel*>(ch), e, now);
  } else {
    s = try_send_mpmc(*static_cast<detail::mpmc_channel*>(ch), e, now);
  }
  if (s == status::ok) {
    consumers_.notify_after_publish();
  } else if (s == status::full && policy_ != backpressure::block) {
    note_dropped(ch);  // refused under a dropping policy: the newest event is the one dropped
  }
  return s;
}

inline status stream::try_send_spsc(detail::spsc_channel& ch, const event& e, std::uint64_t now) noexcept {
  std::uint64_t position;
  event* slot = ch.try_reserve(position);
  if (slot == nullptr) return status::full;
  const clock_kind stamping = stamping_;  // read before the copy, whose byte stores could alias it
  detail::spsc_channel::fill(slot, e);    // every byte but the sequence word, which publish() writes
  if (!e.text_is_inline()) [[unlikely]] {
    const status s = prepare_text(*slot, ch.arena());
    if (s != status::ok) return s;  // nothing published; the slot is simply reused
  }
  if (stamping != clock_kind::none) slot->set_timestamp(stamping, now);
  ch.publish(slot, position);
  return status::ok;
}

// Every send try_send()'s inline path does not finish: closed, not yet allocated, full, validation, long
// text, MPMC rings, and the steady clock.
status stream::try_send_general(const event& e) noexcept {
  const std::uint8_t state = state_.load(std::memory_order_relaxed);  // [C5], as in try_send()
  if ((state & kClosedState) != 0) return status::closed;
  // The common MPMC send, as lean as try_send()'s inline SPSC path: an allocated ring, an event that needs
  // no checks beyond its kind, a free slot in this producer's lane, no clock or the coarse one or the TSC.
  if ((state & (kMpmcRingState | kSteadyStampState)) == kMpmcRingState && e.validates_trivially())
      [[likely]] {
    if (void* ch = channel(); ch != nullptr) [[likely]] {
      detail::mpmc_channel& lane = producer_lane(*static_cast<detail::mpmc_channel*>(ch));
      std::uint64_t ticket;
      if (event* slot = lane.try_claim(ticket); slot != nullptr) [[likely]] {
        *slot = e;
        stamp_from_state(*slot, state);
        lane.publish(slot, ticket);
        consumers_.notify_after_publish();
        return status::ok;
      }
    }
  }
  return try_send_once(e, read_stamp_clock());
}

status stream::try_send_mpmc(detail::mpmc_channel& ch, const event& e, std::uint64_t now) noexcept {
  const bool single_producer = kind_ == flavour::spsc;
  detail::mpmc_channel& lane = producer_lane(ch);
  char* text = nullptr;
  if (e.text_is_external()) {
    if (const std::size_t text_size = e.text_size(); text_size != 0) {
      if (policy_ == backpressure::drop_oldest) {
        text = claim_text_evicting(ch, lane, text_size, lane_tag(ch, lane));
      } else {
        text =
            single_producer ? ch.arena().try_claim<false>(text_size) : ch.arena().try_claim<true>(text_size);
      }
      if (text == nullptr) return status::full;
    }
  }
  std::uint64_t ticket;
  event* slot;
  for (std::uint32_t attempt = 0; (slot = lane.try_claim(ticket)) == nullptr; ++attempt) {
    if (policy_ != backpressure::drop_oldest) {
      if (text != nullptr) ch.arena().release(text);
      return status::full;
    }
    // A full ring under drop_oldest always has an oldest event to evict, except for a moment: when its
    // producer has claimed but not yet published it, or a consumer has taken but not yet freed the slot
    // we need. Both finish within a few instructions unless preempted, so back off (pause, then yield)
    // and retry rather than refuse the send; up to a bound, since that claim may be this thread's own.
    if (!evict_oldest(ch, lane)) {
      if (attempt >= kMaxEvictionBackoffs) {
        if (text != nullptr) ch.arena().release(text);
        return status::full;
      }
      backoff(attempt);
    }
  }
  *slot = e;
  if (text != nullptr) slot->move_text_to_arena(text);
  stamp(*slot, now);
  lane.publish(slot, ticket);
  return status::ok;
}

// drop_oldest: the producer takes the oldest event of its lane as a consumer would and discards it. False
// when nothing could be taken right now.
bool stream::evict_oldest(detail::mpmc_channel& ch, detail::mpmc_channel& lane) noexcept {
  std::uint64_t ticket;
  event* slot = lane.try_take(ticket);
  if (slot == nullptr) return false;
  const event victim = *slot;
  lane.release_slot(ticket);
  if (victim.kind() == event_kind::none) {  // a void slot: no event to drop, but it leaves the ring
    counters_of(&ch)->voids_taken.fetch_add(1, std::memory_order_relaxed);  // a count; orders nothing
    return true;
  }
  if (victim.text_is_in_arena()) ch.arena().release(victim.text_block().data());
  note_evicted(&ch);
  return true;
}

// Arena full: only evicting the event that holds the arena's oldest record moves its head. Under
// drop_oldest every record a send or claim takes is tagged (record_arena's claim tag): with its lane
// (lane_tag) from just before its event is published, with kOpenClaimTag while a send_claim holds it
// unpublished. So the oldest record tells whether evicting from this lane can reach it. When a consumer
// holds it (delivered), another lane's event does, or an open claim does, no eviction here frees anything,
// and the send gives up at once instead of emptying the lane for nothing. Borrowed text a commit() moves
// into the arena is tagged with the claim's lane, as a send's text is. A lap of the lane's
// capacity in evictions bounds the rest: other producers may keep refilling the lane with events that
// hold no text.
char* stream::claim_text_evicting(detail::mpmc_channel& ch, detail::mpmc_channel& lane, std::size_t size,
                                  std::uint32_t tag) noexcept {
  using arena_t = detail::record_arena;
  arena_t& arena = ch.arena();
  const std::uint32_t own_lane = lane_tag(ch, lane);
  const bool single_producer = kind_ == flavour::spsc;
  std::size_t evicted = 0;
  for (std::uint32_t attempt = 0;; ++attempt) {
    char* text = single_producer ? arena.try_claim<false>(size, tag) : arena.try_claim<true>(size, tag);
    if (text != nullptr) return text;
    std::uint32_t state = 0;
    bool wait = true;  // busy (another advancer), empty, or released: the head is about to move
    if (arena.peek_oldest(state) == arena_t::oldest::read && state != arena_t::kReleased) {
      const std::uint32_t holder = state >> arena_t::kTagShift;
      if (state == arena_t::kDelivered || (holder != 0 && holder != own_lane)) return nullptr;
      wait = false;
    }
    if (!wait) {
      if (evicted == lane.capacity()) return nullptr;  // a lap of evictions freed nothing
      if (evict_oldest(ch, lane)) {
        ++evicted;
        continue;
      }
      if (lane.consumed() == lane.accepted()) return nullptr;
    }
    if (attempt >= kMaxEvictionBackoffs) return nullptr;
    backoff(attempt);
  }
}

// The lanes' total consumed count, in units of 2^kEventsPerRotationLog2 events.
std::uint32_t rotation_of(const detail::mpmc_channel& ch) noexcept {
  std::uint64_t consumed = 0;
  for (std::uint32_t i = 0; i < ch.lanes(); ++i) consumed += ch.lane(i).consumed();
  return static_cast<std::uint32_t>(consumed >> kEventsPerRotationLog2);
}

std::size_t stream::take_mpmc(detail::mpmc_channel& ch, event* out, std::size_t max) noexcept {
  // A single receive gets its own copy of the loops below with max fixed at 1.
  return max == 1 ? take_mpmc_up_to(ch, out, 1) : take_mpmc_up_to(ch, out, max);
}

[[gnu::always_inline]] inline std::size_t stream::take_mpmc_up_to(detail::mpmc_channel& ch, event* out,
                                                                  std::size_t max) noexcept {
  const std::uint32_t lanes = ch.lanes();
  lane_affinity* me = nullptr;
  std::uint32_t first_lane = 0;
  if (lanes > 1) {
    me = &t_lane_affinity;
    if (!me->has_consumer_ordinal) {
      me->consumer_ordinal = g_next_consumer_ordinal.fetch_add(1, std::memory_order_relaxed);  // a number only
      me->has_consumer_ordinal = true;
      me->consumer_rotation = rotation_of(ch);
      me->takes_until_rotation = kTakesPerRotationCheck;
    }
    first_lane = me->consumer_ordinal + me->consumer_rotation;
  }
  std::size_t n = 0;
  for (std::uint32_t step = 0; step < lanes && n < max; ++step) {
    detail::mpmc_channel& lane = ch.lane((first_lane + step) & (lanes - 1));
    std::uint64_t first;
    for (std::size_t run; n < max && (run = lane.try_take_run(first, max - n)) != 0;) {
      for (std::uint64_t ticket = first; ticket != first + run; ++ticket) {
        event& e = out[n];
        e = *lane.slot_of(ticket);
        // A drop_oldest producer that finds the arena full asks whether a consumer holds its oldest record.
        // Marked before the slot is freed, which narrows the moment in which a producer sees neither.
        if (policy_ == backpressure::drop_oldest && e.text_is_in_arena()) [[unlikely]] {
          if (const char* text = e.text_block().data(); text != nullptr) ch.arena().mark_delivered(text);
        }
        lane.release_slot(ticket);
        if (e.kind() == event_kind::none) [[unlikely]] {
          counters_of(&ch)->voids_taken.fetch_add(1, std::memory_order_relaxed);  // a count; orders nothing
          after_consume();  // a void slot (failed commit or abort) is skipped, but its room is real
          continue;
        }
        ++n;
      }
    }
  }
  if (me != nullptr && n != 0) {
    if (me->takes_until_rotation <= n) {
      me->consumer_rotation = rotation_of(ch);
      me->takes_until_rotation = kTakesPerRotationCheck;
    } else {
      me->takes_until_rotation -= static_cast<std::uint32_t>(n);
    }
  }
  return n;
}

bool stream::producer_may_resume() const noexcept {
  void* ch = channel();
  if (ch == nullptr || !uses_spsc_ring()) return true;  // MPMC rings refill at once
  return static_cast<const detail::spsc_channel*>(ch)->resume_room_may_be_free();
}

void stream::release_text(const event& e) noexcept {
  void* ch = channel();
  RILL_ASSERT(ch != nullptr && e.text_is_in_arena(), "release of text this stream does not hold");
  const std::string_view block = e.text_block();
  if (block.data() == nullptr) return;
  arena_of(ch)->release(block.data());  // the arena wakes blocked producers if its head moved
}

status stream::send_until(const event& e, time_point deadline) noexcept {
  if (policy_ != backpressure::block) return try_send(e);
  return wait_for(
      waiter::sender, [&]() noexcept { return try_send(e); }, deadline, nullptr);
}

status stream::send(const event& e, std::stop_token token) noexcept {
  if (policy_ != backpressure::block) return try_send(e);
  if (!token.stop_possible()) return send(e);
  // Wakes this (and every) parked producer when stopped; the waiter then sees stop_requested().
  std::stop_callback wake(token, [this]() noexcept { producers_.wake_all(); });
  return wait_for(
      waiter::sender, [&]() noexcept { return try_send(e); }, time_point::max(), &token);
}

std::size_t stream::try_send_batch(std::span<const event> events, status* why) noexcept {
  if ((state_.load(std::memory_order_relaxed) & kClosedState) != 0) {  // [C5]
    if (why != nullptr) *why = status::closed;
    return 0;
  }
  const std::uint64_t now = read_stamp_clock();
  std::size_t done = 0;
  status s = status::ok;
  void* ch = channel_or_allocate();
  if (ch == nullptr) {
    s = status::full;
  } else if (uses_spsc_ring()) {
    // At most one acquire of the consumer's index for the whole batch. A consumer that has caught up polls
    // the batch's first slot, and reads each later slot only after it has acquired the one before. So the
    // first event is built in `first_event` and written to its slot last, then published ([S1]): the
    // producer's stores into the other slots never wait on the line the consumer keeps pulling, and those
    // slots can be written whole, sequence word included, by write_unpolled_slots (a line in two stores
    // instead of five lets the core keep more lines in flight). A slot that needs more (long text moved
    // into the arena, full validation) is filled as in try_send and stores its own sequence word. The ring
    // geometry is copied to locals: the slot copies (char stores) could otherwise alias it and force
    // reloads on every event.
    auto& c = *static_cast<detail::spsc_channel*>(ch);
    const std::size_t room = std::min(events.size(), c.free_slots(events.size()));
    const detail::slot_ring ring = c.producer_ring();
    const std::uint64_t first = c.next_sequence();
    const detail::slot_stamp whole_slot_stamp(stamping_, now);
    event first_event;
    std::size_t i = 0;
    while (i < room) {
      if (i != 0) {
        i += detail::write_unpolled_slots(ring, first + i, &events[i], room - i, whole_slot_stamp);
        if (i == room) break;
      }
      const event& e = events[i];
      s = check_sendable(e);
      if (s != status::ok) [[unlikely]] break;
      event* const slot = i == 0 ? &first_event : ring.at(first + i);
      detail::spsc_channel::fill(slot, e);
      if (!e.text_is_inline()) {
        s = prepare_text(*slot, c.arena());
        if (s != status::ok) break;  // this slot stays unpublished; the next send overwrites it
      }
      stamp(*slot, now);
      // [S1] release, though the first slot's release below would order it too (no one polls this slot yet).
      if (i != 0) detail::spsc_channel::publish_slot(slot, first + i);
      ++i;
    }
    if (i != 0) {
      event* const first_slot = ring.at(first);
      detail::spsc_channel::fill(first_slot, first_event);
      detail::spsc_channel::publish_slot(first_slot, first);  // [S1]: publishes the whole batch
      c.advance(i);
      consumers_.notify_after_publish();
    }
    done = i;
    if (s == status::ok && done < events.size()) s = status::full;
    if (s == status::full && policy_ == backpressure::drop) {
      // Under drop the rest of the batch is dropped, each one counted.
      for (; done < events.size(); ++done) note_dropped(ch);
    }
  } else if (policy_ != backpressure::drop_oldest) {
    // MPMC under block or drop: a run of events that need no checks beyond their kind and no arena goes in
    // with one claim on the tail (try_claim_run); any other event, and one that meets a full ring, takes
    // try_send_once's path, exactly as a single send would.
    auto& c = *static_cast<detail::mpmc_channel*>(ch);
    detail::mpmc_channel& lane = producer_lane(c);
    bool dropped = false;
    while (done < events.size()) {
      std::size_t plain = 0;
      const std::size_t scan = std::min(events.size() - done, kMaxRunClaim);
      while (plain < scan && events[done + plain].validates_trivially()) ++plain;
      std::uint64_t first;
      if (const std::size_t run = plain == 0 ? 0 : lane.try_claim_run(first, plain); run != 0) {
        for (std::size_t i = 0; i < run; ++i) {
          event* const slot = lane.slot_of(first + i);
          *slot = events[done + i];
          stamp(*slot, now);
          lane.publish(slot, first + i);
        }
        done += run;
        consumers_.notify_after_publish();
        continue;
      }
      s = try_send_once(events[done], now);
      if (s == status::full && policy_ == backpressure::drop) {  // dropped, counted by try_send_once
        dropped = true;
        ++done;
        continue;
      }
      if (s != status::ok) break;
      ++done;
    }
    if (s == status::ok && dropped) s = status::full;  // as on the SPSC ring
  } else {
    bool dropped = false;
    for (; done < events.size(); ++done) {
      s = try_send_once(events[done], now);
      if (s == status::full && policy_ != backpressure::block) {  // dropped, counted by try_send_once
        dropped = true;
        continue;
      }
      if (s != status::ok) break;
    }
    // As on the SPSC ring: a batch that lost events to drop reports full. drop_oldest reports ok (it evicted
    // older events to make room; a refusal there means a consumer holds the oldest arena text).
    if (s == status::ok && dropped && policy_ == backpressure::drop) s = status::full;
    if (s == status::full && policy_ == backpressure::drop_oldest) s = status::ok;
  }
  if (why != nullptr) *why = s;
  return done;
}

status stream::send_batch(std::span<const event> events, std::size_t* sent) noexcept {
  std::size_t done = 0;
  status s = status::ok;
  while (done < events.size()) {
    status why;
    done += try_send_batch(events.subspan(done), &why);
    if (done == events.size()) break;
    if (why != status::full || policy_ != backpressure::block) {
      s = why;
      break;
    }
    // Wait for room for the next event, then go on in batches.
    s = wait_for(
        waiter::sender,
        [&]() noexcept {
          const status one = try_send(events[done]);
          if (one == status::ok) ++done;
          return one;
        },
        time_point::max(), nullptr);
    if (s != status::ok) break;
  }
  if (sent != nullptr) *sent = done;
  return s;
}

status stream::try_claim(send_claim& claim, std::size_t text_bytes) noexcept {
  RILL_ASSERT(!claim.active(), "try_claim on a claim that was neither committed nor aborted");
  if ((state_.load(std::memory_order_relaxed) & kClosedState) != 0) return status::closed;  // [C5]
  if (text_bytes > max_text()) return status::too_large;
  void* ch = channel_or_allocate();
  if (ch == nullptr) return status::full;
  const bool spsc_ring = uses_spsc_ring();
  detail::record_arena& arena = *arena_of(ch);
  char* text = nullptr;
  event* slot;
  std::uint64_t ticket = 0;
  std::uint32_t lane_index = 0;
  if (spsc_ring) {
    if (text_bytes != 0 && (text = arena.try_claim<false>(text_bytes)) == nullptr) {
      if (policy_ == backpressure::drop) note_dropped(ch);
      return status::full;
    }
    slot = static_cast<detail::spsc_channel*>(ch)->try_reserve();
  } else {
    auto& c = *static_cast<detail::mpmc_channel*>(ch);
    detail::mpmc_channel& lane = producer_lane(c);
    lane_index = static_cast<std::uint32_t>(&lane - &c);
    if (text_bytes != 0) {
      text = policy_ == backpressure::drop_oldest ? claim_text_evicting(c, lane, text_bytes, kOpenClaimTag)
                                                  : arena.try_claim<true>(text_bytes);
    }
    slot = nullptr;
    if (text_bytes == 0 || text != nullptr) {
      while ((slot = lane.try_claim(ticket)) == nullptr && policy_ == backpressure::drop_oldest &&
             evict_oldest(c, lane)) {
      }
    }
  }
  if (slot == nullptr) {
    if (text != nullptr) arena.release(text);
    if (policy_ != backpressure::block) note_dropped(ch);  // the newest event is the one dropped
    return status::full;
  }
  claim.slot_ = slot;
  claim.ticket_ = ticket;
  claim.lane_ = lane_index;
  claim.text_ = text;
  claim.text_capacity_ = text_bytes;
  return status::ok;
}

status stream::commit(send_claim& claim) noexcept {
  RILL_ASSERT(claim.active(), "commit without an active claim");
  void* ch = channel();
  // [C5] as in try_send, one load for both bits (the ring bit never changes): a commit after close() is a
  // send after close(); one racing with it may still publish.
  const std::uint8_t state = state_.load(std::memory_order_relaxed);
  const bool spsc_ring = (state & kMpmcRingState) == 0;
  detail::record_arena& arena = *arena_of(ch);
  event& staged = claim.staging_;
  status s = (state & kClosedState) != 0 ? status::closed : staged.validate();
  if (s == status::ok && staged.text_is_in_arena()) s = status::invalid;  // reserved text is referred to as external
  if (s == status::ok && staged.text_is_external()) {
    const std::size_t size = staged.text_size();
    const std::string_view first = staged.field(0);
    const bool in_reserved = claim.text_ != nullptr && size <= claim.text_capacity_ &&
                             (size == 0 || first.data() == claim.text_);
    if (in_reserved) {
      staged.move_text_to_arena(claim.text_);  // fields already laid out in place: memmove to themselves
      // Its lane from now on: tagged before the publication below, which orders the tag before any
      // consumer's mark (claim_text_evicting).
      if (policy_ == backpressure::drop_oldest) arena.retag(claim.text_, lane_tag(claim.lane_));
      claim.text_ = nullptr;  // now owned by the event
    } else if (size > max_text()) {
      s = status::too_large;
    } else {
      // Tagged with its lane as a send's text is: tagged before the publication below (claim_text_evicting).
      s = prepare_text(staged, arena, policy_ == backpressure::drop_oldest ? lane_tag(claim.lane_) : 0);
    }
  }
  if (claim.text_ != nullptr) arena.release(claim.text_);  // reserved but unused
  event* const slot = claim.slot_;
  if (s == status::ok) {
    const std::uint64_t now = read_stamp_clock();
    if (spsc_ring) {
      auto& c = *static_cast<detail::spsc_channel*>(ch);
      detail::spsc_channel::fill(slot, staged);  // the one copy claim staging costs
      stamp(*slot, now);
      c.publish(slot);
    } else {
      *slot = staged;
      stamp(*slot, now);
      static_cast<detail::mpmc_channel*>(ch)->lane(claim.lane_).publish(slot, claim.ticket_);
    }
    consumers_.notify_after_publish();
  } else if (!spsc_ring) {
    // Nothing of the staged event's text is ours to release: text placed above made s ok, and arena text
    // the caller put there (refused as invalid) belongs to its owner.
    *slot = event{};  // void slot: consumers skip it
    counters_of(ch)->voided.fetch_add(1, std::memory_order_relaxed);  // a count; orders nothing
    static_cast<detail::mpmc_channel*>(ch)->lane(claim.lane_).publish(slot, claim.ticket_);
    consumers_.notify_after_publish();  // events behind the void slot become reachable
  }
  claim.slot_ = nullptr;
  claim.ticket_ = 0;
  claim.lane_ = 0;
  claim.text_ = nullptr;
  claim.text_capacity_ = 0;
  return s;
}

void stream::abort(send_claim& claim) noexcept {
  RILL_ASSERT(claim.active(), "abort without an active claim");
  void* ch = channel();
  if (claim.text_ != nullptr) arena_of(ch)->release(claim.text_);
  if (!uses_spsc_ring()) {
    *claim.slot_ = event{};
    counters_of(ch)->voided.fetch_add(1, std::memory_order_relaxed);  // a count; orders nothing
    static_cast<detail::mpmc_channel*>(ch)->lane(claim.lane_).publish(claim.slot_, claim.ticket_);
    consumers_.notify_after_publish();  // events behind the void slot become reachable
  }
  claim.slot_ = nullptr;
  claim.ticket_ = 0;
  claim.lane_ = 0;
  claim.text_ = nullptr;
  claim.text_capacity_ = 0;
}

status stream::receive_until(received& out, time_point deadline) noexcept {
  return wait_for(
      waiter::receiver, [&]() noexcept { return try_receive(out); }, deadline, nullptr);
}

status stream::receive(received& out, std::stop_token token) noexcept {
  if (!token.stop_possible()) return receive(out);
  std::stop_callback wake(token, [this]() noexcept { consumers_.wake_all(); });
  return wait_for(
      waiter::receiver, [&]() noexcept { return try_receive(out); }, time_point::max(), &token);
}

received_batch::received_batch(std::size_t capacity) {
  if (capacity == 0) throw std::invalid_argument("rill::received_batch: capacity must be at least 1");
  events_ = std::make_unique<event[]>(capacity);
  capacity_ = capacity;
}

status stream::receive_batch_until(received_batch& out, time_point deadline) noexcept {
  return wait_for(
      waiter::receiver, [&]() noexcept { return try_receive_batch(out); }, deadline, nullptr);
}

status stream::receive_batch(received_batch& out, std::stop_token token) noexcept {
  if (!token.stop_possible()) return receive_batch(out);
  std::stop_callback wake(token, [this]() noexcept { consumers_.wake_all(); });
  return wait_for(
      waiter::receiver, [&]() noexcept { return try_receive_batch(out); }, time_point::max(), &token);
}

void stream::close() noexcept {
  // [C4] seq_cst: ordered before the wake-ups below; a sender or receiver that parks after it re-checks
  // and sees it (its announce RMW on the same word reads from wake_all's RMW).
  state_.fetch_or(kClosedState, std::memory_order_seq_cst);
  consumers_.wake_all();
  producers_.wake_all();
}

stream::ring_positions stream::positions(void* ch) const noexcept {
  if (uses_spsc_ring()) {
    const auto& c = *static_cast<detail::spsc_channel*>(ch);
    return {c.accepted(), c.consumed()};
  }
  const auto& c = *static_cast<detail::mpmc_channel*>(ch);
  ring_positions sum{0, 0};
  for (std::uint32_t i = 0; i < c.lanes(); ++i) {
    sum.accepted += c.lane(i).accepted();
    sum.consumed += c.lane(i).consumed();
  }
  return sum;
}

std::size_t stream::approx_size() const noexcept {
  void* ch = channel();
  if (ch == nullptr) return 0;
  const ring_positions p = positions(ch);
  return p.accepted > p.consumed ? static_cast<std::size_t>(p.accepted - p.consumed) : 0;
}

stream_counters stream::counters() const noexcept {
  stream_counters c;
  void* ch = channel();
  if (ch == nullptr) return c;
  const auto [accepted, consumed] = positions(ch);
  const counters_block& k = *counters_of(ch);
  // Relaxed loads of counts: a snapshot; exact only at quiescence, as documented.
  const std::uint64_t rejected = k.rejected.load(std::memory_order_relaxed);
  const std::uint64_t evicted = k.evicted.load(std::memory_order_relaxed);
  const std::uint64_t voided = k.voided.load(std::memory_order_relaxed);
  const std::uint64_t voids_taken = k.voids_taken.load(std::memory_order_relaxed);
  // Void slots are ring positions, not events: the accepted ones are not sent, the consumed ones not
  // received, and those still in the ring not buffered. So sent == received + dropped + buffered. The
  // clamps only catch a snapshot that read the counts at different moments (a claim voided between the
  // loads of the ring positions and of `voided`, say).
  c.sent = accepted + rejected > voided ? accepted + rejected - voided : 0;
  c.received = consumed > evicted + voids_taken ? consumed - evicted - voids_taken : 0;
  c.dropped = rejected + evicted;
  c.send_waits = k.send_waits.load(std::memory_order_relaxed);
  c.receive_parks = k.receive_parks.load(std::memory_order_relaxed);
  const std::uint64_t in_ring = accepted > consumed ? accepted - consumed : 0;
  const std::uint64_t voids_in_ring = voided > voids_taken ? voided - voids_taken : 0;
  c.buffered = in_ring > voids_in_ring ? in_ring - voids_in_ring : 0;
  return c;
}

std::uint64_t stream::activity() const noexcept {
  const stream_counters c = counters();
  return c.sent + c.received;
}

std::size_t stream::approx_arena_used() const noexcept {
  void* ch = channel();
  return ch == nullptr ? 0 : arena_of(ch)->approx_used();
}

}  // namespace rill
