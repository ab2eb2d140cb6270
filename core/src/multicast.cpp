#include "rill/multicast.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

#include "rill/detail/assert.hpp"
#include "rill/detail/wait_loop.hpp"

// Memory-model tags [F1]-[F18] are explained in docs/memory_model.md ("Multicast").

namespace rill {
namespace {

constexpr std::size_t kMaxCapacity = std::size_t{1} << 30;
constexpr std::size_t kMinTextBytes = 256;
constexpr std::size_t kMaxSubscribers = 4096;
constexpr std::uint64_t kHasText = std::uint64_t{1} << 63;  // text_pos_ flag: the slot's event has ring text
constexpr std::align_val_t kRingAlignment{detail::kFalseSharingRange};

// Relaxed stores / loads of a slot's eight words, unrolled (a loop that skips the version word costs a
// branch per word). Word `Skip` (the version) is left alone.
template <std::size_t Skip, std::size_t... I>
inline void store_words(std::atomic<std::uint64_t>* words, const std::uint64_t* image,
                        std::index_sequence<I...>) noexcept {
  ((I != Skip ? words[I].store(image[I], std::memory_order_relaxed) : void()), ...);
}
template <std::size_t... I>
inline void load_words(const std::atomic<std::uint64_t>* words, std::uint64_t* image,
                       std::index_sequence<I...>) noexcept {
  ((image[I] = words[I].load(std::memory_order_relaxed)), ...);
}

std::atomic<std::uint64_t>* allocate_words(std::size_t count, std::uint64_t initial) {
  auto* words = static_cast<std::atomic<std::uint64_t>*>(
      ::operator new(count * sizeof(std::atomic<std::uint64_t>), kRingAlignment));
  for (std::size_t i = 0; i < count; ++i) ::new (&words[i]) std::atomic<std::uint64_t>(initial);
  return words;
}

void free_words(std::atomic<std::uint64_t>* words) noexcept {
  // std::atomic<std::uint64_t> is trivially destructible: only the storage goes back.
  if (words != nullptr) ::operator delete(words, kRingAlignment);
}

}  // namespace

struct alignas(detail::kFalseSharingRange) multicast_stream::entry {
  // A hold subscriber's next sequence number; the producer never overwrites it. Written by the subscriber.
  std::atomic<std::uint64_t> cursor{0};
  std::atomic<std::uint8_t> state{kEntryFree};
};

std::string_view to_string(slow_reader policy) noexcept {
  switch (policy) {
    case slow_reader::hold:
      return "hold";
    case slow_reader::skip:
      return "skip";
    case slow_reader::detach:
      return "detach";
  }
  return "unknown";
}

std::string_view to_string(start_at start) noexcept {
  switch (start) {
    case start_at::newest:
      return "newest";
    case start_at::oldest:
      return "oldest";
  }
  return "unknown";
}

// =====================================================================================================
// Construction

multicast_stream::multicast_stream(const multicast_options& options)
    : mask_(0),
      refill_slack_(0),
      text_bytes_(0),
      max_subscribers_(0),
      spin_iterations_(options.spin_iterations),
      policy_(options.policy),
      stamping_(options.stamping) {
  if (options.capacity < 1 || options.capacity > kMaxCapacity) {
    throw std::invalid_argument("rill::multicast_stream: capacity must be 1 to 2^30");
  }
  if (options.max_subscribers < 1 || options.max_subscribers > kMaxSubscribers) {
    throw std::invalid_argument("rill::multicast_stream: max_subscribers must be 1 to 4096");
  }
  if (options.policy != backpressure::block && options.policy != backpressure::drop) {
    throw std::invalid_argument("rill::multicast_stream: policy must be block or drop");
  }
  if (options.stamping != clock_kind::none && options.stamping != clock_kind::coarse &&
      options.stamping != clock_kind::tsc && options.stamping != clock_kind::steady) {
    throw std::invalid_argument("rill::multicast_stream: unknown stamping clock");
  }
  if (options.text_bytes > kMaxCapacity)
    throw std::invalid_argument("rill::multicast_stream: text_bytes over 2^30");
  const std::size_t slots = detail::round_up_pow2(options.capacity + 1);
  mask_ = slots - 1;
  // Only a blocking producer waits for a refill: under drop every refused send is an event lost.
  refill_slack_ = policy_ == backpressure::block && slots / 16 > 1 ? slots / 16 - 1 : 0;
  text_bytes_ =
      options.text_bytes == 0 ? 0 : detail::round_up_pow2(std::max(options.text_bytes, kMinTextBytes));
  max_subscribers_ = static_cast<std::uint32_t>(options.max_subscribers);

  // Allocation order: anything that throws after the first allocation frees what came before.
  std::unique_ptr<entry[]> entries(new entry[max_subscribers_]);
  text_pos_ = std::make_unique<std::uint64_t[]>(slots);
  if (text_bytes_ != 0) staging_ = std::make_unique<std::uint64_t[]>(text_bytes_ / sizeof(std::uint64_t));
  slots_ = allocate_words(slots * kWords, kSlotNever);
  try {
    if (text_bytes_ != 0) text_ = allocate_words(text_bytes_ / sizeof(std::uint64_t), 0);
  } catch (...) {
    free_words(slots_);
    throw;
  }
  entries_ = entries.release();
}

multicast_stream::~multicast_stream() {
  free_words(slots_);
  free_words(text_);
  delete[] entries_;
}

// =====================================================================================================
// Producer

status multicast_stream::check_sendable(const event& e) const noexcept {
  if (e.validates_trivially()) [[likely]]
    return status::ok;
  const status s = e.validate();
  if (s != status::ok) return s;
  if (e.text_is_in_arena()) return status::invalid;  // arena text belongs to some stream's arena
  if (e.text_is_external() && e.text_size() > text_bytes_) return status::too_large;
  return status::ok;
}

status multicast_stream::try_send(const event& e) noexcept {
  // [F9'] relaxed: closed is a hint like stream's [C5] (a send racing close() may still publish). [F16]
  // relaxed: the rescan bit only needs to be seen by the first send whose load follows a holder's
  // heavy barrier; the previous send's light barrier ([W1] in notify_after_publish) orders this load
  // after that send's publication.
  const std::uint32_t control = control_.load(std::memory_order_relaxed);
  if (control != 0) [[unlikely]] {
    if ((control & kClosedBit) != 0) return status::closed;
    admit_holders();
  }
  const status valid = check_sendable(e);
  if (valid != status::ok) [[unlikely]]
    return valid;
  const status s = try_publish(e);
  if (s == status::full && policy_ == backpressure::drop) {
    dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // single writer
  }
  return s;
}

status multicast_stream::send_until(const event& e, time_point deadline) noexcept {
  if (policy_ != backpressure::block) return try_send(e);
  return detail::wait_loop(
      producer_wait_, status::full, [&]() noexcept { return try_send(e); }, deadline, nullptr,
      spin_iterations_,
      [this]() noexcept {
        send_waits_.store(send_waits_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      },
      [this]() noexcept {
        send_parks_.store(send_parks_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      });
}

status multicast_stream::send(const event& e, std::stop_token token) noexcept {
  if (policy_ != backpressure::block) return try_send(e);
  if (!token.stop_possible()) return send(e);
  std::stop_callback wake(token, [this]() noexcept { producer_wait_.wake_all(); });
  return detail::wait_loop(
      producer_wait_, status::full, [&]() noexcept { return try_send(e); }, time_point::max(), &token,
      spin_iterations_,
      [this]() noexcept {
        send_waits_.store(send_waits_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      },
      [this]() noexcept {
        send_parks_.store(send_parks_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      });
}

// May the producer write sequence `seq` (and text up to `text_end`) without overwriting anything a hold
// subscriber has not read, judging by the gate of the last scan?
bool multicast_stream::gate_allows(std::uint64_t seq, std::uint64_t text_end, bool has_text,
                                   std::uint64_t slack) const noexcept {
  // Writing seq overwrites seq - slots, which a holder still needs; `slack` asks for that many more slots.
  if (seq + slack - gate_ > mask_) return false;
  if (!has_text || gate_ == seq) return true;
  // Every text of events >= gate_ lies at or after the gate's recorded position.
  const std::uint64_t floor = text_pos_[gate_ & mask_] & ~kHasText;
  return text_end <= floor + text_bytes_;
}

// The least gate for which gate_allows(seq, text_end, has_text, refill_slack_) holds: the cursor every
// holder must reach before a refused send of `seq` can go ahead. It depends only on the event (its
// sequence number and text end) and on text_pos_ of published events, so it stays the same for as long as
// the producer retries that event (the wake-up argument of [F18] relies on it).
std::uint64_t multicast_stream::gate_needed(std::uint64_t seq, std::uint64_t text_end,
                                            bool has_text) const noexcept {
  // Slots: gate_allows wants seq + slack - gate <= mask_ (refill_slack_ < mask_, so lo <= seq).
  std::uint64_t lo = seq + refill_slack_ > mask_ ? seq + refill_slack_ - mask_ : 0;
  // Text: a gate below seq must have its recorded position at `floor` or above. Positions never decrease
  // from one sequence number to the next (text positions grow, and an event without text records the text
  // head), so the text part holds from the first such sequence number on; a gate equal to seq always
  // passes. Sequences in [lo, seq) are all still in the ring (lo >= seq - mask_), so their text_pos_ is
  // theirs. Binary search: a refused send runs this once per attempt.
  if (!has_text || text_end <= text_bytes_) return lo;
  const std::uint64_t floor = text_end - text_bytes_;
  std::uint64_t hi = seq;
  while (lo < hi) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    if ((text_pos_[mid & mask_] & ~kHasText) >= floor) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// A blocking send was refused until every holder reaches `needed`: publishes it for the holders' cursor
// publications, which wake the parked producer only when they cross it [F18]. Stored only when it changes
// (it is the same for every retry of one event), so the line it shares with the wait words stays put.
void multicast_stream::post_gate_needed(std::uint64_t needed) noexcept {
  // Under drop nobody parks; a try_send under block may be followed by a send of the same event.
  if (policy_ != backpressure::block || needed == needed_) return;
  needed_ = needed;
  // [F18] relaxed: the wait loop's next announce ([W2]) and heavy barrier ([W3]) come after it in this
  // thread, and the barrier pair orders it for a holder (see publish_cursor).
  gate_needed_.store(needed, std::memory_order_relaxed);
}

void multicast_stream::refresh_gate(std::uint64_t seq) noexcept {
  // [F12] with [F13] in attach(), either this scan sees a new holder or the holder sees every sequence
  // number published before the scan (store; barrier; load on both sides). The producer's half is the
  // light barrier: attach() runs the heavy one (membarrier), as parking does (parking.hpp).
  detail::light_barrier();
  std::uint64_t gate = seq;
  // [F15] acquire: pairs with the release in attach(); entries past the high-water mark were never used.
  const std::uint32_t used = entries_used_.load(std::memory_order_acquire);
  for (std::uint32_t i = 0; i < used; ++i) {
    // [F11] acquire: pairs with [F13]/[F10]; the holder's cursor, and the reads before it, are visible.
    if (entries_[i].state.load(std::memory_order_acquire) != kEntryHolding) continue;
    gate = std::min(gate, entries_[i].cursor.load(std::memory_order_acquire));  // [F11]
  }
  gate_ = gate;
}

// A holder attached since the last scan (it set kRescanBit before its heavy barrier): scan again so that
// the gate counts it before anything it may read is overwritten.
void multicast_stream::admit_holders() noexcept {
  // [F16] acquire: pairs with attach()'s release fetch_or; the holder's state and first cursor are visible
  // to the scan. An RMW, so that a holder setting the bit after this clear keeps it set.
  control_.fetch_and(~kRescanBit, std::memory_order_acquire);
  refresh_gate(next_);
}

// Text positions below `reclaimed` are about to be overwritten: every event whose text starts there is no
// longer retained. Events are scanned once each (text_scan_ only moves forward once the write commits).
multicast_stream::text_retirement multicast_stream::find_text_retirement(
    std::uint64_t seq, std::uint64_t reclaimed) const noexcept {
  std::uint64_t x = std::max(text_scan_, seq > mask_ ? seq - mask_ : 0);  // older slots are gone anyway
  std::uint64_t from = text_from_;
  for (; x < seq; ++x) {
    const std::uint64_t pos = text_pos_[x & mask_];
    if ((pos & kHasText) == 0) continue;
    if ((pos & ~kHasText) >= reclaimed) break;  // later texts lie later still
    from = x + 1;
  }
  return {x, from};
}

// Announces that events below `from` are losing their text, then checks once more for a holder that
// attached meanwhile. Returns false, with the announcement withdrawn, when such a holder still needs that
// text: nothing was retired, and the write must wait.
bool multicast_stream::announce_text_retirement(std::uint64_t from, std::uint64_t seq,
                                                std::uint64_t text_end) noexcept {
  // [F17] store; light barrier; load, against attach()'s fetch_or; heavy barrier; load of this bound:
  // either this load sees the holder's bit, or the holder starts at `from` or later.
  text_retiring_from_.store(from, std::memory_order_relaxed);
  detail::light_barrier();
  // [F16] relaxed: the barrier above orders it; admit_holders() acquires.
  if ((control_.load(std::memory_order_relaxed) & kRescanBit) == 0) [[likely]]
    return true;
  admit_holders();
  if (gate_allows(seq, text_end, true)) return true;
  // [F17] relaxed: a holder that read the withdrawn bound only started later than it had to.
  text_retiring_from_.store(text_from_, std::memory_order_relaxed);
  return false;
}

status multicast_stream::try_publish(const event& e) noexcept {
  const std::uint64_t seq = next_;
  const bool has_text = !e.text_is_inline();
  const std::size_t text_size = has_text ? e.text_size() : 0;
  std::uint64_t text_start = text_head_;
  std::uint64_t text_end = text_head_;
  if (has_text) {
    const std::uint64_t bytes = detail::align_up(text_size, sizeof(std::uint64_t));
    const std::uint64_t offset = text_start & (text_bytes_ - 1);
    if (offset + bytes > text_bytes_)
      text_start += text_bytes_ - offset;  // records never wrap: skip the tail
    text_end = text_start + bytes;
  }
  if (!gate_allows(seq, text_end, has_text)) {
    // Behind a holder that was a whole ring behind, wait until it freed a refill's worth of slots (1/16 of
    // the ring), then write that many in a burst: one event per freed slot would move the slot lines and
    // the holder's cursor line between the two cores for every event.
    const std::uint64_t stale = gate_;
    refresh_gate(seq);
    if (!gate_allows(seq, text_end, has_text, refill_slack_)) {
      // Keep failing the cached check until a refill is free. The minimum stays a safe bound: a holder
      // that attached since the last scan may sit below the stale gate.
      RILL_ASSERT(gate_ < gate_needed(seq, text_end, has_text),
                  "gate_needed() must agree with gate_allows()");
      post_gate_needed(gate_needed(seq, text_end, has_text));
      gate_ = std::min(stale, gate_);
      return status::full;
    }
  }
  if (has_text && text_end > text_bytes_) {
    const text_retirement retired = find_text_retirement(seq, text_end - text_bytes_);
    if (retired.from > text_from_) {
      if (!announce_text_retirement(retired.from, seq, text_end)) {
        // A holder attached below the text this write needs. The next attempt rescans and goes ahead once
        // the gate allows a refill, like the refusal above: the same cursor.
        post_gate_needed(gate_needed(seq, text_end, true));
        return status::full;
      }
      text_from_ = retired.from;
      // [F7] relaxed, ordered before the overwrite by the release fence [F2]; subscribers re-check it
      // after [F6].
      text_retained_from_.store(retired.from, std::memory_order_relaxed);
    }
    text_scan_ = retired.scanned_to;
  }

  std::atomic<std::uint64_t>* const words = slot_words(seq);
  // [F1] relaxed + [F2] release fence: a subscriber whose copy saw any byte written below also sees this
  // marker (or a later value) when it re-checks the version after [F6], and discards the copy.
  words[kSeqWord].store(kSlotWriting, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);  // [F2]

  event ev = e;
  if (stamping_ != clock_kind::none) ev.set_timestamp(stamping_, clock::now(stamping_));
  ev.set_seq(seq);
  if (has_text) {
    const std::size_t text_words = (text_size + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t);
    staging_[text_words - 1] = 0;  // the padding bytes of the last word are defined
    char* const staging = reinterpret_cast<char*>(staging_.get());
    if (ev.text_is_external()) ev.move_text_to_arena(staging);
    std::atomic<std::uint64_t>* const dest = text_ + (text_start & (text_bytes_ - 1)) / sizeof(std::uint64_t);
    for (std::size_t i = 0; i < text_words; ++i)
      dest[i].store(staging_[i], std::memory_order_relaxed);  // [F2]
    ev.set_arena_block(reinterpret_cast<const char*>(dest), static_cast<std::uint32_t>(text_size));
  }
  std::uint64_t image[kWords];
  std::memcpy(image, &ev, sizeof image);
  store_words<kSeqWord>(words, image, std::make_index_sequence<kWords>{});  // [F2] relaxed, after the fence
  // [F3] release: the slot's words and its text are visible to a subscriber that reads this version.
  words[kSeqWord].store(seq, std::memory_order_release);

  text_pos_[seq & mask_] = has_text ? (text_start | kHasText) : text_head_;
  if (has_text) text_head_ = text_end;
  next_ = seq + 1;
  // [F4] release: pairs with the subscribers' acquire loads; tells "not yet published" from "overwritten".
  published_.store(seq + 1, std::memory_order_release);
  subscribers_wait_.notify_after_publish();
  return status::ok;
}

// =====================================================================================================
// Subscribing

status multicast_stream::subscribe(subscription& out, const subscribe_options& options) {
  if (options.start == start_at::newest) return attach(out, options, next_seq(), start_mode::newest, nullptr);
  return attach(out, options, oldest_retained(), start_mode::oldest, nullptr);
}

status multicast_stream::resume(subscription& out, std::uint64_t last_seen, const subscribe_options& options,
                                std::uint64_t* oldest) {
  const std::uint64_t want = last_seen + 1;
  out.detach();
  if (want == 0 || !sent(last_seen)) return status::invalid;
  const std::uint64_t first = oldest_retained();
  if (want < first) {
    if (oldest != nullptr) *oldest = first;
    return status::not_retained;
  }
  return attach(out, options, want, start_mode::exact, oldest);
}

bool multicast_stream::sent(std::uint64_t seq) const noexcept {
  // [F4] acquire. A caller that received event seq read its slot's version ([F5] pairs with [F3]), which
  // the producer stored after publishing seq - 1 ([F4]), so this load returns at least seq; but [F4] for seq
  // itself comes after [F3] and may not be visible yet.
  const std::uint64_t published = published_.load(std::memory_order_acquire);
  if (seq != published) return seq < published;
  // [F5] acquire (only the value is used). Version seq, or a later one, says seq was published. The marker
  // says a send is writing this slot: seq itself, past every point where a send can fail, or a later
  // event, after seq was published. An older version, or kSlotNever, says seq is not sent yet.
  const std::uint64_t version = slot_words(seq)[kSeqWord].load(std::memory_order_acquire);
  return version == kSlotWriting || (version != kSlotNever && version >= seq);
}

std::uint64_t multicast_stream::retained_from(std::uint64_t published,
                                              std::uint64_t text_from) const noexcept {
  return std::max(published > mask_ ? published - mask_ : 0, text_from);
}

status multicast_stream::attach(subscription& out, const subscribe_options& options, std::uint64_t start,
                                start_mode mode, std::uint64_t* oldest) {
  out.detach();
  std::unique_ptr<std::uint64_t[]> text;
  if (text_bytes_ != 0) text = std::make_unique<std::uint64_t[]>(text_bytes_ / sizeof(std::uint64_t));
  std::uint32_t index = 0;
  for (; index < max_subscribers_; ++index) {
    std::uint8_t expected = kEntryFree;
    // acq_rel: claims the entry exclusively; pairs with the release in release_entry() [F14].
    if (entries_[index].state.compare_exchange_strong(expected, kEntryReading, std::memory_order_acq_rel,
                                                      std::memory_order_relaxed)) {
      break;
    }
  }
  if (index == max_subscribers_) return status::full;
  attached_.fetch_add(1, std::memory_order_relaxed);  // statistics only; release_entry() takes it back
  // [F15] release: raises the producer's scan bound before this entry can hold anything.
  std::uint32_t used = entries_used_.load(std::memory_order_relaxed);
  while (used < index + 1 && !entries_used_.compare_exchange_weak(used, index + 1, std::memory_order_release,
                                                                  std::memory_order_relaxed)) {
  }
  entry& slot = entries_[index];
  const bool holds = options.policy == slow_reader::hold;
  slot.cursor.store(start, std::memory_order_relaxed);  // published by the state store below
  if (holds) {
    slot.state.store(kEntryHolding, std::memory_order_seq_cst);  // [F13] release part pairs with [F11]
    // [F16] release: the producer's next send rescans (acquire), and its scan sees the state above.
    control_.fetch_or(kRescanBit, std::memory_order_release);
  }
  // [F13] heavy barrier: see [F12], [F16] and [F17]. After it, every send either counts this holder or
  // is visible below: all but at most one in published_, and that one's text retirement in
  // text_retiring_from_. So starting at or after retained_from(...) of what is read below, nothing this
  // holder reads can be overwritten first. (If the barrier fails, which needs a failing membarrier after a
  // successful registration, an event published during this call may still be overwritten: the holder
  // then gets status::lagged with the exact count.)
  (void)detail::heavy_barrier();
  const std::uint64_t published = published_.load(std::memory_order_acquire);  // [F4]
  // [F17] relaxed: the barrier above orders it after the bit; only its value is used.
  const std::uint64_t retained =
      retained_from(published, text_retiring_from_.load(std::memory_order_relaxed));
  if (mode == start_mode::exact && start < retained) {
    release_entry(index);
    if (oldest != nullptr) *oldest = retained;
    return status::not_retained;
  }
  start = std::max(start, mode == start_mode::newest ? published : retained);
  // [F10] release: see the subscriber's cursor store in try_receive.
  slot.cursor.store(start, std::memory_order_release);
  // A producer waiting on this holder's first cursor (it may have been below the ring) re-scans.
  if (holds) producer_wait_.notify_after_publish();

  out.stream_ = this;
  out.entry_ = index;
  out.policy_ = options.policy;
  out.was_detached_ = false;
  out.cursor_ = start;
  out.shown_cursor_ = start;
  out.missed_last_ = 0;
  out.missed_total_ = 0;
  out.received_ = 0;
  out.text_ = std::move(text);
  return status::ok;
}

void multicast_stream::release_entry(std::uint32_t index) noexcept {
  // [F14] release: the next owner's claim (acq_rel CAS) sees this subscriber done with the entry.
  entries_[index].state.store(kEntryFree, std::memory_order_release);
  attached_.fetch_sub(1, std::memory_order_relaxed);  // statistics only
  producer_wait_.notify_after_publish();              // a producer waiting for this holder re-scans
}

// =====================================================================================================
// Either side

void multicast_stream::close() noexcept {
  // [F8] seq_cst: ordered before the wake-ups; a waiter that parks after it re-checks and sees it.
  control_.fetch_or(kClosedBit, std::memory_order_seq_cst);
  subscribers_wait_.wake_all();
  producer_wait_.wake_all();
}

std::uint64_t multicast_stream::oldest_retained() const noexcept {
  const std::uint64_t published = published_.load(std::memory_order_acquire);  // [F4]
  // [F17] relaxed: a snapshot; the bound being retired counts as gone already.
  return retained_from(published, text_retiring_from_.load(std::memory_order_relaxed));
}

multicast_counters multicast_stream::counters() const noexcept {
  multicast_counters c;
  c.sent = published_.load(std::memory_order_acquire);  // [F4]
  c.dropped = dropped_.load(std::memory_order_relaxed);
  c.send_waits = send_waits_.load(std::memory_order_relaxed);
  c.oldest_retained = oldest_retained();
  c.subscribers = attached_.load(std::memory_order_relaxed);
  c.detached = detached_.load(std::memory_order_relaxed);
  c.receive_parks = receive_parks_.load(std::memory_order_relaxed);
  c.send_parks = send_parks_.load(std::memory_order_relaxed);
  return c;
}

// =====================================================================================================
// Subscription

void subscription::take(subscription& other) noexcept {
  stream_ = std::exchange(other.stream_, nullptr);
  entry_ = other.entry_;
  policy_ = other.policy_;
  was_detached_ = other.was_detached_;
  cursor_ = other.cursor_;
  shown_cursor_ = other.shown_cursor_;
  missed_last_ = other.missed_last_;
  missed_total_ = other.missed_total_;
  received_ = other.received_;
  text_ = std::move(other.text_);
}

void subscription::detach() noexcept {
  if (stream_ == nullptr) return;
  stream_->release_entry(entry_);
  stream_ = nullptr;
}

std::uint64_t subscription::lag() const noexcept {
  if (stream_ == nullptr) return 0;
  const std::uint64_t published = stream_->published_.load(std::memory_order_acquire);  // [F4]
  return published > cursor_ ? published - cursor_ : 0;
}

status subscription::try_receive(event& out) noexcept {
  const status s = read_next(out);
  if (s == status::ok) publish_cursor();
  return s;
}

void subscription::publish_cursor() noexcept {
  if (policy_ != slow_reader::hold || stream_ == nullptr) return;
  multicast_stream& s = *stream_;
  const std::uint64_t from = shown_cursor_;
  shown_cursor_ = cursor_;
  // [F10] release: our reads of the events below the cursor happen before the producer (acquire [F11])
  // overwrites them.
  s.entries_[entry_].cursor.store(cursor_, std::memory_order_release);
  // [F18] The publisher's half of the park handshake (parking.hpp), with gate_needed_ in the place of the
  // waiter bit: store (above); light barrier; load. A producer refused for this holder stored the cursor it
  // needs before it announced itself and ran its heavy barrier, so either its re-check sees this cursor, or
  // this load sees that value (or a later one, stored only once the producer got past that event). Only
  // the publication that moves this holder across it can let the producer go ahead; the others would wake
  // it to fail and park again (a syscall here, a membarrier there, per event). Each holder crosses a value
  // once, so a wait gets at most one wake-up per holder (plus attach, detach, close, stop). Relaxed, as
  // [W4]: it only decides whether to wake; wake_all()'s CAS, after the barrier too, changes the word after
  // the producer's announcement, so its futex_wait cannot sleep through it.
  detail::light_barrier();
  const std::uint64_t needed = s.gate_needed_.load(std::memory_order_relaxed);
  if (from < needed && needed <= cursor_) [[unlikely]]
    s.producer_wait_.wake_all();
}

status subscription::read_next(event& out) noexcept {
  using ms = multicast_stream;
  if (stream_ == nullptr) return status::detached;
  ms& s = *stream_;
  const std::uint64_t c = cursor_;
  std::atomic<std::uint64_t>* const words = s.slot_words(c);
  // [F5] acquire: pairs with [F3]; the slot's words and text of version c are visible.
  std::uint64_t version = words[ms::kSeqWord].load(std::memory_order_acquire);
  if (version != c) {
    // A slot holds versions congruent to its index, in increasing order, or one of two markers: an older
    // version (or kSlotNever) means "not visible yet", a newer one "overwritten", and kSlotWriting either
    // (published_ tells which: [F4] is stored after [F3]). Deciding from the slot keeps the common
    // "nothing yet" path off the producer's published_ line.
    const bool older = version == ms::kSlotNever || (version != ms::kSlotWriting && version < c);
    if (older ||
        (version == ms::kSlotWriting && c >= s.published_.load(std::memory_order_acquire))) {  // [F4]
      if (!s.is_closed()) return status::empty;                                      // [F9] pairs with [F8]
      if (c >= s.published_.load(std::memory_order_acquire)) return status::closed;  // [F4]
    }
    if (older || version == ms::kSlotWriting) {
      // Published ([F4] acquired above): this load sees version c or a later one.
      version = words[ms::kSeqWord].load(std::memory_order_acquire);  // [F5]
    }
    if (version != c) return lost(c);
  }
  std::uint64_t image[ms::kWords];
  load_words(words, image, std::make_index_sequence<ms::kWords>{});  // [F6] the copy, relaxed
  image[ms::kSeqWord] = c;
  event copy;
  std::memcpy(&copy, image, sizeof copy);
  std::size_t text_size = 0;
  if (copy.text_is_in_arena()) {
    // The copy may be torn; bound the text copy before trusting it, validate after.
    const std::string_view block = copy.text_block();
    const auto* base = reinterpret_cast<const char*>(s.text_);
    const std::uintptr_t offset =
        reinterpret_cast<std::uintptr_t>(block.data()) - reinterpret_cast<std::uintptr_t>(base);
    if (s.text_ == nullptr || offset % sizeof(std::uint64_t) != 0 || offset > s.text_bytes_ ||
        block.size() > s.text_bytes_ - offset) {
      return lost(c);  // only a torn copy gets here: the version re-check below would fail
    }
    text_size = block.size();
    const std::size_t n = (text_size + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t);
    const std::atomic<std::uint64_t>* src = s.text_ + offset / sizeof(std::uint64_t);
    for (std::size_t i = 0; i < n; ++i) text_[i] = src[i].load(std::memory_order_relaxed);  // [F6]
  }
  // [F6] acquire fence: if any load above saw a byte of a newer write, the re-checks below see that
  // write's marker [F1] or its retirement of this event's text (both ordered before it by [F2]).
  std::atomic_thread_fence(std::memory_order_acquire);
  if (words[ms::kSeqWord].load(std::memory_order_relaxed) != c) return lost(c);
  if (text_size != 0 && c < s.text_retained_from_.load(std::memory_order_relaxed)) return lost(c);  // [F7]
  if (text_size != 0)
    copy.set_arena_block(reinterpret_cast<const char*>(text_.get()), static_cast<std::uint32_t>(text_size));
  out = copy;
  cursor_ = c + 1;
  ++received_;
  return status::ok;
}

// Event `c` was overwritten before this subscriber read it.
status subscription::lost(std::uint64_t c) noexcept {
  multicast_stream& s = *stream_;
  if (policy_ == slow_reader::detach) {
    s.detached_.fetch_add(1, std::memory_order_relaxed);  // statistics only
    detach();
    was_detached_ = true;
    return status::detached;
  }
  // Everything before the oldest retained event is gone; at least event c is.
  const std::uint64_t next = std::max(c + 1, s.oldest_retained());
  missed_last_ = next - c;
  missed_total_ += missed_last_;
  cursor_ = next;
  publish_cursor();  // [F10]
  return status::lagged;
}

status subscription::receive(event& out) noexcept {
  return receive_until(out, std::chrono::steady_clock::time_point::max());
}

void subscription::note_park() noexcept {
  stream_->receive_parks_.fetch_add(1, std::memory_order_relaxed);  // statistics only
}

status subscription::receive_until(event& out, std::chrono::steady_clock::time_point deadline) noexcept {
  if (stream_ == nullptr) return status::detached;
  return detail::wait_loop(
      stream_->subscribers_wait_, status::empty, [&]() noexcept { return try_receive(out); }, deadline,
      nullptr, stream_->spin_iterations_, []() noexcept {}, [this]() noexcept { note_park(); });
}

status subscription::receive(event& out, std::stop_token token) noexcept {
  if (stream_ == nullptr) return status::detached;
  if (!token.stop_possible()) return receive(out);
  multicast_stream* const s = stream_;
  std::stop_callback wake(token, [s]() noexcept { s->subscribers_wait_.wake_all(); });
  return detail::wait_loop(
      s->subscribers_wait_, status::empty, [&]() noexcept { return try_receive(out); },
      std::chrono::steady_clock::time_point::max(), &token, s->spin_iterations_, []() noexcept {},
      [this]() noexcept { note_park(); });
}

}  // namespace rill
