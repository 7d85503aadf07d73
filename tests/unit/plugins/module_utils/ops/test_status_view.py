"""status_view: the label and the progress line backup_info returns for a run's status document."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.status_view import (
    format_bytes_pair, format_duration, status_view)

GIB = 1024 ** 3


def document(**fields):
    status = {"format": "blockvault-status", "version": 1, "run_id": "20261126T083000Z-5f2c", "vm": "db01",
              "state": "running", "phase": "transfer", "bytes_done": GIB, "bytes_total": 4 * GIB, "mb_per_s": 112.5,
              "eta_seconds": 1932, "disks": [], "last_error": None}
    status.update(fields)
    return status


def test_running_transfer_line_has_percent_bytes_rate_and_eta():
    assert status_view(document()) == {
        "label": "db01",
        "progress_line": "transfer 25.0%: 1.00 GiB of 4.00 GiB, 112.5 MB/s, ETA 32m 12s",
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
    assert line == "transfer 25.0%: 1.00 GiB of 4.00 GiB, 112.5 MB/s, ETA unknown"


def test_succeeded_line_has_no_eta():
    line = status_view(document(state="succeeded", phase="cleanup", bytes_done=4 * GIB, eta_seconds=0))["progress_line"]
    assert line == "succeeded 100.0%: 4.00 GiB of 4.00 GiB, 112.5 MB/s"


def test_succeeded_with_nothing_to_transfer():
    line = status_view(document(state="succeeded", bytes_done=0, bytes_total=0))["progress_line"]
    assert line == "succeeded: nothing to transfer"


def test_failed_line_names_the_phase_and_the_error():
    status = document(state="failed", last_error={"message": "Lost the connection to esx1", "class": "TransportError"})
    assert status_view(status)["progress_line"] == (
        "failed in transfer 25.0%: 1.00 GiB of 4.00 GiB, 112.5 MB/s; error: Lost the connection to esx1")


def test_failed_before_the_transfer():
    status = document(state="failed", phase="snapshot", bytes_done=0, bytes_total=0,
                      last_error={"message": "", "class": "SnapshotError"})
    assert status_view(status)["progress_line"] == "failed in snapshot: nothing transferred; error: SnapshotError"


def test_an_error_while_running_is_shown():
    line = status_view(document(last_error={"message": "retrying read at 0x1000", "class": "VddkError"}))["progress_line"]
    assert line.endswith("ETA 32m 12s; error: retrying read at 0x1000")


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
