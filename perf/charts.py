#!/usr/bin/env python3
"""Turns a rill-bench results JSON into PNG charts with gnuplot (Debian gnuplot-nox).

    perf/charts.py RESULTS.json OUTPUT_DIR

Writes one chart per throughput scenario (median with min..max bars, per implementation), the latency
percentiles of ping_pong_rtt, blocking_handoff and llm_replay, and lookup cost against stream count.
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


def impl_label(result):
    label = result["impl"]
    for key in IMPL_PARAMS:
        if key in result["params"]:
            label += f" ({key}={result['params'][key]})"
    return label


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
                    f"{i} \"{impl_label(r)}\" {r['events_per_sec'] / 1e6:.6g} {r['min'] / 1e6:.6g} {r['max'] / 1e6:.6g}\n"
                    for i, r in enumerate(rows))
                png = os.path.join(out_dir, f"{slug}.png")
                plot(f"""
set terminal pngcairo size 900,420 noenhanced
set output '{png}'
set title "{name}: millions of operations per second (median, min..max)\\n{subtitle}"
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
                data = "".join(
                    f"\"{impl_label(r)}\" {r['p50_ns']:.6g} {r['p99_ns']:.6g} {r['p999_ns']:.6g}\n"
                    for r in rows if r["p50_ns"] is not None)
                png = os.path.join(out_dir, f"{slug}_latency.png")
                plot(f"""
set terminal pngcairo size 900,420 noenhanced
set output '{png}'
set title "{name}: latency percentiles (ns, log scale; medians of the runs)\\n{subtitle}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.7
set logscale y
set key outside right top
set grid ytics
set xtics rotate by -20
plot 'data' using 2:xtic(1) title 'p50', '' using 3 title 'p99', '' using 4 title 'p99.9'
""", {"data": data}, work)
                written.append(png)
        # Lookup cost against stream count (ns per lookup = 1e9 / lookups per second).
        lookups = [r for r in doc["results"] if r["scenario"] == "manager_lookup"]
        if lookups:
            series = {}
            for r in lookups:
                key = f"{r['impl']} churn={str(r['params'].get('churn')).lower()}"
                series.setdefault(key, []).append((r["params"]["streams"], 1e9 / r["events_per_sec"]))
            data_files, plots = {}, []
            for i, (key, points) in enumerate(sorted(series.items())):
                data_files[f"s{i}"] = "".join(f"{n} {ns:.6g}\n" for n, ns in sorted(points))
                plots.append(f"'s{i}' using 1:2 with linespoints title '{key}'")
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
