# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The human view of a run's status document: the label and the one progress line the roles print.

The roles used to build this line in Jinja, once per role; it is computed here once, from the document
``transfer.progress.StatusFile`` writes, and ``backup_info`` returns it beside the document. Pure functions
of their arguments (no I/O, no clock), so they are safe from any thread.

Examples of lines::

    snapshot: starting
    transfer 25.0%: 1.00 GiB of 4.00 GiB, 112.5 MB/s, ETA 32m 12s
    succeeded 100.0%: 4.00 GiB of 4.00 GiB, 112.5 MB/s
    failed in transfer 25.0%: 1.00 GiB of 4.00 GiB, 112.5 MB/s; error: Lost the connection to esx1
    cancelled in transfer 25.0%: 1.00 GiB of 4.00 GiB, 112.5 MB/s; error: The backup of VM db01 was cancelled by SIGTERM. ...

Bytes are in binary units (KiB = 1024 B), done and total in the same unit, the one that suits the total;
the rate is the document's ``mb_per_s`` (MB = 10^6 bytes), as the engine measures it.
"""

from __future__ import annotations

__all__ = ["status_view", "format_bytes_pair", "format_duration"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_FINAL_STATES = ("succeeded", "failed", "cancelled")


def status_view(status):
    """``{"label", "progress_line"}`` for a status document (a dict as ``read_status`` returns it).

    Keys the document lacks are read as a run that has just started: no phase is ``starting``, no state is
    ``running``, no byte counts are 0; a total of 0 means the sizes are not known yet, so the line says
    ``starting`` (running) or ``nothing to transfer`` (ended) instead of a zero byte count.
    """
    return {"label": _label(status), "progress_line": _progress_line(status)}


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
        line = "%s %.1f%%: %s, %.1f MB/s" % (head, 100.0 * done / total, format_bytes_pair(done, total),
                                             float(status.get("mb_per_s") or 0.0))
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
