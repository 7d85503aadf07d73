"""The thread timeline: spans nest, threads are kept apart, nothing is recorded when tracing is off."""
import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer import trace


@pytest.fixture
def recorder():
    previous = trace.disable()
    rec = trace.enable()
    yield rec
    trace.disable()
    if previous.enabled:
        trace._current = previous


def spans(events):
    return [e for e in events if e["ph"] == "X"]


def test_off_is_the_shared_no_op_recorder_and_records_nothing():
    previous = trace.disable()
    try:
        rec = trace.current()
        assert rec is trace.NULL_RECORDER and not rec.enabled
        with rec.span("fetch", chunk=1) as span:
            with rec.span("inner"):
                pass
        assert span is rec.span("other")            # one shared object: no allocation per span
        rec.counter("in_flight", writes=2)
        assert rec.events() == [] and rec.write("/nonexistent/dir/trace.json") is None
    finally:
        if previous.enabled:
            trace._current = previous


def test_spans_nest_and_carry_args_wall_and_cpu_time(recorder):
    with recorder.span("outer", disk="2000"):
        with recorder.span("inner", chunk=3):
            sum(range(20000))
    events = spans(recorder.events())
    outer = next(e for e in events if e["name"] == "outer")
    inner = next(e for e in events if e["name"] == "inner")
    assert outer["args"]["disk"] == "2000" and inner["args"]["chunk"] == 3
    assert outer["ts"] <= inner["ts"] and inner["ts"] + inner["dur"] <= outer["ts"] + outer["dur"]
    assert inner["tid"] == outer["tid"]
    assert inner["args"]["cpu_us"] > 0 and outer["args"]["cpu_us"] >= inner["args"]["cpu_us"]


def test_a_span_left_by_an_exception_is_kept_and_says_so(recorder):
    with pytest.raises(ValueError):
        with recorder.span("write"):
            raise ValueError("disk full")
    (event,) = spans(recorder.events())
    assert event["name"] == "write" and event["args"]["error"] == "ValueError"


def test_threads_are_separated_and_named(recorder):
    barrier = threading.Barrier(3)

    def work(label):
        barrier.wait()
        for number in range(5):
            with recorder.span("fetch", worker=label, n=number):
                pass

    threads = [threading.Thread(target=work, args=(label,), name="bv-restore-x-%d" % label) for label in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = recorder.events()
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M"}
    assert sorted(names.values()) == ["bv-restore-x-0", "bv-restore-x-1", "bv-restore-x-2"]
    for tid, name in names.items():
        mine = [e for e in spans(events) if e["tid"] == tid]
        assert len(mine) == 5
        assert {e["args"]["worker"] for e in mine} == {int(name[-1])}     # no span landed in another thread's list


def test_write_produces_chrome_trace_json_with_counters(recorder, tmp_path):
    with recorder.span("verify"):
        pass
    recorder.counter("in_flight", writes=3)
    recorder.instant("first-chunk")
    path = recorder.write(str(tmp_path / "trace.json"))
    with open(path) as handle:
        document = json.load(handle)
    phases = sorted(e["ph"] for e in document["traceEvents"])
    assert phases == ["C", "M", "X", "i"]
    counter = next(e for e in document["traceEvents"] if e["ph"] == "C")
    assert counter["args"] == {"writes": 3}
    assert not os.path.exists(path + ".%d.tmp" % os.getpid())


def test_the_environment_variable_enables_tracing_and_the_file_is_written_at_exit(tmp_path):
    path = tmp_path / "env-trace.json"
    code = ("from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer import trace\n"
            "rec = trace.current()\n"
            "assert rec.enabled\n"
            "with rec.span('fetch'):\n"
            "    pass\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), **{trace.TRACE_ENV: str(path)})
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    with open(path) as handle:
        document = json.load(handle)
    assert [e["name"] for e in document["traceEvents"] if e["ph"] == "X"] == ["fetch"]


def test_a_traced_restore_records_each_workers_steps_in_its_own_thread(recorder, fakes):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer import TransferOptions
    from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.endpoints import MemoryTarget
    from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.restore import DiskRestore, restore_disk
    chunk = 64 * 1024
    data = fakes.make_data("rrzrr")
    chunks = {}
    for offset in range(0, len(data), chunk):
        piece = data[offset:offset + chunk]
        chunks[hashlib.sha256(piece).digest()] = piece
    restore_disk(DiskRestore("2000", fakes.index_of(data, chunk), chunks.__getitem__, MemoryTarget(len(data))),
                 TransferOptions(workers=2, memory_budget=8 * chunk))
    events = recorder.events()
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M"}
    by_name = {}
    for event in spans(events):
        by_name.setdefault(event["name"], set()).add(names[event["tid"]])
    assert by_name["restore-disk"] == by_name["flush"] == {threading.current_thread().name}
    for step in ("fetch", "verify", "write", "queue-get"):
        assert by_name[step] and all(name.startswith("bv-restore-2000-") for name in by_name[step]), step
    assert sorted(e["args"]["chunk"] for e in spans(events) if e["name"] == "write") == [0, 1, 3, 4]
