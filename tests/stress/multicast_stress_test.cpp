// Stress: one producer, several subscribers on their own threads (more threads than this machine's cores),
// every slow-reader policy, subscribers attaching, detaching and resuming under load. Each subscriber checks
// order, that every event's text matches its sequence number (torn reads would not), and that delivered +
// missed accounts for every event exactly.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "rill/multicast.hpp"
#include "scope_exit.hpp"
#include "stress_scale.hpp"

namespace {

using rill::event;
using rill::multicast_stream;
using rill::slow_reader;
using rill::start_at;
using rill::status;
using rill::subscription;

// Event i's text: inline for most, 41 to 700 bytes for every fifth (so the text ring wraps and overwrites).
std::size_t text_size(std::uint64_t i) {
  return i % 5 == 0 ? 41 + (rill::test::mix(i) % 660) : 1 + i % 30;
}
char text_byte(std::uint64_t i, std::size_t k) {
  return static_cast<char>('a' + (i * 7 + k) % 26);
}

event make_event(std::uint64_t i, std::string& buffer) {
  buffer.resize(text_size(i));
  for (std::size_t k = 0; k < buffer.size(); ++k) buffer[k] = text_byte(i, k);
  return event::text_delta(static_cast<std::uint16_t>(i & 0xffff), buffer);
}

bool matches(const event& e) {
  const std::uint64_t i = e.seq();
  const std::string_view text = e.text();
  if (e.index() != (i & 0xffff) || text.size() != text_size(i)) return false;
  for (std::size_t k = 0; k < text.size(); ++k) {
    if (text[k] != text_byte(i, k)) return false;
  }
  return true;
}

struct tally {
  std::uint64_t received = 0;
  std::uint64_t missed = 0;
  std::uint64_t order_errors = 0;
  std::uint64_t content_errors = 0;
  std::uint64_t end = 0;  // the subscriber's cursor when it stopped
  status last = status::ok;
};

// Reads until the stream ends (or the subscriber is detached), checking every event. `pause_every`: sleeps
// briefly every that many events to fall behind on purpose (0: never). With `overrun_by`, the pause instead
// lasts until that stream's producer is more than a ring ahead (or it closed, or 10 s passed), so a skip
// subscriber is surely overrun however slowly the producer runs (sanitizers).
tally drain(subscription& sub, std::uint64_t pause_every, const multicast_stream* overrun_by = nullptr) {
  tally t;
  std::uint64_t expected = sub.next_seq();
  event e;
  while (true) {
    const status s = sub.receive(e);
    if (s == status::ok) {
      if (e.seq() != expected) ++t.order_errors;
      if (!matches(e)) ++t.content_errors;
      expected = e.seq() + 1;
      ++t.received;
      if (pause_every != 0 && t.received % pause_every == 0) {
        if (overrun_by == nullptr) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        } else {
          const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (overrun_by->next_seq() <= sub.next_seq() + overrun_by->capacity() + 1 &&
                 !overrun_by->is_closed() && std::chrono::steady_clock::now() < give_up) {
            std::this_thread::yield();
          }
        }
      }
    } else if (s == status::lagged) {
      t.missed += sub.missed_last();
      expected += sub.missed_last();
      if (sub.next_seq() != expected) ++t.order_errors;
    } else {
      t.last = s;
      break;
    }
  }
  t.end = expected;
  return t;
}

// As drain(), through try_drain in batches of up to 64, yielding when nothing is ready.
tally drain_batches(subscription& sub) {
  tally t;
  std::uint64_t expected = sub.next_seq();
  auto handle = [&](const event& e, bool) {
    if (e.seq() != expected) ++t.order_errors;
    if (!matches(e)) ++t.content_errors;
    expected = e.seq() + 1;
    ++t.received;
  };
  while (true) {
    status why = status::ok;
    sub.try_drain(handle, 64, &why);
    if (why == status::ok) continue;
    if (why == status::empty) {
      std::this_thread::yield();  // more threads than cores: let the producer run
      continue;
    }
    if (why == status::lagged) {
      t.missed += sub.missed_last();
      expected += sub.missed_last();
      continue;
    }
    t.last = why;
    break;
  }
  t.end = expected;
  return t;
}

rill::multicast_options options(std::size_t capacity) {
  rill::multicast_options o;
  o.capacity = capacity;
  o.text_bytes = 8192;
  o.spin_iterations = 64;
  return o;
}

// Closes the stream however it returns: a failed ASSERT must not leave the readers waiting.
void produce(multicast_stream& s, std::uint64_t events) {
  const rill::test::on_scope_exit close_stream([&] { s.close(); });
  std::string buffer;
  for (std::uint64_t i = 0; i < events; ++i) {
    const status st = s.send(make_event(i, buffer));
    ASSERT_EQ(st, status::ok) << "event " << i;
  }
}

TEST(MulticastStress, HoldSubscribersReceiveEverythingInOrder) {
  const std::uint64_t events = rill::test::scaled(2'000'000, 20'000);
  multicast_stream s(options(256));
  std::vector<subscription> subs(3);
  for (auto& sub : subs) ASSERT_EQ(s.subscribe(sub, {slow_reader::hold, start_at::newest}), status::ok);
  std::vector<tally> results(subs.size());
  std::vector<std::thread> readers;
  for (std::size_t i = 0; i < subs.size(); ++i) {
    readers.emplace_back(
        [&, i] { results[i] = i == 1 ? drain_batches(subs[i]) : drain(subs[i], i == 2 ? 4096 : 0); });
  }
  produce(s, events);
  for (auto& r : readers) r.join();
  for (const tally& t : results) {
    EXPECT_EQ(t.last, status::closed);
    EXPECT_EQ(t.received, events);
    EXPECT_EQ(t.missed, 0u);
    EXPECT_EQ(t.order_errors, 0u);
    EXPECT_EQ(t.content_errors, 0u);
  }
}

TEST(MulticastStress, SkipAndDetachSubscribersAccountForEveryEvent) {
  const std::uint64_t events = rill::test::scaled(2'000'000, 20'000);
  multicast_stream s(options(64));
  subscription fast, slow, cut;
  ASSERT_EQ(s.subscribe(fast, {slow_reader::skip, start_at::newest}), status::ok);
  ASSERT_EQ(s.subscribe(slow, {slow_reader::skip, start_at::newest}), status::ok);
  ASSERT_EQ(s.subscribe(cut, {slow_reader::detach, start_at::newest}), status::ok);
  tally t_fast, t_slow, t_cut;
  std::thread a([&] { t_fast = drain(fast, 0); });
  std::thread b([&] { t_slow = drain(slow, 256, &s); });
  std::thread c([&] { t_cut = drain(cut, 256); });
  produce(s, events);
  a.join();
  b.join();
  c.join();
  for (const tally* t : {&t_fast, &t_slow}) {
    EXPECT_EQ(t->last, status::closed);
    EXPECT_EQ(t->received + t->missed, events);
    EXPECT_EQ(t->order_errors, 0u);
    EXPECT_EQ(t->content_errors, 0u);
  }
  EXPECT_GT(t_slow.missed, 0u);  // it waits to be a ring behind every 256 events
  // The detach subscriber either kept up to the end or was cut off with nothing missed before.
  EXPECT_TRUE(t_cut.last == status::closed || t_cut.last == status::detached);
  EXPECT_EQ(t_cut.missed, 0u);
  EXPECT_EQ(t_cut.order_errors, 0u);
  EXPECT_EQ(t_cut.content_errors, 0u);
  if (t_cut.last == status::closed) {
    EXPECT_EQ(t_cut.received, events);
  }
  EXPECT_EQ(s.counters().detached, t_cut.last == status::detached ? 1u : 0u);
}

TEST(MulticastStress, SubscribersAttachDetachAndResumeUnderLoad) {
  const std::uint64_t events = rill::test::scaled(2'000'000, 20'000);
  multicast_stream s(options(512));
  std::atomic<bool> done{false};  // release/acquire: a stop flag (relaxed would do: counts travel by join())
  // Relaxed statistics: adds on the churn threads, reads after join().
  std::atomic<std::uint64_t> errors{0}, sessions{0}, resumes{0}, delivered{0};
  auto churn = [&](unsigned id) {
    std::uint64_t r = id;
    while (!done.load(std::memory_order_acquire)) {  // acquire: see the declaration
      r = rill::test::mix(r);
      const slow_reader policy = static_cast<slow_reader>(r % 3);
      const start_at start = (r >> 8) % 2 == 0 ? start_at::newest : start_at::oldest;
      subscription sub;
      if (s.subscribe(sub, {policy, start}) != status::ok) continue;
      sessions.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
      std::uint64_t expected = sub.next_seq();
      std::uint64_t last_seen = ~std::uint64_t{0};
      const std::uint64_t budget = 50 + (r >> 16) % 2000;
      event e;
      for (std::uint64_t n = 0; n < budget; ++n) {
        status st = sub.receive_for(e, std::chrono::milliseconds(50));
        if (st == status::ok) {
          if (e.seq() != expected || !matches(e)) errors.fetch_add(1, std::memory_order_relaxed);
          expected = e.seq() + 1;
          last_seen = e.seq();
          delivered.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
        } else if (st == status::lagged) {
          expected += sub.missed_last();
        } else {
          break;  // timeout, closed or detached
        }
        if (n == budget / 2 && last_seen != ~std::uint64_t{0}) {
          // Reconnect: drop the subscription and resume after the last event seen.
          sub.detach();
          std::uint64_t oldest = 0;
          st = s.resume(sub, last_seen, {policy, start_at::newest}, &oldest);
          if (st == status::ok) {
            resumes.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
            if (sub.next_seq() != last_seen + 1) errors.fetch_add(1, std::memory_order_relaxed);
          } else if (st == status::not_retained) {
            if (oldest <= last_seen + 1) errors.fetch_add(1, std::memory_order_relaxed);
            break;
          } else {
            errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
            break;
          }
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < 3; ++i) threads.emplace_back(churn, i + 1);
  subscription steady;
  ASSERT_EQ(s.subscribe(steady, {slow_reader::hold, start_at::newest}), status::ok);
  tally t_steady;
  std::thread reader([&] { t_steady = drain(steady, 0); });
  produce(s, events);
  reader.join();
  done.store(true, std::memory_order_release);  // release: see the declaration
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(std::memory_order_relaxed), 0u);  // relaxed: join() ordered the adds (and below)
  EXPECT_GT(sessions.load(std::memory_order_relaxed), 0u);
  EXPECT_EQ(t_steady.received, events);
  EXPECT_EQ(t_steady.order_errors + t_steady.content_errors, 0u);
  EXPECT_EQ(s.counters().subscribers, 1u);  // only `steady` is still attached
  std::printf("sessions %llu, resumes %llu, events delivered to churning subscribers %llu\n",
              static_cast<unsigned long long>(sessions.load(std::memory_order_relaxed)),
              static_cast<unsigned long long>(resumes.load(std::memory_order_relaxed)),
              static_cast<unsigned long long>(delivered.load(std::memory_order_relaxed)));
}

// Holders that start in the backlog (start_at::oldest, or resume() inside retention) while the producer
// runs flat out: each races the producer's cached gate and its text retirement, and must never lag.
TEST(MulticastStress, HoldersStartingInTheBacklogNeverLag) {
  const std::uint64_t events = rill::test::scaled(2'000'000, 20'000);
  multicast_stream s(options(256));  // 8 KiB of text: texts are retired long before slots are
  // Relaxed statistics: adds on the holder threads, reads after join().
  std::atomic<std::uint64_t> lagged{0}, errors{0}, sessions{0}, delivered{0};
  auto hold = [&](unsigned id) {
    std::uint64_t r = id;
    while (!s.is_closed()) {
      r = rill::test::mix(r);
      subscription sub;
      status st = status::ok;
      if (r % 2 == 0) {
        st = s.subscribe(sub, {slow_reader::hold, start_at::oldest});
      } else {
        const std::uint64_t next = s.next_seq();
        const std::uint64_t back = 1 + (r >> 8) % s.capacity();
        if (next < back) continue;
        std::uint64_t oldest = 0;
        st = s.resume(sub, next - back, {slow_reader::hold, start_at::newest}, &oldest);
        if (st == status::not_retained) {
          if (oldest <= next - back + 1)
            errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: statistic
          continue;
        }
        if (st == status::ok && sub.next_seq() != next - back + 1)
          errors.fetch_add(1, std::memory_order_relaxed);
      }
      if (st != status::ok) {
        errors.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
        break;
      }
      sessions.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
      std::uint64_t expected = sub.next_seq();
      const std::uint64_t budget = 1 + (r >> 16) % 600;
      event e;
      for (std::uint64_t n = 0; n < budget; ++n) {
        st = sub.receive_for(e, std::chrono::milliseconds(50));
        if (st == status::ok) {
          if (e.seq() != expected || !matches(e)) errors.fetch_add(1, std::memory_order_relaxed);
          expected = e.seq() + 1;
          delivered.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic, read after join()
        } else if (st == status::lagged) {
          lagged.fetch_add(sub.missed_last(), std::memory_order_relaxed);  // relaxed: read after join()
          expected += sub.missed_last();
        } else {
          break;  // timeout or closed
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < 2; ++i) threads.emplace_back(hold, i + 1);
  produce(s, events);
  for (auto& t : threads) t.join();
  // Relaxed: join() ordered the adds.
  EXPECT_EQ(lagged.load(std::memory_order_relaxed), 0u) << "events overwritten under a holder";
  EXPECT_EQ(errors.load(std::memory_order_relaxed), 0u);
  EXPECT_GT(sessions.load(std::memory_order_relaxed), 0u);
  EXPECT_EQ(s.counters().subscribers, 0u);
  std::printf("holder sessions %llu, events delivered to them %llu, send waits %llu\n",
              static_cast<unsigned long long>(sessions.load(std::memory_order_relaxed)),
              static_cast<unsigned long long>(delivered.load(std::memory_order_relaxed)),
              static_cast<unsigned long long>(s.counters().send_waits));
}

}  // namespace
