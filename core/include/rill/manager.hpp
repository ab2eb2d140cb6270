// rill/manager.hpp: rill::stream_manager, a registry of streams keyed by string ids, with wait-free
// lookups.
//
// A gateway looks a stream up on every upstream chunk and every client reconnect; the manager makes that
// lookup cheap and never sits on the data path itself. Ids are 1 to kMaxIdBytes (255) bytes of any
// content (compared byte for byte). Each stream also gets a stream_handle, a 64-bit number that finds it
// again without hashing the id.
//
// Structure (docs/design.md, "Stream manager"): the ids hash into a fixed number of shards. Each shard is
// one immutable open-addressing table that readers load with one acquire; a writer (one per shard at a
// time, under the shard's mutex) builds a new table from the old one and publishes it, then retires the
// old one to rill's epoch-based reclamation (rill/detail/epoch.hpp). Handles index a segmented table of
// entry pointers that never moves.
//
// Guarantees
//   - get / visit / handle lookups (and the lookup half of get_or_create) are wait-free: no lock, no retry
//     loop, no allocation; probing is bounded because no table is ever more than 3/4 full.
//   - Lookups are linearizable with create / close of the same id: a lookup that starts after create()
//     returned finds the stream; one that starts after close() returned does not.
//   - Lifetime: a stream_ref keeps its stream alive after close(), close_all(), cleanup_inactive() or the
//     manager's destruction. Those calls close the stream (later sends get status::closed, receivers drain
//     what is buffered, then see closed); its memory goes with the last stream_ref.
//   - Writers (create, close, cleanup, ...) copy one shard's table, never the whole index: with the default
//     4096 shards a million streams make tables of about 250 entries.
//   - An idle stream (never sent to) costs its entry (128 bytes in a 176-byte allocation for ids up to 56
//     bytes, more for longer ids), an index slot and a handle slot: under 256 bytes of RSS for ids up to 56
//     bytes (figures in docs/design.md). With
//     manager_options::track_metrics each stream also carries a stream_metrics (about 900 bytes) in the
//     same allocation; without it, nothing.
//   - Metrics (track_metrics): stream_ref::metrics() is the stream's rill::stream_metrics, which its
//     consumer feeds (observe(e) for each event it takes; nothing observes events on its own). info() and
//     list_info() copy a snapshot of it into stream_info::metrics from any thread while the consumer runs.
// Not guaranteed
//   - Whole-manager operations (list, count, close_all, cleanup_inactive, list_info) visit the shards one by
//     one: they are not atomic snapshots while other threads create or close streams.
//   - Last activity has the resolution of observation: the manager notes when it sees a stream's activity
//     count change (in cleanup_inactive, info and list_info), not when the send or receive happened. A
//     stream therefore reads as active at most one observation period longer than it was; cleanup never
//     closes a stream sooner than `threshold` after its real last send or receive.
//   - Memory of closed streams and old tables is reclaimed in batches, after every thread that could still
//     read them has left its read section; a thread stuck inside visit()'s callback delays it (for every
//     manager in the process).
//   - Handles: a handle is never reused for another stream until 2^32 streams were created in its shard.
//
// Every member function is safe to call from any thread at the same time as any other, except the
// constructor and destructor. Blocking classes are given per function: "wait-free" (bounded steps, no lock),
// "locks one shard" (a mutex held for a table copy), "locks each shard in turn".
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rill/detail/assert.hpp"
#include "rill/detail/epoch.hpp"
#include "rill/detail/layout.hpp"
#include "rill/metrics.hpp"
#include "rill/status.hpp"
#include "rill/stream.hpp"

namespace rill {

// A compact id for a managed stream: finds it without hashing the id. 0 is "no stream". The low 32 bits
// index the handle table, the high 32 bits are a generation that tells a reused index apart.
struct stream_handle {
  std::uint64_t value = 0;
  explicit operator bool() const noexcept { return value != 0; }
  friend bool operator==(stream_handle, stream_handle) = default;
};

namespace detail {

// Link for epoch-based reclamation: the next retired node and the epoch it was retired in.
// `next` points to the next retired object of the same list (a shard_table or a managed_stream).
struct retired_link {
  void* next;
  std::uint64_t tag;
};

// One managed stream: the stream, its metadata and its reference count in one allocation; the id's bytes
// follow (from the second line's last bytes on), then (when the manager tracks metrics) a stream_metrics.
//
// The fields are laid out by who writes them. The entry is a rill::stream (alignas(64), 64 bytes, of which
// its fields take the first 32): its producers and consumers read that line on every call. The entry's
// own read-mostly fields fill the rest of it (the Itanium C++ ABI places a derived class's members in its
// base's tail padding; the size assertion below fails where it does not): the handle and creation time,
// written once, and the activity observation, written rarely under the shard's mutex. The second line
// starts with the reference count, which every get(), stream_ref copy and drop writes: a lookup on one
// thread never takes away the line a producer or consumer of the same stream reads on another. While the
// two could share a line, a producer that looked its stream up before each send ran at 0.37-0.56x the rate
// of one that looked up another stream (perf/manager_perf, "lookup + send"). allocate_managed_stream places
// entries on a 64-byte boundary.
struct managed_stream : rill::stream {
  static constexpr std::size_t kRefsOffset = kCacheLine;
  static_assert(sizeof(rill::stream) == kCacheLine && alignof(rill::stream) == kCacheLine,
                "the control block's line is the entry's first");

  // Throws what the stream constructor throws (std::invalid_argument for bad options). `shift`: what
  // allocate_managed_stream() gave with this entry's memory.
  managed_stream(std::string_view id, const stream_options& options, std::int64_t created, std::uint8_t shift)
      : rill::stream(options),
        created_ns(created),
        id_size(static_cast<std::uint16_t>(id.size())),
        allocation_shift(shift) {
    std::memcpy(id_bytes(), id.data(), id.size());
    state.seen = {0, created};
  }
  ~managed_stream() {
    if (has_metrics) metrics()->~stream_metrics();  // reports the stream ended to its aggregator, if any
  }
  managed_stream(const managed_stream&) = delete;
  managed_stream& operator=(const managed_stream&) = delete;

  rill::stream& as_stream() noexcept { return *this; }
  const rill::stream& as_stream() const noexcept { return *this; }

  // The id starts in the second line's last kIdHeadBytes (id_head) and runs on past the entry when longer:
  // an id of up to 56 bytes costs no allocation bytes of its own.
  static constexpr std::size_t kIdOffset = kRefsOffset + 8;
  static constexpr std::size_t kIdHeadBytes = 2 * kCacheLine - kIdOffset;
  // The consumer writes the metrics on every event it takes: they start after the id, on a later line than
  // the reference count and the control block (the entry's first two lines), 16-byte aligned.
  static_assert(alignof(stream_metrics) <= 16);
  static constexpr std::size_t metrics_offset(std::size_t id_size) noexcept {
    return std::max<std::size_t>((kIdOffset + id_size + 15) & ~std::size_t{15}, 2 * kCacheLine);
  }
  // Bytes to allocate for an entry with an id of `id_size` bytes, with room for a stream_metrics or not:
  // never fewer than the entry itself.
  static constexpr std::size_t allocation_size(std::size_t id_size, bool with_metrics) noexcept {
    return with_metrics ? metrics_offset(id_size) + sizeof(stream_metrics)
                        : std::max<std::size_t>(kIdOffset + id_size, sizeof(managed_stream));
  }
  // Constructs the stream's metrics in the room allocation_size(id_size, true) left for them. Once, by the
  // creating writer, before the entry is published.
  void construct_metrics(aggregator* totals) noexcept {
    ::new (static_cast<void*>(reinterpret_cast<char*>(this) + metrics_offset(id_size))) stream_metrics(totals);
    has_metrics = true;
  }
  // The stream's metrics, or null when they were not constructed.
  stream_metrics* metrics() noexcept {
    return has_metrics ? std::launder(reinterpret_cast<stream_metrics*>(reinterpret_cast<char*>(this) +
                                                                        metrics_offset(id_size)))
                       : nullptr;
  }

  char* id_bytes() noexcept { return reinterpret_cast<char*>(this) + kIdOffset; }
  std::string_view id() const noexcept { return {reinterpret_cast<const char*>(this) + kIdOffset, id_size}; }

  // ---- the first line, after the stream's fields: written at creation or under the shard mutex ----
  std::uint64_t handle = 0;       // set once, before the entry is published
  const std::int64_t created_ns;  // steady_clock nanoseconds
  // What the manager last saw of the stream's activity; guarded by the shard's writer mutex while the entry
  // is indexed. Once removed, the same bytes link the entry into the retired list.
  struct observation {
    std::uint64_t activity;  // stream::activity() when last seen to change
    std::int64_t at_ns;      // steady_clock nanoseconds of that observation
  };
  union {
    observation seen;
    retired_link link;
  } state;
  // ---- the second line: written by lookups (refs), else once before publication ----
  // The index holds one reference until the entry is reclaimed; each stream_ref holds one.
  std::atomic<std::uint32_t> refs{1};
  const std::uint16_t id_size;
  bool has_metrics = false;             // set once, before the entry is published
  const std::uint8_t allocation_shift;  // bytes from the start of the entry's memory block to the entry
  char id_head[kIdHeadBytes];           // the id's first bytes (id_bytes()); written once, before publication
};
// The stream's fields take 32 bytes; the entry's first-line fields fill the other 32 (no padding between
// them: each is 8-byte sized and aligned); refs starts the second line, id_head ends it. Where an ABI does
// not reuse the stream's tail padding, the entry would be 192 bytes and this fails.
static_assert(32 + sizeof(std::uint64_t) + sizeof(std::int64_t) + sizeof(managed_stream::observation) ==
                  managed_stream::kRefsOffset,
              "the entry's first-line fields fill the stream's tail padding");
static_assert(managed_stream::kRefsOffset + sizeof(std::uint32_t) + sizeof(std::uint16_t) + sizeof(bool) +
                      sizeof(std::uint8_t) ==
                  managed_stream::kIdOffset,
              "id_head follows refs and the one-time fields with no padding");
static_assert(alignof(managed_stream) == kCacheLine && sizeof(managed_stream) == 2 * kCacheLine,
              "two lines: the control block with the entry's read-mostly fields, then refs and the id");
static_assert(sizeof(managed_stream::observation) >= sizeof(retired_link));

// Memory for an entry: `bytes` (allocation_size()) from a 64-byte boundary inside a plain operator new
// block, `shift` bytes into it. Not the aligned operator new: glibc serves that by splitting a larger chunk,
// and the pieces it frees stay resident (ManagerStress.AMillionIdleStreams: 339 bytes of RSS per idle
// stream that way, against 243.7 this way). Throws std::bad_alloc.
struct entry_memory {
  void* at;
  std::uint8_t shift;
};
inline entry_memory allocate_managed_stream(std::size_t bytes) {
  constexpr std::size_t kAlign = alignof(managed_stream);
  static_assert(kAlign > __STDCPP_DEFAULT_NEW_ALIGNMENT__);
  constexpr std::size_t kSlack = kAlign - __STDCPP_DEFAULT_NEW_ALIGNMENT__;
  auto* block = static_cast<unsigned char*>(::operator new(bytes + kSlack));
  const std::size_t shift = (kAlign - reinterpret_cast<std::uintptr_t>(block) % kAlign) % kAlign;
  RILL_ASSERT(shift <= kSlack, "operator new returned less than __STDCPP_DEFAULT_NEW_ALIGNMENT__");
  return {block + shift, static_cast<std::uint8_t>(shift)};
}
// Frees memory from allocate_managed_stream (its entry destroyed, or never constructed).
inline void free_managed_stream(void* at, std::uint8_t shift) noexcept {
  ::operator delete(static_cast<unsigned char*>(at) - shift);
}

// Frees an entry whose last reference went (destroys its stream).
void destroy_managed_stream(managed_stream* entry) noexcept;

// One slot of a shard's open-addressing table (linear probing). An empty slot has entry == nullptr.
struct index_slot {
  std::uint64_t hash;
  managed_stream* entry;
};

// A shard's immutable table; `mask + 1` slots follow the header in the same allocation.
struct shard_table {
  retired_link link;
  std::uint32_t mask;
  std::uint32_t count;
  index_slot* slots() noexcept { return reinterpret_cast<index_slot*>(this + 1); }
  const index_slot* slots() const noexcept { return reinterpret_cast<const index_slot*>(this + 1); }
};

// 64 bits of an id's hash. Sixteen bytes a round, each round one 64 x 64 -> 128-bit multiply folded to 64
// bits (high half xor low half): a 41-byte id costs five dependent multiplies. Keyed by `seed`: both halves
// of every multiply that reads the id carry it, so ids chosen by someone who does not know the seed can
// neither be aimed at one shard or probe run nor zero a multiply to erase what came before it.
//
// unsigned __int128 is a g++ and clang extension on 64-bit targets (__extension__ keeps -Wpedantic quiet).
__extension__ typedef unsigned __int128 uint128_t;
inline std::uint64_t fold_multiply(std::uint64_t a, std::uint64_t b) noexcept {
  const uint128_t product = static_cast<uint128_t>(a) * b;
  return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
}

// A fresh key for hash_id: 8 bytes from the kernel's random pool, or (should that fail) clocks, a stack
// address and a count mixed together. Never 0. Never throws.
std::uint64_t random_hash_seed() noexcept;

inline std::uint64_t hash_id(std::string_view id, std::uint64_t seed) noexcept {
  constexpr std::uint64_t kOdd0 = 0x9e3779b97f4a7c15ull;  // 2^64 / golden ratio
  constexpr std::uint64_t kOdd1 = 0xbf58476d1ce4e5b9ull;  // splitmix64's multipliers
  constexpr std::uint64_t kOdd2 = 0x94d049bb133111ebull;
  const auto load8 = [](const char* at) noexcept {
    std::uint64_t word;
    std::memcpy(&word, at, 8);
    return word;
  };
  const auto load4 = [](const char* at) noexcept {
    std::uint32_t word;
    std::memcpy(&word, at, 4);
    return std::uint64_t{word};
  };
  const char* p = id.data();
  std::size_t n = id.size();
  const std::uint64_t key = seed ^ kOdd1;
  std::uint64_t h = fold_multiply(seed ^ kOdd0, n ^ kOdd2);  // the length, keyed
  std::uint64_t a = 0, b = 0;
  if (n > 16) {
    for (; n > 16; p += 16, n -= 16) h = fold_multiply(load8(p) ^ key, load8(p + 8) ^ h);
    a = load8(p + n - 16);  // the last 16 bytes, overlapping what the loop read when fewer were left
    b = load8(p + n - 8);
  } else if (n >= 8) {
    a = load8(p);
    b = load8(p + n - 8);
  } else if (n >= 4) {
    a = load4(p);
    b = load4(p + n - 4);
  } else if (n > 0) {
    a = (std::uint64_t{static_cast<unsigned char>(p[0])} << 16) |
        (std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) | static_cast<unsigned char>(p[n - 1]);
  }
  return fold_multiply(fold_multiply(a ^ key, b ^ h) ^ kOdd2, h ^ kOdd0);
}

}  // namespace detail

// Shared ownership of a managed stream: like std::shared_ptr<stream>, one pointer wide, its count in the
// same allocation as the stream. Copying costs one atomic increment; moving costs nothing. Safe to copy
// and destroy from any thread (distinct stream_ref objects; one object is not synchronized).
class stream_ref {
 public:
  stream_ref() noexcept = default;
  stream_ref(const stream_ref& other) noexcept : entry_(other.entry_) {
    // Relaxed: the caller's reference keeps the entry alive; the count orders nothing (shared_ptr does
    // the same).
    if (entry_ != nullptr) entry_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  stream_ref(stream_ref&& other) noexcept : entry_(std::exchange(other.entry_, nullptr)) {}
  stream_ref& operator=(stream_ref other) noexcept {
    std::swap(entry_, other.entry_);
    return *this;
  }
  ~stream_ref() { reset(); }

  void reset() noexcept {
    detail::managed_stream* entry = std::exchange(entry_, nullptr);
    // [H1] acq_rel: the holder that drops the count to zero sees every other holder's use of the stream
    // before it destroys it (release by each decrement, acquire by the last).
    if (entry != nullptr && entry->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      detail::destroy_managed_stream(entry);
    }
  }

  stream* get() const noexcept { return entry_ != nullptr ? &entry_->as_stream() : nullptr; }
  stream& operator*() const noexcept { return entry_->as_stream(); }
  stream* operator->() const noexcept { return &entry_->as_stream(); }
  explicit operator bool() const noexcept { return entry_ != nullptr; }
  // The id and handle the stream was created with (empty / 0 for an empty ref).
  std::string_view id() const noexcept { return entry_ != nullptr ? entry_->id() : std::string_view{}; }
  stream_handle handle() const noexcept { return {entry_ != nullptr ? entry_->handle : 0}; }
  // The stream's metrics when its manager tracks them (manager_options::track_metrics); null otherwise or
  // for an empty ref. Never blocks. The pointer is valid while a stream_ref holds the stream. The stream's
  // consumer feeds it (observe(e) for each event it takes, finish() after the last); its snapshot() may be
  // read from any thread.
  stream_metrics* metrics() const noexcept { return entry_ != nullptr ? entry_->metrics() : nullptr; }
  // References held now, the index's own included while the stream is managed (a snapshot).
  std::uint32_t use_count() const noexcept {
    return entry_ != nullptr ? entry_->refs.load(std::memory_order_relaxed) : 0;
  }

 private:
  friend class stream_manager;
  // Adopts one reference already counted for this ref.
  explicit stream_ref(detail::managed_stream* adopted) noexcept : entry_(adopted) {}
  detail::managed_stream* entry_ = nullptr;
};

// What info() and list_info() report about one stream.
struct stream_info {
  std::string id;
  stream_handle handle;
  std::chrono::steady_clock::time_point created;
  // When the manager last saw the stream's activity (sent + received) change, or its creation time if it
  // never did. Resolution: the manager's observations (see the banner).
  std::chrono::steady_clock::time_point last_activity;
  flavour kind = flavour::spsc;
  backpressure policy = backpressure::block;
  std::size_t capacity = 0;
  std::size_t arena_capacity = 0;
  std::size_t approx_size = 0;
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t dropped = 0;
  bool closed = false;
  bool allocated = false;  // the ring and arena exist (after the first send)
  // The stream's metrics (stream_metrics::snapshot(), taken by info() / list_info()) when the manager tracks
  // them (manager_options::track_metrics); null otherwise. Shared and immutable: copying a stream_info does
  // not copy the snapshot, and a manager without metrics pays one null pointer per stream_info.
  std::shared_ptr<const stream_metrics_snapshot> metrics;
};

struct manager_options {
  // Options for streams created without their own.
  stream_options stream_defaults = {};
  // Index shards; rounded up to a power of two, 1 to 2^20. A writer locks and copies one shard's table
  // (about streams / shards entries), so writers to different shards do not wait for each other there;
  // every writer still takes the manager's retired-list lock briefly (and, every 64 retirements, one
  // writer advances the epoch under it). Each shard costs about 80 bytes.
  std::size_t shards = 4096;
  // Give each stream the manager creates a rill::stream_metrics (stream_ref::metrics(); a snapshot in
  // stream_info::metrics). It is built with the stream, in the same allocation (about 900 bytes more per
  // stream, nothing on the data path); off, streams cost nothing extra. The stream's consumer feeds it.
  bool track_metrics = false;
  // With track_metrics: the aggregator each stream's metrics forward to (events by kind, streams started and
  // ended, TTFT, tokens). A stream counts as started when create() publishes it, and as ended when its
  // consumer calls finish() or when its last reference goes (for a removed stream, after reclamation's grace
  // period). Must outlive the manager and every stream_ref to its streams. Null: no forwarding.
  aggregator* metrics_totals = nullptr;
  // Key of the id hash. 0 (the default): a random key per manager (getrandom), so ids chosen by clients
  // cannot be aimed at one shard. Any other value is used as given, for runs that must repeat exactly
  // (instruction-count budgets); such a key is no defence against chosen ids.
  std::uint64_t hash_seed = 0;
};

// Reclamation counters (writers only, relaxed): retired == reclaimed once every retired node was freed.
struct reclamation_counters {
  std::uint64_t tables_retired = 0;
  std::uint64_t tables_reclaimed = 0;
  std::uint64_t entries_retired = 0;
  std::uint64_t entries_reclaimed = 0;
  std::uint64_t advance_attempts = 0;
};

class stream_manager {
 public:
  static constexpr std::size_t kMaxIdBytes = 255;

  // Throws std::invalid_argument for invalid default stream options or shard count, or metrics_totals
  // without track_metrics; std::bad_alloc.
  explicit stream_manager(const manager_options& options = {});
  // Closes every stream still managed and frees the index. Not thread-safe: no other call may be running
  // or start. stream_refs stay valid.
  ~stream_manager();
  stream_manager(const stream_manager&) = delete;
  stream_manager& operator=(const stream_manager&) = delete;

  // True for ids of 1 to kMaxIdBytes bytes.
  static bool valid_id(std::string_view id) noexcept { return !id.empty() && id.size() <= kMaxIdBytes; }

  // ---- lookups: wait-free, never allocate ----

  // Finds a stream by id. ok (`out` refers to it; whatever it held before is released), not_found or
  // invalid (bad id). One atomic increment for the reference. A stream closed through its stream_ref but
  // not yet removed is still found (is_closed() says so).
  status get(std::string_view id, stream_ref& out) const noexcept;
  // As get(id, out), by handle. not_found for a stale or unknown handle.
  status get(stream_handle handle, stream_ref& out) const noexcept;
  // Runs `fn(stream&)` on the stream with `id` while a read section keeps it alive: no reference count is
  // touched. ok (after fn ran), not_found or invalid. fn must be short and must not block (it delays
  // reclamation process-wide); it may call the manager's lookups, not its writers. Exceptions propagate.
  template <class Fn>
  status visit(std::string_view id, Fn&& fn) const;
  template <class Fn>
  status visit(stream_handle handle, Fn&& fn) const;
  // The handle of the stream with `id`, or a null handle. Wait-free.
  stream_handle handle_of(std::string_view id) const noexcept;

  // ---- writers: lock one shard; throw only std::bad_alloc (and std::length_error past 2^32 live handles)
  // ----

  // Creates a stream with the default options (or `options`). ok (`out` refers to it), already_exists
  // when a stream with that id is managed and not closed (one that is closed is replaced), invalid (bad id,
  // or options the stream constructor rejects).
  status create(std::string_view id, stream_ref& out);
  status create(std::string_view id, const stream_options& options, stream_ref& out);
  // Returns the stream with `id`, creating it when absent (or closed). ok or invalid; `*created` says
  // whether this call created it. Racing calls on one id create exactly one stream. Wait-free when the
  // stream exists; otherwise locks one shard.
  status get_or_create(std::string_view id, stream_ref& out, bool* created = nullptr);
  status get_or_create(std::string_view id, const stream_options& options, stream_ref& out,
                       bool* created = nullptr);
  // Closes the stream and removes it. ok, not_found or invalid.
  status close(std::string_view id);

  // ---- whole-manager operations: each shard in turn ----

  // Ids of the managed streams. Wait-free per shard (read sections), allocates.
  std::vector<std::string> list() const;
  // Streams managed now. Wait-free (one relaxed load); exact when no writer runs.
  std::size_t count() const noexcept;
  // Closes and removes every stream. Returns how many. Locks each shard in turn.
  std::size_t close_all();
  // Closes and removes every stream whose activity (sends + receives) the manager has not seen change for
  // at least `threshold` (a new stream counts as active at creation). Returns how many. Locks each shard in
  // turn; reads every stream's counters.
  std::size_t cleanup_inactive(std::chrono::nanoseconds threshold);
  // As above for any duration type, saturating: a threshold past nanoseconds' range (seconds::max(), say,
  // which would overflow on the implicit conversion and remove everything) removes nothing.
  template <class Rep, class Period>
  std::size_t cleanup_inactive(std::chrono::duration<Rep, Period> threshold) {
    using double_ns = std::chrono::duration<double, std::nano>;
    using std::chrono::nanoseconds;
    if (double_ns(threshold) >= double_ns(nanoseconds::max())) return cleanup_inactive(nanoseconds::max());
    if (double_ns(threshold) <= double_ns(nanoseconds::min())) return cleanup_inactive(nanoseconds::min());
    return cleanup_inactive(std::chrono::duration_cast<nanoseconds>(threshold));
  }
  // The stream's description. ok, not_found or invalid. Locks one shard (it records what it observed).
  // With track_metrics, `out.metrics` is a fresh snapshot of the stream's metrics (one allocation); the
  // consumer may be observing at the same time (see rill/metrics.hpp on reading while the writer runs).
  status info(std::string_view id, stream_info& out) const;
  // Every stream's description, metrics snapshots included as in info(). Locks each shard in turn.
  std::vector<stream_info> list_info() const;

  // ---- configuration and reclamation ----

  const stream_options& default_options() const noexcept { return defaults_; }
  // manager_options::track_metrics and ::metrics_totals as constructed.
  bool tracks_metrics() const noexcept { return track_metrics_; }
  aggregator* metrics_totals() const noexcept { return metrics_totals_; }
  std::size_t shard_count() const noexcept { return shard_mask_ + 1; }
  // Advances the epoch (up to twice, as far as the oldest retired node needs) and frees what is then safe
  // to free: with no lookup in flight on another thread, everything retired so far. Writers advance every
  // few dozen retirements on their own; call it after a burst of writes to give memory back sooner. Never
  // blocks on readers (a membarrier syscall per advance and a lock on the retired list).
  void reclaim();
  reclamation_counters reclamation() const noexcept;

 private:
  struct shard_writer;

  static constexpr std::size_t kHandleChunkBase = 1024;  // chunk k holds kHandleChunkBase << k handles
  static constexpr std::size_t kHandleChunks = 23;       // enough for 2^32 handles

  std::size_t shard_of(std::uint64_t hash) const noexcept { return (hash >> 40) & shard_mask_; }
  // Lookups; the caller holds a read section.
  detail::managed_stream* find(std::string_view id, std::uint64_t hash) const noexcept;
  detail::managed_stream* find(stream_handle handle) const noexcept;
  static std::pair<std::size_t, std::size_t> handle_position(std::uint32_t index) noexcept {
    const std::size_t q = index / kHandleChunkBase + 1;
    const std::size_t chunk = static_cast<std::size_t>(std::bit_width(q)) - 1;
    return {chunk, index - kHandleChunkBase * ((std::size_t{1} << chunk) - 1)};
  }

  status create_or_get(std::string_view id, const stream_options& options, stream_ref& out, bool* created,
                       bool fail_if_live);
  std::uint32_t allocate_handle_index(shard_writer& writer);
  void ensure_handle_chunk(std::uint32_t index);
  void set_handle(std::uint32_t index, detail::managed_stream* entry) noexcept;
  void release_handle(shard_writer& writer, std::uint64_t handle) noexcept;
  void observe(detail::managed_stream& entry) const noexcept;
  void fill_info(detail::managed_stream& entry, stream_info& out) const;
  // Retires an unlinked table (may be null) and removed entries' index references.
  void retire(detail::shard_table* table, detail::managed_stream* const* entries, std::size_t count);
  // After the shard's lock is released: counts the removed entries out of live_count_, closes their streams
  // and retires them with the table they were unlinked from.
  void close_removed(detail::shard_table* old, detail::managed_stream* const* removed, std::size_t count);
  // The walk close_all() and cleanup_inactive() share: per shard, under its writer mutex, `select(table,
  // removed)` appends the entries to take out of the shard's table and returns the table that replaces it
  // (the same table: nothing changes). Removed entries are unlinked and closed as in close(). Returns how
  // many were removed.
  template <class Select>
  std::size_t remove_from_shards(Select&& select);

  stream_options defaults_;
  std::uint64_t hash_seed_ = 0;  // manager_options::hash_seed, or the random key chosen for it
  bool track_metrics_ = false;
  aggregator* metrics_totals_ = nullptr;
  std::size_t shard_mask_ = 0;
  std::unique_ptr<std::atomic<detail::shard_table*>[]> tables_;  // read by lookups
  std::unique_ptr<shard_writer[]> writers_;                      // writers only
  std::atomic<std::atomic<detail::managed_stream*>*> handle_chunks_[kHandleChunks] = {};
  std::atomic<std::uint32_t> next_handle_index_{0};
  std::atomic<std::size_t> live_count_{0};
  struct reclaimer;
  std::unique_ptr<reclaimer> reclaimer_;
};

// =====================================================================================================
// Inline lookups.

inline detail::managed_stream* stream_manager::find(std::string_view id, std::uint64_t hash) const noexcept {
  // [I1] acquire: the table and every entry it points to were built before the writer published it;
  // pairs with [I2].
  const detail::shard_table* table = tables_[shard_of(hash)].load(std::memory_order_acquire);
  if (table == nullptr) return nullptr;
  const detail::index_slot* slots = table->slots();
  const std::uint32_t mask = table->mask;
  std::uint32_t i = static_cast<std::uint32_t>(hash) & mask;
  // At most mask + 1 probes; a table is never full, so an empty slot ends the search sooner.
  for (std::uint32_t probes = 0; probes <= mask; ++probes, i = (i + 1) & mask) {
    const detail::index_slot& slot = slots[i];
    if (slot.entry == nullptr) return nullptr;
    if (slot.hash == hash && slot.entry->id() == id) return slot.entry;
  }
  return nullptr;
}

inline detail::managed_stream* stream_manager::find(stream_handle handle) const noexcept {
  const auto [chunk_index, offset] = handle_position(static_cast<std::uint32_t>(handle.value));
  // [I3] acquire: the chunk was zeroed before it was installed; pairs with [I4].
  const std::atomic<detail::managed_stream*>* chunk = handle_chunks_[chunk_index].load(std::memory_order_acquire);
  if (chunk == nullptr) return nullptr;
  // [I5] acquire: the entry was constructed before its handle slot was set; pairs with [I6].
  detail::managed_stream* entry = chunk[offset].load(std::memory_order_acquire);
  if (entry == nullptr || entry->handle != handle.value) return nullptr;
  return entry;
}

inline status stream_manager::get(std::string_view id, stream_ref& out) const noexcept {
  if (!valid_id(id)) return status::invalid;
  const std::uint64_t hash = detail::hash_id(id, hash_seed_);
  detail::managed_stream* entry;
  {
    detail::epoch::guard section;
    entry = find(id, hash);
    if (entry == nullptr) return status::not_found;
    // Relaxed: the index's own reference keeps the entry alive until after this section ends.
    entry->refs.fetch_add(1, std::memory_order_relaxed);
  }
  out = stream_ref(entry);
  return status::ok;
}

inline status stream_manager::get(stream_handle handle, stream_ref& out) const noexcept {
  detail::managed_stream* entry;
  {
    detail::epoch::guard section;
    entry = find(handle);
    if (entry == nullptr) return status::not_found;
    entry->refs.fetch_add(1, std::memory_order_relaxed);  // as in get(id)
  }
  out = stream_ref(entry);
  return status::ok;
}

template <class Fn>
status stream_manager::visit(std::string_view id, Fn&& fn) const {
  if (!valid_id(id)) return status::invalid;
  const std::uint64_t hash = detail::hash_id(id, hash_seed_);
  detail::epoch::guard section;
  detail::managed_stream* entry = find(id, hash);
  if (entry == nullptr) return status::not_found;
  std::forward<Fn>(fn)(entry->as_stream());
  return status::ok;
}

template <class Fn>
status stream_manager::visit(stream_handle handle, Fn&& fn) const {
  detail::epoch::guard section;
  detail::managed_stream* entry = find(handle);
  if (entry == nullptr) return status::not_found;
  std::forward<Fn>(fn)(entry->as_stream());
  return status::ok;
}

inline stream_handle stream_manager::handle_of(std::string_view id) const noexcept {
  if (!valid_id(id)) return {};
  const std::uint64_t hash = detail::hash_id(id, hash_seed_);
  detail::epoch::guard section;
  const detail::managed_stream* entry = find(id, hash);
  return {entry != nullptr ? entry->handle : 0};
}

inline std::size_t stream_manager::count() const noexcept {
  return live_count_.load(std::memory_order_relaxed);  // a count; orders nothing
}

}  // namespace rill
