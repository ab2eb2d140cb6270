#!/usr/bin/env python3
"""Turns a rill-bench results JSON into PNG charts with gnuplot (Debian gnuplot-nox).

    perf/charts.py RESULTS.json OUTPUT_DIR

Writes one chart per throughput scenario (median with min..max bars, per implementation), the latency
percentiles of ping_pong_rtt, blocking_handoff and llm_replay, and lookup cost against stream count.
A row that kept runs from another vCPU placement (JSON off_placement > 0) is marked in its label, since
its median mixes placements; a null percentile (p99.9 of runs under 1000 samples) is left out of its chart.
Only the standard library and the gnuplot binary are used.
"""
import json
import os
import subprocess
import sys
import tempfile


# Params that name a variant of one implementation (a bar of its own), not a case of the scenario.
IMPL_PARAMS = ("stamping", "lanes", "consume", "layout")


def case_name(result):
    params = "".join(f" {k}={str(v).lower()}" for k, v in result["params"].items() if k not in IMPL_PARAMS)
    return result["scenario"] + params


def placement_mark(result):
    """A note for a row whose runs came from more than one vCPU placement ('' for the others).

    Results written before the placement fields existed have none, and are not marked."""
    off, runs = result.get("off_placement") or 0, result.get("runs") or 0
    if off == 0:
        return ""
    if off >= runs:
        return f" [all {runs} runs off placement]"
    return f" [mixed placements: {off}/{runs} runs off]"


def impl_label(result):
    label = result["impl"]
    for key in IMPL_PARAMS:
        if key in result["params"]:
            label += f" ({key}={result['params'][key]})"
    return label + placement_mark(result)


def num(value, scale=1.0):
    """A data-file number; gnuplot reads NaN as undefined and leaves the point out."""
    return "NaN" if value is None else f"{value / scale:.6g}"


def placement_note(rows):
    """A title line when a chart shows a row whose median mixes placements."""
    if any(placement_mark(r) for r in rows):
        return "\\n[bracketed]: runs kept from another vCPU placement (the median mixes placements)"
    return ""


def plot(script, data_files, workdir):
    for name, text in data_files.items():
        with open(os.path.join(workdir, name), "w") as f:
            f.write(text)
    subprocess.run(["gnuplot"], input=script, text=True, cwd=workdir, check=True)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results_path, out_dir = sys.argv[1], os.path.abspath(sys.argv[2])
    with open(results_path) as f:
        doc = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    machine = doc["machine"]
    subtitle = f"{machine['cpu']}, {machine['cores']} cores, {machine['compiler']}, git {machine['git_sha']}"
    cases = {}
    for r in doc["results"]:
        cases.setdefault(case_name(r), []).append(r)
    written = []
    with tempfile.TemporaryDirectory() as work:
        for name, rows in cases.items():
            slug = name.replace(" ", "_").replace("=", "-")
            scenario = rows[0]["scenario"]
            # Throughput (operations per second): median with the min..max range of the runs.
            if all(r["events_per_sec"] is not None for r in rows) and scenario not in ("ping_pong_rtt", "blocking_handoff"):
                data = "".join(
                    f"{i} \"{impl_label(r)}\" {num(r['events_per_sec'], 1e6)} {num(r['min'], 1e6)} {num(r['max'], 1e6)}\n"
                    for i, r in enumerate(rows))
                png = os.path.join(out_dir, f"{slug}.png")
                plot(f"""
set terminal pngcairo size 900,420 noenhanced
set output '{png}'
set title "{name}: millions of operations per second (median, min..max)\\n{subtitle}{placement_note(rows)}"
set style fill solid 0.6
set boxwidth 0.6
set yrange [0:*]
set grid ytics
set xtics rotate by -20
plot 'data' using 1:3:xtic(2) with boxes notitle, '' using 1:3:4:5 with yerrorbars lc rgb 'black' pt 0 notitle
""", {"data": data}, work)
                written.append(png)
            # Latency percentiles, where the runs measured them.
            if any(r["p50_ns"] is not None for r in rows):
                latency_rows = [r for r in rows if r["p50_ns"] is not None]
                # A percentile null in every row (p99.9 of blocking_handoff's short runs) has no bars.
                columns = [(field, title) for field, title in (("p50_ns", "p50"), ("p99_ns", "p99"), ("p999_ns", "p99.9"))
                           if any(r[field] is not None for r in latency_rows)]
                data = "".join(
                    f"\"{impl_label(r)}\" " + " ".join(num(r[field]) for field, _ in columns) + "\n"
                    for r in latency_rows)
                bars = ", ".join(
                    ("'data' using 2:xtic(1)" if i == 0 else f"'' using {i + 2}") + f" title '{title}'"
                    for i, (_, title) in enumerate(columns))
                png = os.path.join(out_dir, f"{slug}_latency.png")
                plot(f"""
set terminal pngcairo size 900,420 noenhanced
set output '{png}'
set title "{name}: latency percentiles (ns, log scale; medians of the runs)\\n{subtitle}{placement_note(latency_rows)}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.7
set logscale y
set key outside right top
set grid ytics
set xtics rotate by -20
plot {bars}
""", {"data": data}, work)
                written.append(png)
        # Lookup cost against stream count (ns per lookup = 1e9 / lookups per second).
        lookups = [r for r in doc["results"] if r["scenario"] == "manager_lookup"]
        if lookups:
            series, mixed = {}, set()
            for r in lookups:
                key = f"{r['impl']} churn={str(r['params'].get('churn')).lower()}"
                series.setdefault(key, []).append((r["params"]["streams"], 1e9 / r["events_per_sec"]))
                if placement_mark(r):
                    mixed.add(key)
            data_files, plots = {}, []
            for i, (key, points) in enumerate(sorted(series.items())):
                data_files[f"s{i}"] = "".join(f"{n} {ns:.6g}\n" for n, ns in sorted(points))
                title = key + (" [placements mixed]" if key in mixed else "")
                plots.append(f"'s{i}' using 1:2 with linespoints title '{title}'")
            png = os.path.join(out_dir, "manager_lookup_cost.png")
            plot(f"""
set terminal pngcairo size 900,420 noenhanced
set output '{png}'
set title "manager_lookup: ns per lookup against stream count (log-log)\\n{subtitle}"
set logscale xy
set grid
set xlabel 'streams'
set ylabel 'ns per lookup'
set key left top
plot {', '.join(plots)}
""", data_files, work)
            written.append(png)
    for png in written:
        print(png)


if __name__ == "__main__":
    main()
