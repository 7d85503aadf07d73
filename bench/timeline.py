#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a thread timeline (Chrome trace-event JSON from BLOCKVAULT_TRACE=<path>) and say where the time went.

    .venv/bin/python bench/timeline.py TRACE.json [--bucket-ms 100] [--json]

Prints: the main thread's phases (the critical path of a run's start and end), per thread its busy and waiting
shares (waiting = ``queue-get``/``queue-put`` spans, idle = no span at all) with wall and CPU time per span name,
the number of writes and reads in flight over time (time-weighted mean and the share of time at each depth, and
one row per bucket), and the cores kept busy during the transfer. Spans nest: only a thread's outermost spans
count toward its busy time; per-name totals count every span.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys

WAITS = ("queue-get", "queue-put")
IN_FLIGHT = {"writes": ("write",), "reads": ("read",), "fetches": ("fetch",)}


def load(path):
    with open(path) as handle:
        document = json.load(handle)
    events = document["traceEvents"] if isinstance(document, dict) else document
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"}
    spans = [e for e in events if e.get("ph") == "X"]
    other = document.get("otherData", {}) if isinstance(document, dict) else {}
    return names, spans, other


def outermost(spans):
    """The spans of one thread not contained in another of the same thread."""
    result, end = [], -1.0
    for span in sorted(spans, key=lambda s: (s["ts"], -s["dur"])):
        if span["ts"] >= end:
            result.append(span)
            end = span["ts"] + span["dur"]
        elif span["ts"] + span["dur"] > end:        # overlapping, not nested (should not happen): extend
            end = span["ts"] + span["dur"]
    return result


def depth_profile(spans, start, stop):
    """{depth: microseconds} of how many of ``spans`` were open at once between start and stop, and the mean."""
    points = []
    for span in spans:
        a, b = max(span["ts"], start), min(span["ts"] + span["dur"], stop)
        if b > a:
            points += [(a, 1), (b, -1)]
    points.sort()
    shares = collections.Counter()
    depth, last = 0, start
    for t, step in points:
        shares[depth] += t - last
        depth += step
        last = t
    shares[depth] += max(0.0, stop - last)
    total = max(stop - start, 1e-9)
    return {d: v / total for d, v in sorted(shares.items())}, sum(d * v for d, v in shares.items()) / total


def group_of(name):
    return re.sub(r"-\d+$", "-N", name)


def analyse(path, bucket_ms=100.0):
    names, spans, other = load(path)
    by_thread = collections.defaultdict(list)
    for span in spans:
        by_thread[span["tid"]].append(span)
    t0 = min(s["ts"] for s in spans)
    t1 = max(s["ts"] + s["dur"] for s in spans)
    transfer = [s for s in spans if s["name"] in ("fetch", "write", "read", "verify", "decode")]
    x0 = min((s["ts"] for s in transfer), default=t0)
    x1 = max((s["ts"] + s["dur"] for s in transfer), default=t1)
    report = {"trace": path, "process_age_at_origin_s": other.get("process_age_at_origin_s"),
              "span_s": round((t1 - t0) / 1e6, 3), "transfer_s": round((x1 - x0) / 1e6, 3),
              "transfer_starts_at_s": round((x0 - t0) / 1e6, 3), "threads": [], "main_phases": [], "in_flight": {}}
    main_tid = min(by_thread, key=lambda tid: min(s["ts"] for s in by_thread[tid]))
    for span in sorted(by_thread[main_tid], key=lambda s: s["ts"]):
        if span["dur"] >= 1000 and span["name"] not in WAITS:       # 1 ms and longer: the phases, not the noise
            report["main_phases"].append({"name": span["name"], "start_s": round((span["ts"] - t0) / 1e6, 3),
                                          "wall_s": round(span["dur"] / 1e6, 3),
                                          "cpu_s": round(span["args"].get("cpu_us", 0) / 1e6, 3)})
    cpu_total = 0.0
    for tid, items in sorted(by_thread.items()):
        top = outermost(items)
        life0, life1 = min(s["ts"] for s in items), max(s["ts"] + s["dur"] for s in items)
        life = max(life1 - life0, 1e-9)
        waits = sum(s["dur"] for s in top if s["name"] in WAITS)
        busy = sum(s["dur"] for s in top if s["name"] not in WAITS)
        cpu = sum(s["args"].get("cpu_us", 0) for s in top)
        if tid != main_tid:
            cpu_total += cpu
        per_name = collections.OrderedDict()
        for span in sorted(items, key=lambda s: s["name"]):
            entry = per_name.setdefault(span["name"], {"count": 0, "wall_s": 0.0, "cpu_s": 0.0})
            entry["count"] += 1
            entry["wall_s"] += span["dur"] / 1e6
            entry["cpu_s"] += span["args"].get("cpu_us", 0) / 1e6
        for entry in per_name.values():
            entry["wall_s"] = round(entry["wall_s"], 3)
            entry["cpu_s"] = round(entry["cpu_s"], 3)
        report["threads"].append({"name": names.get(tid, str(tid)), "life_s": round(life / 1e6, 3),
                                  "busy": round(busy / life, 3), "waiting": round(waits / life, 3),
                                  "idle": round(max(0.0, 1 - (busy + waits) / life), 3), "cpu_s": round(cpu / 1e6, 3),
                                  "spans": per_name})
    report["transfer_cores_busy"] = round(cpu_total / max(x1 - x0, 1e-9), 2)
    for label, span_names in IN_FLIGHT.items():
        chosen = [s for s in spans if s["name"] in span_names]
        if not chosen:
            continue
        shares, mean = depth_profile(chosen, x0, x1)
        buckets = []
        step = bucket_ms * 1000
        t = x0
        while t < x1:
            buckets.append(round(depth_profile(chosen, t, min(t + step, x1))[1], 1))
            t += step
        durations = sorted(s["dur"] for s in chosen)
        report["in_flight"][label] = {"mean": round(mean, 2), "share_at_depth": {str(k): round(v, 3) for k, v in shares.items()},
                                      "count": len(chosen), "median_ms": round(durations[len(durations) // 2] / 1000, 1),
                                      "per_bucket": buckets}
    return report


def render(report, out=sys.stdout):
    w = out.write
    w("timeline %s: %.3f s of spans (process age at the first: %s s); transfer %.3f s from %.3f s, %.2f cores busy\n"
      % (report["trace"], report["span_s"], report["process_age_at_origin_s"], report["transfer_s"],
         report["transfer_starts_at_s"], report["transfer_cores_busy"]))
    w("\nmain thread (critical path of start and end), spans >= 1 ms:\n")
    for phase in report["main_phases"]:
        w("  %7.3f s  %-22s wall %7.3f s  cpu %7.3f s\n" % (phase["start_s"], phase["name"], phase["wall_s"], phase["cpu_s"]))
    w("\nper thread: busy / waiting for work / idle shares of its life; per span: count, wall s, cpu s\n")
    groups = collections.OrderedDict()
    for thread in report["threads"]:
        groups.setdefault(group_of(thread["name"]), []).append(thread)
    for group, threads in groups.items():
        for thread in threads:
            w("  %-26s life %6.3f s  busy %5.1f%%  waiting %5.1f%%  idle %5.1f%%  cpu %6.3f s\n"
              % (thread["name"], thread["life_s"], 100 * thread["busy"], 100 * thread["waiting"], 100 * thread["idle"],
                 thread["cpu_s"]))
            for name, entry in thread["spans"].items():
                w("      %-16s %5d  %7.3f  %7.3f\n" % (name, entry["count"], entry["wall_s"], entry["cpu_s"]))
    for label, flight in report["in_flight"].items():
        w("\n%s in flight during the transfer: mean %.2f, median duration %.1f ms (%d), share of time at depth %s\n"
          % (label, flight["mean"], flight["median_ms"], flight["count"],
             ", ".join("%s: %.0f%%" % (k, 100 * v) for k, v in flight["share_at_depth"].items())))
        w("  per bucket: %s\n" % " ".join("%.1f" % v for v in flight["per_bucket"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("trace")
    parser.add_argument("--bucket-ms", type=float, default=100.0)
    parser.add_argument("--json", action="store_true", help="print the analysis as JSON")
    args = parser.parse_args(argv)
    report = analyse(args.trace, args.bucket_ms)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        render(report)


if __name__ == "__main__":
    main()
