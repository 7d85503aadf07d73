"""Progress counters, the atomic JSON status file and the redacting run log."""
import logging
import os
import re
import threading

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import AuthenticationError, ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.progress import (
    RunLogHandler, RunProgress, StatusFile, read_status)

MB = 1000 * 1000


class Clock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


def make_progress(clock):
    return RunProgress(run_id="run-1", vm="web01", monotonic=clock, now_iso=lambda: "2026-11-26T08:00:00Z")


def test_snapshot_totals_rate_and_eta():
    clock = Clock()
    progress = make_progress(clock)
    progress.add_disk("2000", 150 * MB)
    progress.add_disk("2001", 50 * MB)
    clock.now = 110.0
    progress.advance("2000", 40 * MB)
    progress.advance("2001", 10 * MB)
    snap = progress.snapshot()
    assert snap == {
        "run_id": "run-1", "vm": "web01", "phase": "starting", "started": "2026-11-26T08:00:00Z",
        "updated": "2026-11-26T08:00:00Z", "bytes_done": 50 * MB, "bytes_total": 200 * MB, "mb_per_s": 5.0,
        "eta_seconds": 30, "last_error": None,
        "disks": [{"key": "2000", "phase": "transfer", "bytes_done": 40 * MB, "bytes_total": 150 * MB},
                  {"key": "2001", "phase": "transfer", "bytes_done": 10 * MB, "bytes_total": 50 * MB}]}


def test_eta_unknown_before_any_byte_moved():
    clock = Clock()
    progress = make_progress(clock)
    progress.add_disk("a", 10)
    snap = progress.snapshot()
    assert (snap["eta_seconds"], snap["mb_per_s"]) == (None, 0.0)


def test_status_file_is_rate_limited_but_written_at_once_on_phase_changes(tmp_path):
    clock = Clock()
    progress = make_progress(clock)
    path = tmp_path / "status.json"
    status = StatusFile(path, progress, interval=2.0, monotonic=clock)
    with status:
        assert read_status(path)["state"] == "running"
        progress.add_disk("2000", 100)
        clock.now = 101.0
        progress.advance("2000", 10)
        assert read_status(path)["bytes_done"] == 0          # within the interval: not rewritten
        clock.now = 102.5
        progress.advance("2000", 10)
        assert read_status(path)["bytes_done"] == 20
        clock.now = 102.6
        progress.set_phase("snapshot-removal")
        document = read_status(path)
        assert (document["phase"], document["bytes_done"]) == ("snapshot-removal", 20)
        writes = status.writes
        progress.set_phase("snapshot-removal")             # no change: no write
        assert status.writes == writes
    document = read_status(path)
    assert (document["state"], document["last_error"]) == ("succeeded", None)
    assert document["format"] == "blockvault-status" and document["version"] == 1
    assert os.listdir(tmp_path) == ["status.json"]         # no temporary file left behind


def test_a_failure_is_recorded_redacted_and_the_original_error_propagates(tmp_path):
    path = tmp_path / "status.json"
    progress = make_progress(Clock())
    with pytest.raises(AuthenticationError):
        with StatusFile(path, progress):
            raise AuthenticationError("vCenter refused user admin with password=hunter2.")
    document = read_status(path)
    assert document["state"] == "failed"
    assert document["last_error"] == {"message": "vCenter refused user admin with password=********",
                                      "class": "AuthenticationError"}
    assert "hunter2" not in path.read_text()


def test_status_file_always_parses_while_it_is_rewritten(tmp_path):
    path = tmp_path / "status.json"
    progress = make_progress(Clock())
    status = StatusFile(path, progress, interval=0)
    status.write()
    stop = threading.Event()
    problems = []
    reads = [[], []]

    def reader(seen):
        while not stop.is_set():
            try:
                seen.append(read_status(path)["bytes_done"])
            except (ValueError, OSError) as exc:     # a torn or missing file would land here
                problems.append(repr(exc))

    threads = [threading.Thread(target=reader, args=(seen,)) for seen in reads]
    for thread in threads:
        thread.start()
    try:
        for n in range(40):
            progress.add_disk("d%d" % (n % 7), 1000 + n)       # documents of varying length
            progress.advance("d%d" % (n % 7), n)
            status.write()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert problems == []
    assert all(seen and seen == sorted(seen) for seen in reads)   # whole documents, in order
    assert read_status(path)["bytes_done"] == sum(range(40))


def test_heartbeat_rewrites_the_file_while_nothing_moves(tmp_path):
    path = tmp_path / "status.json"
    status = StatusFile(path, make_progress(Clock()), interval=0.01, heartbeat=True)
    with status:
        done = threading.Event()
        for attempt in range(3000):
            if status.writes >= 4:
                done.set()
                break
            done.wait(0.01)
        assert done.is_set()
    assert read_status(path)["state"] == "succeeded"


def test_run_log_lines_are_timestamped_level_tagged_and_redacted(tmp_path):
    path = tmp_path / "run.log"
    handler = RunLogHandler(path)
    logger = logging.getLogger("blockvault.test.runlog")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        logger.info("Connecting to %s with passphrase=%s", "vc01", "s3cr3t")
        logger.debug("not at INFO level")
        try:
            raise RuntimeError("cookie: vmware_soap_session=abcdef")
        except RuntimeError:
            logger.exception("Snapshot failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = path.read_text()
    lines = text.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO blockvault\.test\.runlog: Connecting to vc01 with "
                        r"passphrase=\*{8}", lines[0])
    assert re.fullmatch(r"\S+Z ERROR blockvault\.test\.runlog: Snapshot failed", lines[1])
    assert "s3cr3t" not in text and "abcdef" not in text and "not at INFO" not in text
    assert "RuntimeError" in text


def test_an_unwritable_status_file_is_a_configuration_error_at_start(tmp_path):
    path = tmp_path / "missing-dir" / "status.json"
    with pytest.raises(ConfigurationError, match="The status file .*status.json cannot be written: No such file"):
        with StatusFile(path, make_progress(Clock())):
            pass


def test_a_status_file_failing_during_the_run_does_not_fail_the_transfer(tmp_path, caplog):
    directory = tmp_path / "d"
    directory.mkdir()
    progress = make_progress(Clock())
    status = StatusFile(directory / "status.json", progress, interval=0)
    status.write()
    (directory / "status.json").unlink()
    directory.rmdir()                                  # every later write fails
    progress.add_disk("a", 10)
    progress.advance("a", 5)
    progress.set_phase("finishing")
    assert progress.snapshot()["bytes_done"] == 5
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["Writing the status file %s failed" % status.path]


def test_null_progress_has_every_method_of_run_progress_and_the_options_default_to_it():
    from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer import NULL_PROGRESS, NullProgress, TransferOptions

    public = {name for name in vars(RunProgress) if not name.startswith("_")}
    assert public - set(dir(NullProgress)) == set()
    NULL_PROGRESS.add_disk("a", 10)
    NULL_PROGRESS.advance("a", 10)
    NULL_PROGRESS.set_disk_phase("a", "done")
    NULL_PROGRESS.set_phase("commit")
    assert NULL_PROGRESS.snapshot()["disks"] == [] and NULL_PROGRESS.phase is None
    assert TransferOptions().progress is NULL_PROGRESS
    assert TransferOptions(progress=None).progress is NULL_PROGRESS       # an optional progress needs no translation
    progress = RunProgress()
    assert TransferOptions(progress=progress).progress is progress
