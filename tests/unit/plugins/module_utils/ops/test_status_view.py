"""status_view: the label and the progress line backup_info returns for a run's status document, the one line of
the runs of a batch, and what a restore did (vm_restore's msg)."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.status_view import (
    format_bytes, format_bytes_pair, format_duration, format_rate, restore_message, runs_view, status_view)

GIB = 1024 ** 3
MIB = 1024 ** 2


def document(**fields):
    status = {"format": "blockvault-status", "version": 1, "run_id": "20261126T083000Z-5f2c", "vm": "db01",
              "state": "running", "phase": "transfer", "bytes_done": GIB, "bytes_total": 4 * GIB, "mb_per_s": 112.5,
              "eta_seconds": 1932, "disks": [], "last_error": None}
    status.update(fields)
    return status


def test_running_transfer_line_has_percent_bytes_rate_and_eta():
    # 112.5 MB/s (10^6 bytes, as the document holds it) is 107.3 MiB/s: the rate in the binary unit of the sizes
    assert status_view(document()) == {
        "label": "db01",
        "progress_line": "transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA 32m 12s",
    }


def test_before_the_totals_are_known_the_line_says_starting_not_zero_bytes():
    view = status_view(document(phase="snapshot", bytes_done=0, bytes_total=0, mb_per_s=0.0, eta_seconds=None))
    assert view["progress_line"] == "snapshot: starting"


def test_an_empty_document_is_a_run_that_starts():
    assert status_view({}) == {"label": "unnamed run", "progress_line": "starting"}


def test_label_falls_back_to_the_run_id():
    assert status_view(document(vm=None))["label"] == "20261126T083000Z-5f2c"


def test_unknown_eta_is_said():
    line = status_view(document(eta_seconds=None))["progress_line"]
    assert line == "transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA unknown"


def test_succeeded_line_has_no_eta():
    line = status_view(document(state="succeeded", phase="cleanup", bytes_done=4 * GIB, eta_seconds=0))["progress_line"]
    assert line == "succeeded 100.0%: 4.00 GiB of 4.00 GiB, 107.3 MiB/s"


def test_succeeded_with_nothing_to_transfer():
    line = status_view(document(state="succeeded", bytes_done=0, bytes_total=0))["progress_line"]
    assert line == "succeeded: nothing to transfer"


def test_failed_line_names_the_phase_and_the_error():
    status = document(state="failed", last_error={"message": "Lost the connection to esx1", "class": "TransportError"})
    assert status_view(status)["progress_line"] == (
        "failed in transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s; error: Lost the connection to esx1")


def test_failed_before_the_transfer():
    status = document(state="failed", phase="snapshot", bytes_done=0, bytes_total=0,
                      last_error={"message": "", "class": "SnapshotError"})
    assert status_view(status)["progress_line"] == "failed in snapshot: nothing transferred; error: SnapshotError"


def test_an_error_while_running_is_shown():
    line = status_view(document(last_error={"message": "retrying read at 0x1000", "class": "VddkError"}))["progress_line"]
    assert line.endswith("ETA 32m 12s; error: retrying read at 0x1000")


def test_the_first_line_of_a_run_never_counts_zero_bytes():
    # what StatusFile writes when a run starts (transfer.progress.RunProgress.snapshot), in every phase before a total
    first = {"run_id": "r1", "vm": "db01", "state": "running", "phase": "starting", "bytes_done": 0, "bytes_total": 0,
             "mb_per_s": 0.0, "eta_seconds": None, "disks": [], "last_error": None}
    for phase in ("starting", "open", "snapshot", "plan", "transfer"):
        line = status_view(dict(first, phase=phase))["progress_line"]
        assert " B" not in line and "of" not in line and "Bytes" not in line, line
    view = runs_view([{"status_file": "/s/a.json", "status": first, "error": None},
                      {"status_file": "/s/b.json", "status": None, "error": None}])
    assert view["progress_line"] == "db01: starting | b.json: no status yet"


@pytest.mark.parametrize("mb_per_s, text", [
    (0.0, "0.0 MiB/s"), (None, "0.0 MiB/s"), (1.048576, "1.0 MiB/s"), (112.5, "107.3 MiB/s"), (1000.0, "953.7 MiB/s"),
])
def test_rates_are_in_mib_per_second(mb_per_s, text):
    assert format_rate(mb_per_s) == text


@pytest.mark.parametrize("count, text", [
    (0, "0 B"), (None, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (13 * MIB, "13.00 MiB"), (3 * GIB // 2, "1.50 GiB"),
    (5 * 1024 ** 4, "5.00 TiB"),
])
def test_one_size_in_the_unit_that_suits_it(count, text):
    assert format_bytes(count) == text


def read(path, status=None, error=None):
    return {"status_file": path, "status": status, "error": error}


def test_the_runs_of_a_batch_on_one_line_in_their_order():
    web = document(vm="web01", run_id="r-web", phase="snapshot", bytes_done=0, bytes_total=0, mb_per_s=0.0, eta_seconds=None)
    view = runs_view([read("/s/db01.json", document()), read("/s/web01.json", web)])
    assert view["progress_line"] == ("db01: transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA 32m 12s"
                                     " | web01: snapshot: starting")
    assert view["all_ended"] is False
    first, second = view["runs"]
    assert first == {"status_file": "/s/db01.json", "found": True, "ended": False, "label": "db01",
                     "progress_line": "transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA 32m 12s",
                     "status": dict(document(), **status_view(document())), "error": None}
    assert (second["label"], second["found"], second["ended"]) == ("web01", True, False)


def test_a_status_file_not_written_yet_is_named_by_its_file():
    view = runs_view([read("/var/tmp/blockvault/20261126T083000Z-db01.json"), read("/s/web01.json", document(vm="web01"))])
    missing = view["runs"][0]
    assert missing == {"status_file": "/var/tmp/blockvault/20261126T083000Z-db01.json", "found": False, "ended": False,
                       "label": "20261126T083000Z-db01.json", "progress_line": "no status yet", "status": None,
                       "error": None}
    assert view["progress_line"].startswith("20261126T083000Z-db01.json: no status yet | web01: transfer 25.0%")
    assert view["all_ended"] is False


def test_an_unreadable_status_file_says_why():
    error = "The status file /s/x.json is damaged or not a blockvault status file: not UTF-8 JSON."
    (run,) = runs_view([read("/s/x.json", error=error)])["runs"]
    assert (run["found"], run["ended"], run["error"]) == (False, False, error)
    assert run["progress_line"] == "status unreadable: " + error


def test_all_ended_once_every_run_succeeded_failed_or_was_cancelled():
    ended = [document(state="succeeded", bytes_done=4 * GIB), document(vm="web01", state="failed"),
             document(vm="app01", state="cancelled")]
    view = runs_view([read("/s/%d.json" % index, status) for index, status in enumerate(ended)])
    assert view["all_ended"] is True and all(run["ended"] for run in view["runs"])
    assert view["progress_line"] == ("db01: succeeded 100.0%: 4.00 GiB of 4.00 GiB, 107.3 MiB/s"
                                     " | web01: failed in transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s"
                                     " | app01: cancelled in transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s")
    # one run still running, or one whose file is missing, and the batch has not ended
    assert runs_view([read("/s/a.json", ended[0]), read("/s/b.json", document())])["all_ended"] is False
    assert runs_view([read("/s/a.json", ended[0]), read("/s/b.json")])["all_ended"] is False


def test_one_run_reads_as_its_own_line():
    assert runs_view([read("/s/db01.json", document())])["progress_line"] == (
        "db01: transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA 32m 12s")


POINT = {"id": "20261126T083127.412093Z-8c1f-5f2c", "vm": "web01", "created": "2026-11-26T08:31:27Z"}
DISK = {"key": "2000", "label": "Hard disk 1", "sha256": "cd" * 32, "bytes_written": 13 * MIB, "chunks_written": 13,
        "chunks_zeroed": 2, "bytes_zeroed": 2 * MIB, "chunks_unchanged": 49}


@pytest.mark.parametrize("target, result, text", [
    ("new_vm", {"vm": {"name": "web01-restored", "moid": "vm-77", "powered_on": True}, "disks": [DISK, DISK]},
     "Restored restore point 20261126T083127.412093Z-8c1f-5f2c of VM web01 into the new VM web01-restored (vm-77): "
     "2 disk(s), 26.00 MiB written, powered on."),
    ("in_place", {"vm": {"name": "web01", "moid": "vm-12", "powered_on": False}, "disks": [DISK]},
     "Restored restore point 20261126T083127.412093Z-8c1f-5f2c of VM web01 in place, into VM web01 (vm-12): "
     "1 disk(s), 13.00 MiB written, 13 chunk(s) written, 2 zeroed, 49 unchanged."),
    ("disk", {"vm": {"name": "app01", "moid": "vm-9"}, "disks": [DISK]},
     "Restored disk Hard disk 1 of restore point 20261126T083127.412093Z-8c1f-5f2c of VM web01 into VM app01 (vm-9) "
     "as a new disk: 13.00 MiB written."),
    ("file", {"path": "/var/tmp/web01-disk1.qcow2", "format": "qcow2", "disks": [DISK]},
     "Restored disk Hard disk 1 of restore point 20261126T083127.412093Z-8c1f-5f2c of VM web01 to "
     "/var/tmp/web01-disk1.qcow2 (qcow2): 13.00 MiB written."),
    ("file", {"path": "/dev/sdb", "device": {"size": GIB, "bytes_past_disk": 0}, "disks": [dict(DISK, bytes_written=0)]},
     "Restored disk Hard disk 1 of restore point 20261126T083127.412093Z-8c1f-5f2c of VM web01 onto the block device "
     "/dev/sdb: 0 B written."),
])
def test_a_restore_says_what_it_restored_and_where(target, result, text):
    assert restore_message(dict(result, restore_point=POINT), target) == text


def test_in_check_mode_a_restore_says_what_it_would_restore():
    result = {"restore_point": POINT, "vm": {"name": "web01-restored"}, "disks": [{"key": "2000", "sha256": "cd" * 32}]}
    assert restore_message(result, "new_vm", check=True) == (
        "Would restore restore point 20261126T083127.412093Z-8c1f-5f2c of VM web01 into the new VM web01-restored: "
        "1 disk(s).")
    disk_only = {"restore_point": POINT, "path": "/var/tmp/d.raw", "disks": [{"key": "2001", "sha256": "ab" * 32}]}
    assert restore_message(disk_only, "file", check=True) == (
        "Would restore disk 2001 of restore point 20261126T083127.412093Z-8c1f-5f2c of VM web01 to /var/tmp/d.raw.")


@pytest.mark.parametrize("done, total, text", [
    (0, 1000, "0 B of 1000 B"),
    (512, 1023, "512 B of 1023 B"),
    (0, 1024, "0.00 KiB of 1.00 KiB"),
    (1024 * 1024, 64 * 1024 * 1024, "1.00 MiB of 64.00 MiB"),
    (0, 16 * 1024 * 1024, "0.00 MiB of 16.00 MiB"),
    (GIB // 2, 3 * GIB, "0.50 GiB of 3.00 GiB"),
    (2 * 1024 ** 4, 3 * 1024 ** 4, "2.00 TiB of 3.00 TiB"),
    (1024 ** 6, 2 * 1024 ** 6, "1024.00 PiB of 2048.00 PiB"),
])
def test_done_and_total_share_the_unit_of_the_total(done, total, text):
    assert format_bytes_pair(done, total) == text


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (12, "12s"), (59.6, "1m 00s"), (245, "4m 05s"), (3723, "1h 02m 03s"), (90000, "25h 00m 00s"), (-5, "0s"),
])
def test_durations(seconds, text):
    assert format_duration(seconds) == text
