// The processing pipeline: subscriptions, the runner and the dispatcher (rill/pipeline.hpp).
#include "rill/pipeline.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>

namespace rill {

// ---- pipeline -------------------------------------------------------------------------------------------

void pipeline::check_configurable() const {
  // Relaxed: the flag only catches misuse; the configuration reaches worker threads through their creation
  // (or whatever handoff the caller uses), not through this flag.
  if (in_use_.load(std::memory_order_relaxed)) {
    throw std::logic_error("rill::pipeline: configured after a runner or dispatcher started using it");
  }
}

void pipeline::add_transformer(event_transformer transformer) {
  check_configurable();
  transformers_.push_back(std::move(transformer));
}

std::size_t pipeline::add(std::unique_ptr<subscription> sub) {
  check_configurable();
  if (subs_.size() == kMaxSubscriptions) throw std::length_error("rill::pipeline: too many subscriptions");
  subs_.push_back(std::move(sub));
  return subs_.size() - 1;
}

std::size_t pipeline::subscribe(subscription_options options, event_handler handler) {
  auto sub = std::make_unique<subscription>();
  sub->options = std::move(options);
  sub->type = handler_type::each;
  sub->each = std::move(handler);
  return add(std::move(sub));
}

std::size_t pipeline::subscribe(subscription_options options, kind_callbacks callbacks) {
  auto sub = std::make_unique<subscription>();
  kind_set with_callback;
  for (std::size_t k = 0; k < kEventKindCount; ++k) {
    const auto kind = static_cast<event_kind>(k);
    if (callbacks.handler(kind) && options.kinds.contains(kind)) with_callback.add(kind);
  }
  options.kinds = with_callback;  // kinds without a callback are filtered out up front
  sub->options = std::move(options);
  sub->type = handler_type::per_kind;
  sub->per_kind = std::move(callbacks);
  return add(std::move(sub));
}

std::size_t pipeline::subscribe_batch(subscription_options options, batch_options batch, batch_handler handler) {
  if (batch.max_events > kMaxBatchEvents)
    throw std::invalid_argument("rill::pipeline::subscribe_batch: max_events over 2^20");
  auto sub = std::make_unique<subscription>();
  sub->options = std::move(options);
  sub->type = handler_type::batch;
  batch.max_events = std::max<std::size_t>(batch.max_events, 1);
  sub->batch = batch;
  sub->on_batch = std::move(handler);
  return add(std::move(sub));
}

void pipeline::on_error(std::function<void(const handler_error&)> callback) {
  check_configurable();
  on_error_ = std::move(callback);
}

std::uint64_t pipeline::errors(std::size_t id) const noexcept {
  // Relaxed: statistics.
  if (id == kTransformers) return transformer_errors_.load(std::memory_order_relaxed);
  return id < subs_.size() ? subs_[id]->errors.load(std::memory_order_relaxed) : 0;
}

std::uint64_t pipeline::total_errors() const noexcept {
  std::uint64_t n = transformer_errors_.load(std::memory_order_relaxed);  // a statistic
  for (const auto& s : subs_) n += s->errors.load(std::memory_order_relaxed);
  return n;
}

void pipeline::report(std::size_t id, event_kind kind, std::string_view what) const noexcept {
  // Relaxed: statistics; the error callback gets the details directly.
  if (id == kTransformers) {
    transformer_errors_.fetch_add(1, std::memory_order_relaxed);
  } else {
    subs_[id]->errors.fetch_add(1, std::memory_order_relaxed);
  }
  if (!on_error_) return;
  try {
    on_error_({id, id == kTransformers ? std::string_view("transformer") : std::string_view(subs_[id]->options.name),
               kind, what});
  } catch (...) {  // the reporter itself must not take the worker down
  }
}

std::uint64_t short_text::hash_rest(std::string_view rest) noexcept {
  static const std::uint64_t key = detail::random_hash_seed();  // thread-safe initialisation; never throws
  return detail::hash_id(rest, key);
}

std::uint64_t pipeline::origin_mask(const stream_context& context, std::string_view provider,
                                    std::string_view model) const noexcept {
  const auto admits = [](const std::string& filter, std::string_view whole, const short_text& kept) {
    if (filter.empty()) return true;
    return whole.empty() ? kept.matches(filter) : filter == whole;
  };
  std::uint64_t mask = 0;
  for (std::size_t i = 0; i < subs_.size(); ++i) {
    const auto& o = subs_[i]->options;
    if (admits(o.provider, provider, context.provider) && admits(o.model, model, context.model)) {
      mask |= std::uint64_t{1} << i;
    }
  }
  return mask;
}

// ---- runner ---------------------------------------------------------------------------------------------

pipeline_runner::pipeline_runner(pipeline& p) : p_(p) {
  p_.in_use_.store(true, std::memory_order_relaxed);  // misuse check only (see check_configurable)
  batches_.resize(p_.subs_.size());
  for (std::size_t i = 0; i < p_.subs_.size(); ++i) {
    if (p_.subs_[i]->type != pipeline::handler_type::batch) continue;
    batches_[i].items.reserve(p_.subs_[i]->batch.max_events);
    batches_[i].text_at.reserve(p_.subs_[i]->batch.max_events);
  }
}

pipeline_runner::~pipeline_runner() { flush(); }

void pipeline_runner::process(const event& e, pipeline_stream& stream) noexcept {
  stream_context& ctx = stream.context_;
  std::string_view provider, model;  // the stream_start's whole values, which ctx may keep truncated
  if (e.kind() == event_kind::stream_start) {
    provider = e.provider();
    model = e.model();
    if (!provider.empty()) ctx.provider.assign(provider);
    if (!model.empty()) ctx.model.assign(model);
    if (!e.request_id().empty()) ctx.request_id.assign(e.request_id());
    stream.mask_known_ = false;
  }
  if (!stream.mask_known_) {
    stream.mask_ = p_.origin_mask(ctx, provider, model);
    stream.mask_known_ = true;
  }
  enriched_event en{e, &ctx, {ctx.correlation_id, 0}};
  for (const auto& transform : p_.transformers_) {
    try {
      transform(en);
    } catch (const std::exception& ex) {
      p_.report(pipeline::kTransformers, e.kind(), ex.what());
    } catch (...) {
      p_.report(pipeline::kTransformers, e.kind(), "unknown exception");
    }
  }
  const event_kind kind = en.e.kind();
  for (std::uint64_t mask = stream.mask_; mask != 0; mask &= mask - 1) {
    const auto i = static_cast<std::size_t>(__builtin_ctzll(mask));
    auto& sub = *p_.subs_[i];
    if (!sub.options.kinds.contains(kind)) continue;
    try {
      if (sub.options.where && !sub.options.where(en)) continue;
      switch (sub.type) {
        case pipeline::handler_type::each: sub.each(en); break;
        case pipeline::handler_type::per_kind: sub.per_kind.handler(kind)(en); break;
        case pipeline::handler_type::batch: append(i, en); break;
      }
    } catch (const std::exception& ex) {
      p_.report(i, kind, ex.what());
    } catch (...) {
      p_.report(i, kind, "unknown exception");
    }
  }
}

void pipeline_runner::append(std::size_t id, const enriched_event& en) noexcept {
  auto& b = batches_[id];
  const auto& options = p_.subs_[id]->batch;
  // The text must outlive the stream's arena hold (and a caller's borrowed buffer): it is copied into the
  // batch's buffer, whose growth is the only allocation here. Pointers are fixed up at hand-over, after the
  // buffer has stopped growing.
  std::size_t text_at = kNoText;
  if (!en.e.text_is_inline()) {
    text_at = b.text.size();
    try {
      b.text.resize(text_at + en.e.text_size());
    } catch (const std::bad_alloc&) {  // this event is left out; the batch so far is intact
      p_.report(id, en.e.kind(), "out of memory: the event's text could not be copied into its batch");
      return;
    }
  }
  if (b.items.empty()) {
    ++pending_;
    if (options.max_delay.count() > 0) b.deadline = std::chrono::steady_clock::now() + options.max_delay;
  }
  b.items.push_back(en);  // within the reserved max_events: no allocation
  b.text_at.push_back(text_at);
  if (text_at != kNoText) {
    event& copy = b.items.back().e;
    if (copy.text_is_external()) {
      copy.move_text_to_arena(b.text.data() + text_at);
    } else {
      const std::string_view block = copy.text_block();
      std::memcpy(b.text.data() + text_at, block.data(), block.size());
    }
  }
  if (b.items.size() >= options.max_events) hand_over(id);
}

void pipeline_runner::hand_over(std::size_t id) noexcept {
  auto& b = batches_[id];
  if (b.items.empty()) return;
  for (std::size_t i = 0; i < b.items.size(); ++i) {
    if (b.text_at[i] == kNoText) continue;
    event& e = b.items[i].e;
    e.set_arena_block(b.text.data() + b.text_at[i], static_cast<std::uint32_t>(e.text_size()));
  }
  auto& sub = *p_.subs_[id];
  try {
    sub.on_batch(std::span<const enriched_event>(b.items.data(), b.items.size()));
  } catch (const std::exception& ex) {
    p_.report(id, b.items.front().e.kind(), ex.what());
  } catch (...) {
    p_.report(id, b.items.front().e.kind(), "unknown exception");
  }
  b.items.clear();
  b.text_at.clear();
  b.text.clear();
  b.deadline = time_point::max();
  --pending_;
}

pipeline_runner::time_point pipeline_runner::poll(time_point now) noexcept {
  time_point next = time_point::max();
  if (pending_ == 0) return next;
  for (std::size_t i = 0; i < batches_.size(); ++i) {
    auto& b = batches_[i];
    if (b.items.empty()) continue;
    if (b.deadline <= now) {
      hand_over(i);
    } else {
      next = std::min(next, b.deadline);
    }
  }
  return next;
}

void pipeline_runner::flush() noexcept {
  for (std::size_t i = 0; i < batches_.size() && pending_ != 0; ++i) hand_over(i);
}

// ---- dispatcher -----------------------------------------------------------------------------------------

struct dispatcher::attachment {
  stream* s = nullptr;
  stream_ref ref;  // set by the stream_ref overload: keeps the stream alive
  pipeline_stream state;
};

struct dispatcher::worker {
  explicit worker(pipeline& p) : runner(p) {}
  pipeline_runner runner;
  std::mutex attach_mutex;
  std::vector<std::unique_ptr<attachment>> incoming;  // guarded by attach_mutex
  // [D3] release after pushing under the mutex; pairs with the worker's acquire [D4]. Lets a pass check for
  // new streams without locking.
  std::atomic<bool> has_incoming{false};
  std::atomic<std::size_t> load{0};  // streams assigned; relaxed: a placement hint only
  std::jthread thread;
};

dispatcher::dispatcher(pipeline& p, dispatcher_options options) : p_(p), options_(std::move(options)) {
  options_.workers = std::max<std::size_t>(options_.workers, 1);
  options_.drain_batch = std::max<std::size_t>(options_.drain_batch, 1);
  // Zero waits would make idle workers spin.
  options_.max_idle_wait = std::max(options_.max_idle_wait, std::chrono::microseconds{1});
  options_.park_slice = std::max(options_.park_slice, std::chrono::milliseconds{1});
  for (std::size_t i = 0; i < options_.workers; ++i) workers_.push_back(std::make_unique<worker>(p_));
  try {
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      worker* self = workers_[i].get();
      const int cpu = options_.cpus.empty() ? -1 : options_.cpus[i % options_.cpus.size()];
      self->thread = std::jthread([this, self, cpu](std::stop_token stop) {
        if (cpu >= 0 && cpu < CPU_SETSIZE) {
          cpu_set_t set;
          CPU_ZERO(&set);
          CPU_SET(static_cast<std::size_t>(cpu), &set);
          (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // a failed pin leaves it unpinned
        }
        run(*self, std::move(stop));
      });
    }
  } catch (...) {
    stop();
    throw;
  }
}

dispatcher::~dispatcher() { stop(); }

void dispatcher::attach(stream& s, const stream_context& context) {
  auto a = std::make_unique<attachment>();
  a->s = &s;
  a->state = pipeline_stream(context);
  add(std::move(a));
}

void dispatcher::attach(stream_ref s, const stream_context& context) {
  if (!s) throw std::invalid_argument("rill::dispatcher::attach: an empty stream_ref");
  auto a = std::make_unique<attachment>();
  a->s = s.get();
  a->ref = std::move(s);
  a->state = pipeline_stream(context);
  add(std::move(a));
}

void dispatcher::add(std::unique_ptr<attachment> a) {
  worker* best = workers_.front().get();
  for (auto& w : workers_) {
    if (w->load.load(std::memory_order_relaxed) < best->load.load(std::memory_order_relaxed)) best = w.get();
  }
  best->load.fetch_add(1, std::memory_order_relaxed);  // placement hint
  // Relaxed: the caller's own wait_idle() sees it in program order; workers only decrement after they took
  // the attachment through the mutex below.
  attached_.fetch_add(1, std::memory_order_relaxed);
  try {
    std::lock_guard lock(best->attach_mutex);
    best->incoming.push_back(std::move(a));
    best->has_incoming.store(true, std::memory_order_release);  // [D3] pairs with [D4]
  } catch (...) {  // bad_alloc: nothing attached, so nothing will end; count it out as an end would
    best->load.fetch_sub(1, std::memory_order_relaxed);  // placement hint
    ended();
    throw;
  }
  notify();
}

// Wake handshake. notify: [D1] bump wake_seq_, then look for sleepers; a worker: [D2] count itself a sleeper,
// then (under wake_mutex_) re-check wake_seq_. Both sides are seq_cst, so at least one of them sees the
// other's write: the worker does not sleep, or notify finds it counted and signals under the mutex.
void dispatcher::notify() noexcept {
  wake_seq_.fetch_add(1, std::memory_order_seq_cst);                // [D1]
  if (sleepers_.load(std::memory_order_seq_cst) != 0) {              // [D1]
    { std::lock_guard lock(wake_mutex_); }
    wake_cv_.notify_all();
  }
}

void dispatcher::ended() noexcept {
  if (attached_.fetch_sub(1, std::memory_order_acq_rel) == 1) {  // [D5] pairs with [D6]
    std::lock_guard lock(idle_mutex_);
    idle_cv_.notify_all();
  }
}

void dispatcher::wait_idle() {
  std::unique_lock lock(idle_mutex_);
  idle_cv_.wait(lock, [&] {
    // [D6] acquire: pairs with [D5]; every handler of the ended streams ran before this returns true.
    // stopped_ (the mutex orders it): set after the joins, so the workers' last handlers and batches ran.
    return attached_.load(std::memory_order_acquire) == 0 || stopped_;
  });
}

void dispatcher::stop() noexcept {
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.request_stop();
  }
  {
    std::lock_guard lock(wake_mutex_);
  }
  wake_cv_.notify_all();
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  {
    std::lock_guard lock(idle_mutex_);
    stopped_ = true;  // after the joins: a wait_idle() on another thread returns only once they are done
  }
  idle_cv_.notify_all();
}

void dispatcher::run(worker& w, std::stop_token stop) {
  using clock = std::chrono::steady_clock;
  std::vector<std::unique_ptr<attachment>> mine;
  pipeline_runner& runner = w.runner;
  constexpr std::chrono::microseconds kFirstIdleWait{50};
  std::chrono::microseconds idle_wait = kFirstIdleWait;

  auto finish = [&](std::size_t i) noexcept {
    runner.flush();
    if (options_.on_stream_end) {
      try {
        options_.on_stream_end(mine[i]->state.context());
      } catch (...) {  // a throwing end hook must not take the worker down
      }
    }
    mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(i));
    w.load.fetch_sub(1, std::memory_order_relaxed);  // placement hint
    ended();
  };

  while (!stop.stop_requested()) {
    const std::uint64_t seen = wake_seq_.load(std::memory_order_seq_cst);  // [D2]
    if (w.has_incoming.load(std::memory_order_acquire)) {  // [D4] pairs with [D3]
      std::lock_guard lock(w.attach_mutex);
      for (auto& a : w.incoming) mine.push_back(std::move(a));
      w.incoming.clear();
      w.has_incoming.store(false, std::memory_order_relaxed);  // under the mutex: a later push sets it again
    }

    std::size_t handled = 0;
    for (std::size_t i = 0; i < mine.size();) {
      attachment& a = *mine[i];
      auto handler = [&](const event& e, bool) noexcept { runner.process(e, a.state); };
      std::size_t n = a.s->try_drain(handler, options_.drain_batch);
      if (n == 0 && a.s->is_closed()) {
        n = a.s->try_drain(handler, options_.drain_batch);  // events sent before close() are visible now
        // Ended only once nothing is buffered: on MPMC a slot claimed but not yet published (a preempted
        // producer, an open try_claim) hides the events behind it from try_drain, not from approx_size(),
        // which after the [C3] acquire in is_closed() counts every send made before close().
        if (n == 0 && a.s->approx_size() == 0) {
          finish(i);
          continue;
        }
      }
      handled += n;
      ++i;
    }
    if (handled != 0) dispatched_.fetch_add(handled, std::memory_order_relaxed);  // a statistic
    const clock::time_point next_batch = runner.has_pending() ? runner.poll(clock::now()) : clock::time_point::max();
    if (handled != 0) {
      idle_wait = kFirstIdleWait;
      continue;
    }

    if (mine.size() == 1 && !w.has_incoming.load(std::memory_order_relaxed)) {
      // One stream: park on it (its futex wakes us when data arrives), a slice at a time.
      attachment& a = *mine.front();
      auto handler = [&](const event& e, bool) noexcept { runner.process(e, a.state); };
      const clock::time_point until = std::min(clock::now() + options_.park_slice, next_batch);
      std::size_t n = 0;
      const status s = a.s->drain_until(handler, options_.drain_batch, until, &n);
      if (n != 0) dispatched_.fetch_add(n, std::memory_order_relaxed);  // a statistic
      if (s == status::closed) finish(0);
      continue;
    }

    // Several streams (or none): sleep until notify(), a new stream, a batch deadline or the backoff.
    const clock::time_point until =
        std::min(mine.empty() ? clock::now() + std::chrono::milliseconds(100) : clock::now() + idle_wait, next_batch);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);  // [D2]
    {
      std::unique_lock lock(wake_mutex_);
      wake_cv_.wait_until(lock, until, [&] {
        return wake_seq_.load(std::memory_order_seq_cst) != seen || stop.stop_requested() ||  // [D2]
               w.has_incoming.load(std::memory_order_relaxed);
      });
    }
    sleepers_.fetch_sub(1, std::memory_order_relaxed);  // an extra notify after this is harmless
    idle_wait = std::min(idle_wait * 2, options_.max_idle_wait);
  }
  runner.flush();
}

}  // namespace rill
