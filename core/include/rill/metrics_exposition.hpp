// rill/metrics_exposition.hpp: metrics snapshots (rill/metrics.hpp) as Prometheus text and as one JSON
// object. Part of the rill::codec library (it uses the JSON writer); link rill::codec to call these.
//
// Guarantees
//   - Pure functions of the snapshots passed in: thread-safe, never touch live counters, allocate only the
//     returned string; the only exception they throw is std::bad_alloc (nothing on the way terminates).
//   - Output is valid UTF-8 whatever the input: ill-formed bytes in a name or id become U+FFFD.
//   - Prometheus output follows the text exposition format 0.0.4; JSON output is what `rill stat` renders.
// Not guaranteed
//   - Field order inside the JSON object is stable today but is not part of the contract; read it by name.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "rill/metrics.hpp"

namespace rill {

// A stream's id beside its metrics, for to_json(). `id` is borrowed: it must outlive the call.
struct named_stream_metrics {
  std::string_view id;
  stream_metrics_snapshot metrics;
};

// Prometheus text exposition format 0.0.4: `# HELP` and `# TYPE` per family, label values escaped (\\, \",
// \n) and made valid UTF-8, TTFT as a histogram in seconds (buckets 2^20 .. 2^36 ns, then +Inf). Metric names
// start with `prefix`, made a valid name prefix: each byte outside [a-zA-Z0-9_:] is written as '_', and a
// leading digit gets a '_' before it ("my-app" gives my_app_..., "" gives _events_total...). One series per
// entry of totals.models: their provider/model pairs must be distinct, as aggregator::snapshot() makes them.
// Any thread. Allocates the result; throws only std::bad_alloc.
std::string to_prometheus(const aggregator_snapshot& totals, std::string_view prefix = "rill");

// One JSON object (the format `rill stat` renders): totals, models, and the given streams (per stream: id,
// events, chunks, ttft_ns, duration_ns, input/output tokens, output tokens/s, errors, gap p50/p99).
// Any thread. Allocates the result; throws only std::bad_alloc.
std::string to_json(const aggregator_snapshot& totals, std::span<const named_stream_metrics> streams = {});

}  // namespace rill
