# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The human view of runs: the label and the one progress line the roles print, and what a restore did.

The roles used to build these lines in Jinja, once per role; they are computed here once, from the document
``transfer.progress.StatusFile`` writes (``status_view``; ``runs_view`` for the several runs of a batch, shown on
one line), and ``backup_info`` returns them beside the documents; ``restore_message`` is the ``msg`` of
``vm_restore``. Pure functions of their arguments (no I/O, no clock), so they are safe from any thread.

Examples of lines::

    snapshot: starting
    transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA 29s
    succeeded 100.0%: 4.00 GiB of 4.00 GiB, 107.3 MiB/s
    failed in transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s; error: Lost the connection to esx1
    cancelled in transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s; error: The backup of VM db01 was cancelled by SIGTERM. ...

and of a batch (``runs_view``)::

    db01: transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA 29s | web01: snapshot: starting

Every unit is binary: bytes in KiB (1024 B), MiB, GiB..., done and total in the same unit, the one that suits the
total, and the rate in MiB/s (2^20 bytes per second), converted from the document's ``mb_per_s`` (MB = 10^6 bytes,
as the engine measures it).
"""

from __future__ import annotations

import os.path

__all__ = ["status_view", "runs_view", "restore_message", "format_bytes", "format_bytes_pair", "format_rate",
           "format_duration"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_FINAL_STATES = ("succeeded", "failed", "cancelled")
_MIB = 1024 * 1024
# what separates the runs of a batch on their one line
_RUNS_SEPARATOR = " | "


def status_view(status):
    """``{"label", "progress_line"}`` for a status document (a dict as ``read_status`` returns it).

    Keys the document lacks are read as a run that has just started: no phase is ``starting``, no state is
    ``running``, no byte counts are 0; a total of 0 means the sizes are not known yet, so the line says
    ``starting`` (running) or ``nothing to transfer`` (ended) instead of a zero byte count.
    """
    return {"label": _label(status), "progress_line": _progress_line(status)}


def runs_view(reads):
    """The view of several runs read at once: ``{"runs": [...], "progress_line", "all_ended"}``.

    ``reads`` lists one read per run, in order, each ``{"status_file", "status", "error"}``: ``status`` is the
    document (None when it could not be read), ``error`` why it could not be read (None when the file does not
    exist yet, the run not having written it). Each run of ``runs`` has ``status_file``, ``found`` (its document
    was read), ``ended`` (its document says succeeded, failed or cancelled), ``label`` and ``progress_line`` (the
    document's, else the file's name and ``no status yet`` or ``status unreadable``), ``status`` (the document with
    its view, None when not read) and ``error``. ``progress_line`` is every run's ``label: progress_line`` joined
    by `` | ``, and ``all_ended`` says that every run's document was read and says it ended.
    """
    runs = []
    for read in reads:
        status, error = read.get("status"), read.get("error")
        entry = {"status_file": read["status_file"], "found": status is not None, "status": None, "error": error}
        if status is not None:
            view = status_view(status)
            entry.update(view, ended=status.get("state") in _FINAL_STATES, status=dict(status, **view))
        else:
            # the run's name is in its document only: the file's name (the roles put the VM's name in it) stands in
            entry.update(label=os.path.basename(read["status_file"]) or read["status_file"], ended=False,
                         progress_line="status unreadable: %s" % error if error else "no status yet")
        runs.append(entry)
    return {"runs": runs,
            "progress_line": _RUNS_SEPARATOR.join("%s: %s" % (run["label"], run["progress_line"]) for run in runs),
            "all_ended": all(run["ended"] for run in runs)}


def _label(status):
    # the VM is what the operator recognises; the run id when the run failed before it named the VM
    return status.get("vm") or status.get("run_id") or "unnamed run"


def _progress_line(status):
    state = status.get("state") or "running"
    phase = status.get("phase") or "starting"
    done = int(status.get("bytes_done") or 0)
    total = int(status.get("bytes_total") or 0)
    if state in ("failed", "cancelled"):
        head = "%s in %s" % (state, phase)
    elif state in _FINAL_STATES:
        head = state
    else:
        head = phase
    if total > 0:
        line = "%s %.1f%%: %s, %s" % (head, 100.0 * done / total, format_bytes_pair(done, total),
                                      format_rate(status.get("mb_per_s")))
        if state not in _FINAL_STATES:
            eta = status.get("eta_seconds")
            line += ", ETA %s" % ("unknown" if eta is None else format_duration(eta))
    elif state not in _FINAL_STATES:
        line = "starting" if head == "starting" else "%s: starting" % head
    elif state == "succeeded":
        line = "%s: nothing to transfer" % head
    else:
        line = "%s: nothing transferred" % head
    error = status.get("last_error")
    if error:
        if isinstance(error, dict):
            error = error.get("message") or error.get("class") or "unknown error"
        line += "; error: %s" % error
    return line


def format_bytes(count):
    """A byte count in the binary unit that suits it (``"0 B"``, ``"512 B"``, ``"1.50 KiB"``, ``"4.00 GiB"``)."""
    count = int(count or 0)
    exponent = 0
    while exponent < len(_UNITS) - 1 and count >= 1024 ** (exponent + 1):
        exponent += 1
    if exponent == 0:
        return "%d B" % count
    return "%.2f %s" % (count / float(1024 ** exponent), _UNITS[exponent])


def format_rate(mb_per_s):
    """A rate in MB/s (10^6 bytes, as status documents and results hold it) in MiB/s: ``"107.3 MiB/s"``."""
    return "%.1f MiB/s" % (float(mb_per_s or 0.0) * 1e6 / _MIB)


def format_bytes_pair(done, total):
    """``"<done> of <total>"`` in the binary unit that suits ``total`` (``"1.50 GiB of 4.00 GiB"``)."""
    exponent = 0
    while exponent < len(_UNITS) - 1 and total >= 1024 ** (exponent + 1):
        exponent += 1
    if exponent == 0:
        return "%d B of %d B" % (done, total)
    scale = float(1024 ** exponent)
    unit = _UNITS[exponent]
    return "%.2f %s of %.2f %s" % (done / scale, unit, total / scale, unit)


def format_duration(seconds):
    """Whole seconds as ``"1h 02m 03s"``, ``"4m 05s"`` or ``"12s"`` (negative read as 0)."""
    seconds = max(0, int(round(float(seconds))))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%dh %02dm %02ds" % (hours, minutes, secs)
    if minutes:
        return "%dm %02ds" % (minutes, secs)
    return "%ds" % secs


def restore_message(result, target, check=False):
    """What a restore did, in one sentence (``vm_restore``'s ``msg``): the restore point (id, VM), where it went
    (``target``: ``new_vm``, ``in_place``, ``disk`` or ``file``), the disks and bytes written; in check mode what it
    would do. ``result`` is the operation's result (restore_point, vm or path, disks)."""
    point = result.get("restore_point") or {}
    disks = result.get("disks") or []
    what = "restore point %s of VM %s" % (point.get("id") or "?", point.get("vm") or "?")
    if target in ("disk", "file"):
        disk = disks[0] if disks else {}
        what = "disk %s of %s" % (disk.get("label") or disk.get("key") or "?", what)
    vm = result.get("vm") or {}
    vm_name = "%s%s" % (vm.get("name") or "?", " (%s)" % vm["moid"] if vm.get("moid") else "")
    if target == "new_vm":
        where = "into the new VM %s" % vm_name
    elif target == "in_place":
        where = "in place, into VM %s" % vm_name
    elif target == "disk":
        where = "into VM %s as a new disk" % vm_name
    elif "device" in result:
        where = "onto the block device %s" % result.get("path")
    else:
        where = "to %s%s" % (result.get("path"), " (%s)" % result["format"] if result.get("format") else "")
    if check:
        return "Would restore %s %s%s." % (what, where, ": %d disk(s)" % len(disks) if target in ("new_vm", "in_place") else "")
    details = ["%d disk(s)" % len(disks) if target in ("new_vm", "in_place") else None,
               "%s written" % format_bytes(sum(int(disk.get("bytes_written") or 0) for disk in disks))]
    if target == "in_place":
        details.append("%d chunk(s) written, %d zeroed, %d unchanged" % tuple(
            sum(int(disk.get(key) or 0) for disk in disks) for key in ("chunks_written", "chunks_zeroed", "chunks_unchanged")))
    if vm.get("powered_on"):
        details.append("powered on")
    return "Restored %s %s: %s." % (what, where, ", ".join(detail for detail in details if detail))
