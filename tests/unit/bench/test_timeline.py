# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/timeline.py: busy and waiting shares per thread, operations in flight, the main thread's phases."""

from __future__ import annotations

import io
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "bench"))

import timeline  # noqa: E402  pylint: disable=wrong-import-position


def _x(tid, name, ts_ms, dur_ms, cpu_ms=0.0):
    return {"ph": "X", "name": name, "pid": 1, "tid": tid, "ts": ts_ms * 1000.0, "dur": dur_ms * 1000.0,
            "args": {"cpu_us": cpu_ms * 1000.0}}


def _trace(tmp_path):
    events = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": name}}
              for tid, name in ((1, "MainThread"), (2, "bv-restore-2000-0"), (3, "bv-restore-2000-1"))]
    events += [
        _x(1, "restore-run", 0, 100, 5), _x(1, "open-repository", 0, 20, 1), _x(1, "restore-disk", 20, 80, 2),
        # worker 0: waits 10 ms for work, fetches 20 (inside: read 10), writes 20 from 50 to 70
        _x(2, "queue-get", 20, 10), _x(2, "fetch", 30, 20, 15), _x(2, "read", 30, 10, 2), _x(2, "write", 50, 20, 1),
        # worker 1: writes from 60 to 80: two writes in flight from 60 to 70
        _x(3, "fetch", 40, 20, 18), _x(3, "write", 60, 20, 1),
    ]
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"traceEvents": events, "otherData": {"process_age_at_origin_s": 0.2}}))
    return str(path)


def test_shares_in_flight_and_phases(tmp_path):
    report = timeline.analyse(_trace(tmp_path), bucket_ms=10)
    assert [p["name"] for p in report["main_phases"]] == ["restore-run", "open-repository", "restore-disk"]
    threads = {t["name"]: t for t in report["threads"]}
    worker = threads["bv-restore-2000-0"]
    assert worker["life_s"] == 0.05 and worker["waiting"] == 0.2 and worker["busy"] == 0.8   # nested read not counted twice
    assert worker["spans"]["read"] == {"count": 1, "wall_s": 0.01, "cpu_s": 0.002}
    assert report["transfer_s"] == 0.05 and report["transfer_starts_at_s"] == 0.03
    writes = report["in_flight"]["writes"]
    assert writes["share_at_depth"] == {"0": 0.4, "1": 0.4, "2": 0.2} and writes["mean"] == 0.8
    assert writes["per_bucket"] == [0.0, 0.0, 1.0, 2.0, 1.0]
    out = io.StringIO()
    timeline.render(report, out)
    assert "writes in flight during the transfer: mean 0.80" in out.getvalue()
