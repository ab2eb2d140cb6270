#include "rill/manager.hpp"

#include <sys/random.h>

#include <cstdlib>
#include <limits>
#include <mutex>
#include <new>
#include <stdexcept>

namespace rill {

namespace detail {

void destroy_managed_stream(managed_stream* entry) noexcept {
  const std::uint8_t shift = entry->allocation_shift;
  entry->~managed_stream();
  free_managed_stream(entry, shift);
}

// A fresh key for the id hash: 8 bytes from the kernel's random pool. Should that fail (no getrandom, or
// a pool not yet initialised early at boot), the clocks, this call's stack address and a process-wide
// count mixed together: different for every manager, though guessable by someone who knows when it began.
std::uint64_t random_hash_seed() noexcept {
  std::uint64_t seed = 0;
  const bool from_kernel =
      ::getrandom(&seed, sizeof seed, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof seed);
  if (from_kernel && seed != 0) return seed;
  static std::atomic<std::uint64_t> managers{0};
  // Relaxed: a count that only has to differ between managers; it orders nothing.
  const std::uint64_t count = managers.fetch_add(1, std::memory_order_relaxed);
  const auto now = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  const auto wall = static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  const auto stack = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&seed));
  return detail::fold_multiply(now ^ 0x9e3779b97f4a7c15ull, wall ^ stack ^ (count << 32)) | 1;
}

}  // namespace detail

namespace {

using detail::index_slot;
using detail::managed_stream;
using detail::shard_table;

constexpr std::uint32_t kMinTableSlots = 4;
// Retirements between two attempts to advance the epoch (each attempt is a membarrier syscall).
constexpr std::size_t kRetireBatch = 64;

static_assert(std::atomic<managed_stream*>::is_always_lock_free);
static_assert(std::atomic<shard_table*>::is_always_lock_free);

std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The smallest power of two, at least kMinTableSlots, that holds `count` entries at most 3/4 full.
std::uint32_t slots_for(std::size_t count) noexcept {
  std::size_t slots = kMinTableSlots;
  while (count * 4 > slots * 3) slots <<= 1;
  return static_cast<std::uint32_t>(slots);
}

shard_table* allocate_table(std::uint32_t slots) {
  void* raw = ::operator new(sizeof(shard_table) + std::size_t{slots} * sizeof(index_slot));
  auto* table = new (raw) shard_table{{nullptr, 0}, slots - 1, 0};
  std::memset(static_cast<void*>(table->slots()), 0, std::size_t{slots} * sizeof(index_slot));
  return table;
}

void free_table(shard_table* table) noexcept { ::operator delete(static_cast<void*>(table)); }

// Linear probing from the hash's home slot to the first empty one.
void place(shard_table& table, std::uint64_t hash, managed_stream* entry) noexcept {
  index_slot* slots = table.slots();
  std::uint32_t i = static_cast<std::uint32_t>(hash) & table.mask;
  while (slots[i].entry != nullptr) i = (i + 1) & table.mask;
  slots[i] = {hash, entry};
  ++table.count;
}

shard_table* copy_of(const shard_table& old) {
  shard_table* table = allocate_table(old.mask + 1);
  std::memcpy(static_cast<void*>(table->slots()), old.slots(), std::size_t{old.mask + 1} * sizeof(index_slot));
  table->count = old.count;
  return table;
}

// A fresh table of `slots` slots holding the entries of `old` that `keep(entry)` accepts.
template <class Keep>
shard_table* rebuilt(const shard_table& old, std::uint32_t slots, Keep keep) {
  shard_table* table = allocate_table(slots);
  for (std::uint32_t i = 0; i <= old.mask; ++i) {
    const index_slot& slot = old.slots()[i];
    if (slot.entry != nullptr && keep(slot.entry)) place(*table, slot.hash, slot.entry);
  }
  return table;
}

// Empties slot `i` and shifts the rest of its probe cluster back, so no tombstones are needed.
void erase_at(shard_table& table, std::uint32_t i) noexcept {
  index_slot* slots = table.slots();
  const std::uint32_t mask = table.mask;
  slots[i] = {0, nullptr};
  --table.count;
  for (std::uint32_t j = (i + 1) & mask; slots[j].entry != nullptr; j = (j + 1) & mask) {
    const std::uint32_t home = static_cast<std::uint32_t>(slots[j].hash) & mask;
    // The entry at j may move to the hole at i unless its home lies cyclically in (i, j].
    const bool home_after_hole = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!home_after_hole) {
      slots[i] = slots[j];
      slots[j] = {0, nullptr};
      i = j;
    }
  }
}

// The slot of `id` in `table` (may be null), or -1.
std::int64_t slot_of(const shard_table* table, std::string_view id, std::uint64_t hash) noexcept {
  if (table == nullptr) return -1;
  const index_slot* slots = table->slots();
  std::uint32_t i = static_cast<std::uint32_t>(hash) & table->mask;
  for (std::uint32_t probes = 0; probes <= table->mask; ++probes, i = (i + 1) & table->mask) {
    if (slots[i].entry == nullptr) return -1;
    if (slots[i].hash == hash && slots[i].entry->id() == id) return i;
  }
  return -1;
}

shard_table* with_inserted(const shard_table* old, std::uint64_t hash, managed_stream* entry) {
  shard_table* table;
  if (old == nullptr) {
    table = allocate_table(kMinTableSlots);
  } else if ((std::size_t{old->count} + 1) * 4 > (std::size_t{old->mask} + 1) * 3) {
    table = rebuilt(*old, slots_for(std::size_t{old->count} + 1), [](const managed_stream*) { return true; });
  } else {
    table = copy_of(*old);
  }
  place(*table, hash, entry);
  return table;
}

// `old` without slot `i`; null when that was its last entry. Shrinks a table that falls under 1/8 full.
shard_table* with_erased(const shard_table& old, std::uint32_t i) {
  if (old.count == 1) return nullptr;
  if (old.mask + 1 > kMinTableSlots && (std::size_t{old.count} - 1) * 8 < std::size_t{old.mask} + 1) {
    const managed_stream* gone = old.slots()[i].entry;
    return rebuilt(old, slots_for(std::size_t{old.count} - 1), [gone](const managed_stream* e) { return e != gone; });
  }
  shard_table* table = copy_of(old);
  erase_at(*table, i);
  return table;
}

void drop_index_reference(managed_stream* entry) noexcept {
  // [H1] as in stream_ref::reset().
  if (entry->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) detail::destroy_managed_stream(entry);
}

}  // namespace

// ---- per-shard writer state ----
struct stream_manager::shard_writer {
  std::mutex mutex;                          // serializes this shard's writers
  std::vector<std::uint32_t> free_handles;   // handle indices released by this shard, reused by it
  // The next handle generation, under the mutex. Per shard, as the indices it reuses are: a handle comes
  // back only after 2^32 creates in its shard. Never 0, so that no handle is 0.
  std::uint32_t next_generation = 1;

  std::uint32_t take_generation() noexcept {
    const std::uint32_t generation = next_generation++;
    if (next_generation == 0) next_generation = 1;
    return generation;
  }
};

// ---- retired objects, freed once the epoch has advanced twice past their tag ----
struct stream_manager::reclaimer {
  std::mutex mutex;
  shard_table* tables_head = nullptr;
  shard_table* tables_tail = nullptr;
  managed_stream* entries_head = nullptr;
  managed_stream* entries_tail = nullptr;
  std::size_t since_attempt = 0;
  // Test and debug counters; written under the mutex, read without it (relaxed: counts only).
  std::atomic<std::uint64_t> tables_retired{0};
  std::atomic<std::uint64_t> tables_reclaimed{0};
  std::atomic<std::uint64_t> entries_retired{0};
  std::atomic<std::uint64_t> entries_reclaimed{0};
  std::atomic<std::uint64_t> advance_attempts{0};

  static void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);  // one writer
  }

  // Under the mutex: unlinks the freeable prefixes of both lists (tags only grow along a list: they are
  // taken under this mutex). `everything` ignores the epoch (destruction).
  void detach_freeable(bool everything, shard_table*& tables, managed_stream*& entries) noexcept {
    tables = nullptr;
    entries = nullptr;
    shard_table* last_table = nullptr;
    while (tables_head != nullptr && (everything || detail::epoch::safe_to_free(tables_head->link.tag))) {
      if (tables == nullptr) tables = tables_head;
      last_table = tables_head;
      tables_head = static_cast<shard_table*>(tables_head->link.next);
    }
    if (last_table != nullptr) last_table->link.next = nullptr;
    if (tables_head == nullptr) tables_tail = nullptr;
    managed_stream* last_entry = nullptr;
    while (entries_head != nullptr && (everything || detail::epoch::safe_to_free(entries_head->state.link.tag))) {
      if (entries == nullptr) entries = entries_head;
      last_entry = entries_head;
      entries_head = static_cast<managed_stream*>(entries_head->state.link.next);
    }
    if (last_entry != nullptr) last_entry->state.link.next = nullptr;
    if (entries_head == nullptr) entries_tail = nullptr;
  }

  // Whether some retired node still waits for the epoch to advance.
  bool waiting() const noexcept {
    return (tables_head != nullptr && !detail::epoch::safe_to_free(tables_head->link.tag)) ||
           (entries_head != nullptr && !detail::epoch::safe_to_free(entries_head->state.link.tag));
  }

  // Outside the mutex: frees what detach_freeable() returned.
  void free_detached(shard_table* tables, managed_stream* entries) noexcept {
    std::uint64_t tables_freed = 0, entries_freed = 0;
    while (tables != nullptr) {
      shard_table* next = static_cast<shard_table*>(tables->link.next);
      free_table(tables);
      tables = next;
      ++tables_freed;
    }
    while (entries != nullptr) {
      managed_stream* next = static_cast<managed_stream*>(entries->state.link.next);
      drop_index_reference(entries);  // the stream itself lives on while stream_refs hold it
      entries = next;
      ++entries_freed;
    }
    if (tables_freed + entries_freed != 0) {
      std::lock_guard lock(mutex);
      bump(tables_reclaimed, tables_freed);
      bump(entries_reclaimed, entries_freed);
    }
  }
};

// =====================================================================================================

stream_manager::stream_manager(const manager_options& options)
    : defaults_(options.stream_defaults),
      hash_seed_(options.hash_seed != 0 ? options.hash_seed : detail::random_hash_seed()),
      track_metrics_(options.track_metrics),
      metrics_totals_(options.metrics_totals),
      reclaimer_(std::make_unique<reclaimer>()) {
  if (options.shards == 0 || options.shards > (std::size_t{1} << 20)) {
    throw std::invalid_argument("rill::stream_manager: shards must be 1 to 2^20");
  }
  if (metrics_totals_ != nullptr && !track_metrics_) {
    throw std::invalid_argument("rill::stream_manager: metrics_totals needs track_metrics");
  }
  { const stream probe(defaults_); }  // throws std::invalid_argument for bad defaults; allocates nothing
  const std::size_t shards = detail::round_up_pow2(options.shards);
  shard_mask_ = shards - 1;
  tables_ = std::make_unique<std::atomic<shard_table*>[]>(shards);
  writers_ = std::make_unique<shard_writer[]>(shards);
}

stream_manager::~stream_manager() {
  for (std::size_t s = 0; s <= shard_mask_; ++s) {
    shard_table* table = tables_[s].load(std::memory_order_relaxed);  // no other thread runs now
    if (table == nullptr) continue;
    for (std::uint32_t i = 0; i <= table->mask; ++i) {
      managed_stream* entry = table->slots()[i].entry;
      if (entry == nullptr) continue;
      entry->as_stream().close();
      drop_index_reference(entry);
    }
    free_table(table);
  }
  shard_table* tables;
  managed_stream* entries;
  {
    std::lock_guard lock(reclaimer_->mutex);
    reclaimer_->detach_freeable(true, tables, entries);
  }
  reclaimer_->free_detached(tables, entries);
  for (auto& chunk : handle_chunks_) std::free(chunk.load(std::memory_order_relaxed));
}

// ---- handles ----

std::uint32_t stream_manager::allocate_handle_index(shard_writer& writer) {
  std::uint32_t index;
  if (!writer.free_handles.empty()) {
    index = writer.free_handles.back();
    writer.free_handles.pop_back();
  } else {
    // Relaxed: a unique number; orders nothing. A CAS rather than fetch_add, so that the counter stops at
    // the limit instead of wrapping to indices that live streams hold (every later call throws too).
    index = next_handle_index_.load(std::memory_order_relaxed);
    do {
      if (index == std::numeric_limits<std::uint32_t>::max())
        throw std::length_error("rill::stream_manager: 2^32 handles");
    } while (!next_handle_index_.compare_exchange_weak(index, index + 1, std::memory_order_relaxed,
                                                       std::memory_order_relaxed));
  }
  try {
    ensure_handle_chunk(index);
  } catch (...) {
    writer.free_handles.push_back(
        index);  // kept for this shard's next create, which allocates the chunk again
    throw;
  }
  return index;
}

// The chunk of the handle table that holds `index`, allocated if it is not yet. Throws std::bad_alloc.
void stream_manager::ensure_handle_chunk(std::uint32_t index) {
  const auto [chunk_index, offset] = handle_position(index);
  (void)offset;
  if (handle_chunks_[chunk_index].load(std::memory_order_acquire) == nullptr) {  // [I3]
    // calloc: the kernel's zero pages cost no memory until a handle lands on them. Zero bytes are a null
    // std::atomic<pointer> (lock-free, asserted above).
    const std::size_t size = kHandleChunkBase << chunk_index;
    auto* chunk = static_cast<std::atomic<managed_stream*>*>(std::calloc(size, sizeof(std::atomic<managed_stream*>)));
    if (chunk == nullptr) throw std::bad_alloc();
    std::atomic<managed_stream*>* expected = nullptr;
    // [I4] release: the zeroed chunk is visible to lookups that acquire it ([I3]). Writers of other
    // shards may race to install it; the loser frees its copy.
    if (!handle_chunks_[chunk_index].compare_exchange_strong(expected, chunk, std::memory_order_release,
                                                             std::memory_order_acquire)) {
      std::free(chunk);
    }
  }
}

void stream_manager::set_handle(std::uint32_t index, managed_stream* entry) noexcept {
  const auto [chunk_index, offset] = handle_position(index);
  std::atomic<managed_stream*>* chunk = handle_chunks_[chunk_index].load(std::memory_order_acquire);  // [I3]
  // [I6] release: the entry (id, handle, stream) is visible to a lookup that acquires it ([I5]). Storing
  // null needs no ordering, but one order keeps the tag table short.
  chunk[offset].store(entry, std::memory_order_release);
}

void stream_manager::release_handle(shard_writer& writer, std::uint64_t handle) noexcept {
  const auto index = static_cast<std::uint32_t>(handle);
  set_handle(index, nullptr);
  try {
    writer.free_handles.push_back(index);
  } catch (const std::bad_alloc&) {
    // The index is simply never reused.
  }
}

// ---- reclamation ----

void stream_manager::retire(shard_table* table, managed_stream* const* entries, std::size_t count) {
  // A create into an empty shard replaces no table and no entry. Earlier retirements wait for the next
  // call that retires something, or for reclaim().
  if (table == nullptr && count == 0) return;
  reclaimer& r = *reclaimer_;
  shard_table* free_tables;
  managed_stream* free_entries;
  {
    std::lock_guard lock(r.mutex);
    // The unlinks (table publication, handle clearing) happened before this RMW: see retire_epoch().
    const std::uint64_t tag = detail::epoch::retire_epoch();
    if (table != nullptr) {
      table->link = {nullptr, tag};
      if (r.tables_tail != nullptr) {
        r.tables_tail->link.next = table;
      } else {
        r.tables_head = table;
      }
      r.tables_tail = table;
      reclaimer::bump(r.tables_retired);
    }
    for (std::size_t i = 0; i < count; ++i) {
      managed_stream* entry = entries[i];
      entry->state.link = {nullptr, tag};
      if (r.entries_tail != nullptr) {
        r.entries_tail->state.link.next = entry;
      } else {
        r.entries_head = entry;
      }
      r.entries_tail = entry;
    }
    reclaimer::bump(r.entries_retired, count);
    r.since_attempt += (table != nullptr ? 1 : 0) + count;
    if (r.since_attempt >= kRetireBatch) {
      r.since_attempt = 0;
      reclaimer::bump(r.advance_attempts);
      (void)detail::epoch::try_advance();
    }
    r.detach_freeable(false, free_tables, free_entries);
  }
  r.free_detached(free_tables, free_entries);
}

void stream_manager::reclaim() {
  reclaimer& r = *reclaimer_;
  shard_table* free_tables;
  managed_stream* free_entries;
  {
    std::lock_guard lock(r.mutex);
    // A node is freed two advances after its retirement, so one call may need two to free the last burst.
    for (int advances = 0; advances < 2 && r.waiting(); ++advances) {
      reclaimer::bump(r.advance_attempts);
      if (!detail::epoch::try_advance()) break;  // a reader is still in an older epoch
    }
    r.detach_freeable(false, free_tables, free_entries);
  }
  r.free_detached(free_tables, free_entries);
}

reclamation_counters stream_manager::reclamation() const noexcept {
  const reclaimer& r = *reclaimer_;
  reclamation_counters c;
  c.tables_retired = r.tables_retired.load(std::memory_order_relaxed);
  c.tables_reclaimed = r.tables_reclaimed.load(std::memory_order_relaxed);
  c.entries_retired = r.entries_retired.load(std::memory_order_relaxed);
  c.entries_reclaimed = r.entries_reclaimed.load(std::memory_order_relaxed);
  c.advance_attempts = r.advance_attempts.load(std::memory_order_relaxed);
  return c;
}

// ---- writers ----

status stream_manager::create(std::string_view id, stream_ref& out) { return create(id, defaults_, out); }

status stream_manager::create(std::string_view id, const stream_options& options, stream_ref& out) {
  return create_or_get(id, options, out, nullptr, true);
}

status stream_manager::get_or_create(std::string_view id, stream_ref& out, bool* created) {
  return get_or_create(id, defaults_, out, created);
}

status stream_manager::get_or_create(std::string_view id, const stream_options& options, stream_ref& out,
                                     bool* created) {
  if (created != nullptr) *created = false;
  if (!valid_id(id)) return status::invalid;
  const std::uint64_t hash = detail::hash_id(id, hash_seed_);
  managed_stream* found = nullptr;
  {
    detail::epoch::guard section;
    managed_stream* entry = find(id, hash);
    if (entry != nullptr && !entry->as_stream().is_closed()) {
      entry->refs.fetch_add(1, std::memory_order_relaxed);  // alive: indexed, and we are in a read section
      found = entry;
    }
  }
  if (found != nullptr) {
    out = stream_ref(found);
    return status::ok;
  }
  return create_or_get(id, options, out, created, false);
}

status stream_manager::create_or_get(std::string_view id, const stream_options& options, stream_ref& out,
                                     bool* created, bool fail_if_live) {
  if (created != nullptr) *created = false;
  if (!valid_id(id)) return status::invalid;
  const std::uint64_t hash = detail::hash_id(id, hash_seed_);

  // Build the entry before taking the lock: an allocation and a stream constructor, nothing shared. The
  // metrics' room is allocated here; they are constructed only once the entry is sure to be published, so a
  // create that loses (already_exists, or a racing get_or_create) never counts a stream in the aggregator.
  const detail::entry_memory memory =
      detail::allocate_managed_stream(managed_stream::allocation_size(id.size(), track_metrics_));
  managed_stream* entry;
  try {
    entry = new (memory.at) managed_stream(id, options, steady_now_ns(), memory.shift);
  } catch (const std::invalid_argument&) {
    detail::free_managed_stream(memory.at, memory.shift);
    return status::invalid;
  } catch (...) {
    detail::free_managed_stream(memory.at, memory.shift);
    throw;
  }
  struct entry_owner {  // frees the unpublished entry on every early exit
    managed_stream* entry;
    ~entry_owner() {
      if (entry != nullptr) detail::destroy_managed_stream(entry);
    }
  } owner{entry};

  const std::size_t s = shard_of(hash);
  shard_writer& writer = writers_[s];
  std::unique_lock lock(writer.mutex);
  // Relaxed: the shard's writers serialize on the mutex, which orders the previous publication before us.
  shard_table* old = tables_[s].load(std::memory_order_relaxed);
  const std::int64_t at = slot_of(old, id, hash);
  managed_stream* replaced = nullptr;
  if (at >= 0) {
    managed_stream* existing = old->slots()[at].entry;
    if (!existing->as_stream().is_closed()) {
      if (fail_if_live) return status::already_exists;
      existing->refs.fetch_add(1, std::memory_order_relaxed);  // indexed, and we hold the shard lock
      lock.unlock();
      out = stream_ref(existing);
      return status::ok;
    }
    replaced = existing;  // closed through a stream_ref but still indexed: the new stream takes its place
  }
  shard_table* next;
  if (replaced != nullptr) {
    next = copy_of(*old);
    next->slots()[at].entry = entry;
  } else {
    next = with_inserted(old, hash, entry);
  }
  std::uint32_t index;
  try {
    index = allocate_handle_index(writer);
  } catch (...) {
    free_table(next);
    throw;
  }
  if (track_metrics_) entry->construct_metrics(metrics_totals_);  // noexcept; the aggregator counts a start
  entry->handle = (std::uint64_t{writer.take_generation()} << 32) | index;
  entry->refs.store(2, std::memory_order_relaxed);  // the index's and `out`'s; not yet shared
  set_handle(index, entry);
  // Counted before the entry is visible, under the shard's lock: whoever removes it (after taking the lock)
  // counts it out later in live_count_'s modification order, so the count never wraps below zero. Relaxed:
  // a count; the mutex orders the two RMWs.
  if (replaced == nullptr) live_count_.fetch_add(1, std::memory_order_relaxed);
  // [I2] release: publishes the table and the entry built above; pairs with [I1].
  tables_[s].store(next, std::memory_order_release);
  if (replaced != nullptr) release_handle(writer, replaced->handle);
  lock.unlock();
  owner.entry = nullptr;
  out = stream_ref(entry);
  if (created != nullptr) *created = true;
  retire(old, &replaced, replaced != nullptr ? 1 : 0);
  return status::ok;
}

status stream_manager::close(std::string_view id) {
  if (!valid_id(id)) return status::invalid;
  const std::uint64_t hash = detail::hash_id(id, hash_seed_);
  const std::size_t s = shard_of(hash);
  shard_writer& writer = writers_[s];
  std::unique_lock lock(writer.mutex);
  shard_table* old = tables_[s].load(std::memory_order_relaxed);  // serialized by the mutex
  const std::int64_t at = slot_of(old, id, hash);
  if (at < 0) return status::not_found;
  managed_stream* entry = old->slots()[at].entry;
  shard_table* next = with_erased(*old, static_cast<std::uint32_t>(at));
  tables_[s].store(next, std::memory_order_release);  // [I2]
  release_handle(writer, entry->handle);
  lock.unlock();
  close_removed(old, &entry, 1);
  return status::ok;
}

void stream_manager::close_removed(shard_table* old, managed_stream* const* removed, std::size_t count) {
  live_count_.fetch_sub(count, std::memory_order_relaxed);  // a count; orders nothing
  for (std::size_t i = 0; i < count; ++i) removed[i]->as_stream().close();
  retire(old, removed, count);
}

template <class Select>
std::size_t stream_manager::remove_from_shards(Select&& select) {
  std::size_t total = 0;
  std::vector<managed_stream*> removed;
  for (std::size_t s = 0; s <= shard_mask_; ++s) {
    shard_writer& writer = writers_[s];
    std::unique_lock lock(writer.mutex);
    shard_table* old = tables_[s].load(std::memory_order_relaxed);  // serialized by the mutex
    if (old == nullptr) continue;
    removed.clear();
    shard_table* next = select(*old, removed);
    if (next == old) continue;
    tables_[s].store(next, std::memory_order_release);  // [I2]
    for (managed_stream* entry : removed) release_handle(writer, entry->handle);
    lock.unlock();
    close_removed(old, removed.data(), removed.size());
    total += removed.size();
  }
  return total;
}

std::size_t stream_manager::close_all() {
  return remove_from_shards([](shard_table& old, std::vector<managed_stream*>& removed) -> shard_table* {
    for (std::uint32_t i = 0; i <= old.mask; ++i) {
      if (old.slots()[i].entry != nullptr) removed.push_back(old.slots()[i].entry);
    }
    return nullptr;
  });
}

void stream_manager::observe(managed_stream& entry) const noexcept {
  const std::uint64_t activity = entry.as_stream().activity();
  // The clock is read after the activity: a time read before it (say, once per shard walk) could date a
  // send made during the walk before it happened, and cleanup_inactive would then close it early.
  if (activity != entry.state.seen.activity) entry.state.seen = {activity, steady_now_ns()};
}

std::size_t stream_manager::cleanup_inactive(std::chrono::nanoseconds threshold) {
  const std::int64_t limit = threshold.count();
  return remove_from_shards([&](shard_table& old, std::vector<managed_stream*>& removed) -> shard_table* {
    // Read before the observations below: a `now` earlier than an observation only keeps a stream longer.
    const std::int64_t now = steady_now_ns();
    auto inactive = [&](const managed_stream* e) { return now - e->state.seen.at_ns >= limit; };
    for (std::uint32_t i = 0; i <= old.mask; ++i) {
      managed_stream* entry = old.slots()[i].entry;
      if (entry == nullptr) continue;
      observe(*entry);
      if (inactive(entry)) removed.push_back(entry);
    }
    if (removed.empty()) return &old;
    if (removed.size() == old.count) return nullptr;
    return rebuilt(old, slots_for(old.count - removed.size()), [&](const managed_stream* e) { return !inactive(e); });
  });
}

// ---- introspection ----

void stream_manager::fill_info(managed_stream& entry, stream_info& out) const {
  using std::chrono::nanoseconds;
  using std::chrono::steady_clock;
  const stream& s = entry.as_stream();
  const stream_counters c = s.counters();
  out.id.assign(entry.id());
  out.handle = {entry.handle};
  out.created = steady_clock::time_point(std::chrono::duration_cast<steady_clock::duration>(nanoseconds(entry.created_ns)));
  out.last_activity =
      steady_clock::time_point(std::chrono::duration_cast<steady_clock::duration>(nanoseconds(entry.state.seen.at_ns)));
  out.kind = s.kind();
  out.policy = s.policy();
  out.capacity = s.capacity();
  out.arena_capacity = s.arena_capacity();
  out.approx_size = s.approx_size();
  out.sent = c.sent;
  out.received = c.received;
  out.dropped = c.dropped;
  out.closed = s.is_closed();
  out.allocated = s.allocated();
  // The entry is indexed (we hold its shard's mutex), so its metrics are alive; the consumer may be writing
  // them (relaxed statistics, see rill/metrics.hpp).
  if (stream_metrics* m = entry.metrics(); m != nullptr) {
    out.metrics = std::make_shared<const stream_metrics_snapshot>(m->snapshot());
  } else {
    out.metrics.reset();
  }
}

status stream_manager::info(std::string_view id, stream_info& out) const {
  if (!valid_id(id)) return status::invalid;
  const std::uint64_t hash = detail::hash_id(id, hash_seed_);
  const std::size_t s = shard_of(hash);
  std::lock_guard lock(writers_[s].mutex);  // observations are guarded by the shard's mutex
  shard_table* table = tables_[s].load(std::memory_order_relaxed);  // serialized by the mutex
  const std::int64_t at = slot_of(table, id, hash);
  if (at < 0) return status::not_found;
  managed_stream& entry = *table->slots()[at].entry;
  observe(entry);
  fill_info(entry, out);
  return status::ok;
}

std::vector<stream_info> stream_manager::list_info() const {
  std::vector<stream_info> result;
  result.reserve(count());
  for (std::size_t s = 0; s <= shard_mask_; ++s) {
    std::lock_guard lock(writers_[s].mutex);
    shard_table* table = tables_[s].load(std::memory_order_relaxed);  // serialized by the mutex
    if (table == nullptr) continue;
    for (std::uint32_t i = 0; i <= table->mask; ++i) {
      managed_stream* entry = table->slots()[i].entry;
      if (entry == nullptr) continue;
      observe(*entry);
      fill_info(*entry, result.emplace_back());
    }
  }
  return result;
}

std::vector<std::string> stream_manager::list() const {
  std::vector<std::string> ids;
  ids.reserve(count());
  for (std::size_t s = 0; s <= shard_mask_; ++s) {
    detail::epoch::guard section;  // one short section per shard keeps reclamation moving
    const shard_table* table = tables_[s].load(std::memory_order_acquire);  // [I1]
    if (table == nullptr) continue;
    for (std::uint32_t i = 0; i <= table->mask; ++i) {
      const managed_stream* entry = table->slots()[i].entry;
      if (entry != nullptr) ids.emplace_back(entry->id());
    }
  }
  return ids;
}

}  // namespace rill
