// rill/pipeline.hpp: the processing pipeline on a stream's consumer side: subscriptions with filters,
// per-kind callbacks, transformers that enrich events, batching, and a dispatcher that runs it all on a small
// worker pool.
//
//   pipeline          the configuration: transformers, then subscriptions (filter + handler). Immutable once
//   a
//                     runner or dispatcher uses it.
//   pipeline_runner   runs a pipeline on the calling thread: `process(e, stream)` for each event a consumer
//                     takes. Use it directly to run handlers on a thread of your choice (the producer's
//                     included, "when asked"); the dispatcher gives each of its workers one.
//   dispatcher        a pool of std::jthread workers; each attached stream is consumed (try_drain /
//                     drain_until) by one worker, which runs the pipeline for its events.
//
// Events are 64 bytes and fixed, so what transformers add travels beside the event: an `enriched_event` is
// the event, its stream's context (id, provider, model, request id, correlation id) and `event_tags` (a
// correlation id and 64 tag bits) that transformers may set.
//
// Guarantees
//   - Filtering and calling handlers never allocates or locks in rill's code (handlers, predicates and
//     transformers are the caller's std::functions). Batching copies an event's long text into the
//     runner's batch buffer, which grows to the largest batch seen and is then reused.
//   - A handler, predicate or transformer that throws is isolated: the exception is caught, counted for its
//     subscription (or for the transformers), and passed to the error callback; every other subscription
//     still sees the event, the stream goes on, and the worker survives.
//   - Events of one stream reach each subscription in stream order, from one worker at a time.
//   - The dispatcher never runs handlers on a producer's thread; an idle worker parks (on its single stream's
//     futex, or on the dispatcher's condition variable, shared by all its workers, when it serves several
//     streams): it never spins when idle.
// Not guaranteed
//   - Handlers of one subscription may run at the same time on different workers (for different streams):
//     a handler that shares state across streams must synchronize it.
//   - Wake-up latency: a worker serving several streams polls them with a backoff capped at
//     dispatcher_options::max_idle_wait (default 1 ms) unless a producer calls dispatcher::notify().
//   - A batch holds events of whatever streams its worker serves; a stream's end flushes its worker's
//   batches.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "rill/event.hpp"
#include "rill/manager.hpp"
#include "rill/stream.hpp"

namespace rill {

// A set of event kinds (one bit per kind). constexpr, trivially copyable.
class kind_set {
 public:
  static_assert(kEventKindCount <= 64, "kind_set holds one bit per kind in 64 bits");
  constexpr kind_set() noexcept = default;  // empty
  constexpr kind_set(std::initializer_list<event_kind> kinds) noexcept {
    for (const event_kind k : kinds) add(k);
  }
  static constexpr kind_set all() noexcept {
    kind_set s;
    s.bits_ = (std::uint64_t{1} << kEventKindCount) - 1;
    return s;
  }
  constexpr kind_set& add(event_kind k) noexcept {
    bits_ |= std::uint64_t{1} << (static_cast<std::size_t>(k) % 64);
    return *this;
  }
  constexpr bool contains(event_kind k) const noexcept {
    return ((bits_ >> (static_cast<std::size_t>(k) % 64)) & 1u) != 0;
  }
  constexpr bool empty() const noexcept { return bits_ == 0; }
  constexpr std::uint64_t bits() const noexcept { return bits_; }

 private:
  std::uint64_t bits_ = 0;
};

// Short text kept inside a struct (no allocation): up to kCapacity bytes are kept; longer input is
// truncated to its first kCapacity bytes, and its length and a keyed 64-bit hash of the rest are kept so
// that matches() can still tell one long text from another.
class short_text {
 public:
  static constexpr std::size_t kCapacity = 63;
  short_text() noexcept = default;
  short_text(std::string_view s) noexcept { assign(s); }  // NOLINT: implicit, like std::string
  void assign(std::string_view s) noexcept {
    size_ = static_cast<std::uint8_t>(s.size() < kCapacity ? s.size() : kCapacity);
    for (std::size_t i = 0; i < size_; ++i) bytes_[i] = s[i];
    full_size_ = s.size();
    rest_hash_ = s.size() > kCapacity ? hash_rest(s.substr(kCapacity)) : 0;
  }
  // The kept bytes: the whole text, or its first kCapacity bytes when truncated().
  std::string_view view() const noexcept { return {bytes_.data(), size_}; }
  bool empty() const noexcept { return full_size_ == 0; }
  bool truncated() const noexcept { return full_size_ > kCapacity; }
  // The length of the text assigned (more than view().size() when truncated).
  std::size_t full_size() const noexcept { return full_size_; }
  // True when `s` equals the text assigned: exactly up to kCapacity bytes; past that, by length, the first
  // kCapacity bytes and the hash of the rest (keyed per process: colliding texts cannot be chosen ahead).
  bool matches(std::string_view s) const noexcept {
    if (s.size() != full_size_ || s.substr(0, size_) != view()) return false;
    return !truncated() || hash_rest(s.substr(kCapacity)) == rest_hash_;
  }

 private:
  static std::uint64_t hash_rest(std::string_view rest) noexcept;

  std::array<char, kCapacity> bytes_{};
  std::uint8_t size_ = 0;
  std::size_t full_size_ = 0;
  std::uint64_t rest_hash_ = 0;
};

// What the pipeline knows about a stream. provider, model and request_id are set at attach or taken from the
// stream's stream_start (whose non-empty fields replace them). Values longer than short_text::kCapacity are
// kept truncated; subscription filters still compare them whole (exactly when they come from a
// stream_start, by short_text::matches() when set at attach).
struct stream_context {
  short_text id;
  short_text provider;
  short_text model;
  short_text request_id;
  std::uint64_t correlation_id = 0;  // copied into each event's tags before the transformers run
};

// What transformers attach to an event.
struct event_tags {
  std::uint64_t correlation_id = 0;
  std::uint64_t tags = 0;  // application-defined bits
};

// An event with its stream and tags. The event's text is valid during the handler call (for a batch, until
// the batch handler returns); copy what must outlive it. `stream` points at the stream's context as it is
// when the handler runs: in a batch, an item sent before a later stream_start of the same stream sees
// that stream_start's provider, model and request id.
struct enriched_event {
  event e;
  const stream_context* stream = nullptr;
  event_tags tags;
};

using event_handler = std::function<void(const enriched_event&)>;
using batch_handler = std::function<void(std::span<const enriched_event>)>;
using event_predicate = std::function<bool(const enriched_event&)>;
using event_transformer = std::function<void(enriched_event&)>;

// Per-kind callbacks: `kind_callbacks{}.on(event_kind::text_delta, f).on(event_kind::usage, g)`.
class kind_callbacks {
 public:
  kind_callbacks& on(event_kind kind, event_handler handler) {
    handlers_[static_cast<std::size_t>(kind) % kEventKindCount] = std::move(handler);
    return *this;
  }
  const event_handler& handler(event_kind kind) const noexcept {
    return handlers_[static_cast<std::size_t>(kind) % kEventKindCount];
  }

 private:
  std::array<event_handler, kEventKindCount> handlers_;
};

struct subscription_options {
  subscription_options() = default;
  // `{"name", {rill::event_kind::text_delta}}`: a name and the kinds to deliver.
  subscription_options(std::string subscription_name, kind_set delivered = kind_set::all())
      : name(std::move(subscription_name)), kinds(delivered) {}
  std::string name;                   // reported with handler errors
  kind_set kinds = kind_set::all();   // kinds delivered
  std::string provider;               // empty: any; else must equal the stream's provider (whole)
  std::string model;                  // empty: any; else must equal the stream's model (whole)
  event_predicate where;              // empty: every event passing the filters above
};

struct batch_options {
  // A full batch is handed over at once: 1 to pipeline::kMaxBatchEvents (0 counts as 1). Each runner
  // reserves this many items per batch subscription.
  std::size_t max_events = 64;
  std::chrono::nanoseconds max_delay = std::chrono::milliseconds(10);  // oldest event's longest wait; <= 0: none
};

// A caught exception, as reported to the error callback. Views valid during the callback only.
struct handler_error {
  std::size_t subscription;      // its id, or pipeline::kTransformers
  std::string_view name;         // the subscription's name ("transformer" for transformers)
  event_kind kind;               // the event being handled (the first of a batch)
  std::string_view what;         // std::exception::what(), or "unknown exception"
};

class pipeline {
 public:
  static constexpr std::size_t kMaxSubscriptions = 64;
  static constexpr std::size_t kTransformers = ~std::size_t{0};
  static constexpr std::size_t kMaxBatchEvents = std::size_t{1} << 20;

  pipeline() = default;
  pipeline(const pipeline&) = delete;
  pipeline& operator=(const pipeline&) = delete;

  // ---- configuration: one thread, before any runner or dispatcher uses the pipeline. Each throws
  // std::logic_error once the pipeline is in use, std::length_error past kMaxSubscriptions subscriptions.
  // Transformers run in the order added, before any subscription sees the event.
  void add_transformer(event_transformer transformer);
  // Calls `handler` for every event that passes the filters. Returns the subscription's id (0, 1, ...).
  std::size_t subscribe(subscription_options options, event_handler handler);
  // Calls the callback registered for the event's kind (kinds without one are skipped).
  std::size_t subscribe(subscription_options options, kind_callbacks callbacks);
  // Collects passing events into batches handed over when `batch.max_events` are held or the oldest has
  // waited `batch.max_delay` (checked by the runner's poll(), which the dispatcher calls every pass).
  // Throws std::invalid_argument when max_events is over kMaxBatchEvents.
  std::size_t subscribe_batch(subscription_options options, batch_options batch, batch_handler handler);
  // Called (on the worker's thread) for each caught exception. An exception it throws is swallowed.
  void on_error(std::function<void(const handler_error&)> callback);

  // ---- statistics: any thread, never blocks.
  std::uint64_t errors(std::size_t id) const noexcept;  // kTransformers for the transformers
  std::uint64_t total_errors() const noexcept;
  std::size_t subscription_count() const noexcept { return subs_.size(); }

 private:
  friend class pipeline_runner;
  enum class handler_type : std::uint8_t { each, per_kind, batch };
  struct subscription {
    subscription_options options;
    handler_type type = handler_type::each;
    event_handler each;
    kind_callbacks per_kind;
    batch_options batch;
    batch_handler on_batch;
    std::atomic<std::uint64_t> errors{0};
  };
  std::size_t add(std::unique_ptr<subscription> sub);
  void check_configurable() const;
  void report(std::size_t id, event_kind kind, std::string_view what) const noexcept;
  // The subscriptions whose provider and model filters admit a stream. `provider` / `model`: the whole
  // values when known (a stream_start's), else empty, and the context's are used.
  std::uint64_t origin_mask(const stream_context& context, std::string_view provider,
                            std::string_view model) const noexcept;

  std::vector<event_transformer> transformers_;
  std::vector<std::unique_ptr<subscription>> subs_;
  std::function<void(const handler_error&)> on_error_;
  mutable std::atomic<std::uint64_t> transformer_errors_{0};
  std::atomic<bool> in_use_{false};
};

// A stream as a runner sees it: its context and which subscriptions its provider/model admit.
class pipeline_stream {
 public:
  pipeline_stream() noexcept = default;
  explicit pipeline_stream(const stream_context& context) noexcept : context_(context) {}
  const stream_context& context() const noexcept { return context_; }

 private:
  friend class pipeline_runner;
  stream_context context_;
  std::uint64_t mask_ = 0;
  bool mask_known_ = false;
};

// Runs a pipeline on the calling thread. One runner per thread; not thread-safe itself.
class pipeline_runner {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  // Marks the pipeline in use and sizes the batch buffers. Allocates; throws std::bad_alloc only.
  explicit pipeline_runner(pipeline& p);
  // Flushes pending batches.
  ~pipeline_runner();
  pipeline_runner(const pipeline_runner&) = delete;
  pipeline_runner& operator=(const pipeline_runner&) = delete;

  // Runs the transformers and every matching subscription for `e`, which belongs to `stream`. Never throws;
  // allocates only when a batch's text buffer must grow (when that fails, the event is left out of that
  // batch and reported to on_error and errors() as the subscription's error); reads the clock when a timed
  // batch gets its first event. A batched event refers to `stream`'s
  // context until its batch is handed over: flush() (or poll() past the deadline) before destroying
  // `stream`, and destroy the runner, whose destructor flushes, before streams it still batches for.
  void process(const event& e, pipeline_stream& stream) noexcept;
  // Hands over batches whose oldest event has waited their max_delay by `now`. Returns the earliest
  // deadline of the batches still pending (time_point::max() when none). Never throws.
  time_point poll(time_point now) noexcept;
  // Hands over every pending batch. Never throws.
  void flush() noexcept;
  // True when some batch holds events.
  bool has_pending() const noexcept { return pending_ != 0; }

 private:
  struct batch_state {
    std::vector<enriched_event> items;
    std::vector<std::size_t> text_at;  // offset of the item's text in `text`, or kNoText
    std::string text;
    time_point deadline = time_point::max();
  };
  static constexpr std::size_t kNoText = ~std::size_t{0};
  void hand_over(std::size_t id) noexcept;
  void append(std::size_t id, const enriched_event& en) noexcept;

  pipeline& p_;
  std::vector<batch_state> batches_;  // one per subscription (empty for non-batch ones)
  std::size_t pending_ = 0;           // batches holding events
};

struct dispatcher_options {
  std::size_t workers = 2;         // at least 1
  std::size_t drain_batch = 256;   // events a worker takes from one stream per pass
  // Longest sleep of an idle worker that serves several streams (it also wakes on notify(), attach() and
  // batch deadlines). A worker serving one stream parks on that stream instead, waking when it gets data.
  std::chrono::microseconds max_idle_wait{1000};  // at least 1 us (0 is raised to 1)
  // How long a worker parked on its one stream waits before looking for stop requests and new streams.
  std::chrono::milliseconds park_slice{5};  // at least 1 ms (0 is raised to 1)
  // CPUs to pin the workers to: worker i runs on cpus[i % size]. Empty: not pinned. A CPU that does not exist
  // (or a failed pin) leaves that worker unpinned.
  std::vector<int> cpus;
  // Called on the worker when an attached stream has ended (closed and drained), after its batches were
  // handed over. An exception it throws is swallowed.
  std::function<void(const stream_context&)> on_stream_end;
};

// Consumes streams on a pool of workers and runs a pipeline for their events.
class dispatcher {
 public:
  // Starts the workers. Throws std::system_error if a thread cannot start, std::bad_alloc.
  dispatcher(pipeline& p, dispatcher_options options = {});
  // stop().
  ~dispatcher();
  dispatcher(const dispatcher&) = delete;
  dispatcher& operator=(const dispatcher&) = delete;

  // Makes the dispatcher the consumer of `s` (on the least loaded worker) until `s` is closed and drained,
  // or the dispatcher stops (a stream attached after stop() is never consumed). `s` must outlive that; nobody
  // else may consume it meanwhile (SPSC streams). The stream_ref overload keeps the stream alive itself
  // (std::invalid_argument for an empty ref). Any thread; allocates (std::bad_alloc leaves nothing attached);
  // locks the worker's attach list.
  void attach(stream& s, const stream_context& context);
  void attach(stream_ref s, const stream_context& context);
  // Wakes idle workers now (optional: a producer may call it after a send to cut the idle delay). Lock-free
  // unless a worker sleeps; never blocks for long.
  void notify() noexcept;
  // Blocks until every attached stream has ended, or stop() has joined the workers (then every handler
  // call has returned). Any thread but a worker's (a handler that waits for its own worker to go idle
  // waits forever).
  void wait_idle();
  // Workers finish their current pass, hand over their batches and exit; streams still attached are left
  // as they are (not closed). Idempotent; blocks until the workers are joined. One thread at a time, and
  // not from a worker's thread (a handler or on_stream_end): a worker cannot join itself.
  void stop() noexcept;

  // Statistics, any thread, never block.
  std::uint64_t events_dispatched() const noexcept { return dispatched_.load(std::memory_order_relaxed); }
  std::size_t attached_streams() const noexcept { return attached_.load(std::memory_order_relaxed); }

 private:
  struct attachment;
  struct worker;
  void run(worker& w, std::stop_token stop);
  void add(std::unique_ptr<attachment> a);
  void ended() noexcept;

  pipeline& p_;
  dispatcher_options options_;
  std::vector<std::unique_ptr<worker>> workers_;
  // Relaxed: a statistic.
  std::atomic<std::uint64_t> dispatched_{0};
  // [D5] acq_rel decrement by a worker whose stream ended; pairs with wait_idle's acquire [D6].
  std::atomic<std::size_t> attached_{0};
  // [D1]/[D2] notify handshake (see pipeline.cpp).
  std::atomic<std::uint64_t> wake_seq_{0};
  std::atomic<std::uint32_t> sleepers_{0};
  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
  std::mutex idle_mutex_;
  std::condition_variable idle_cv_;
  bool stopped_ = false;  // guarded by idle_mutex_: stop() has joined the workers
};

}  // namespace rill
