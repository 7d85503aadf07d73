# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A time limit for the start of the libguestfs appliance.

libguestfs's launch() has no time limit of its own. Where /dev/kvm exists but cannot run a guest (a VM without nested
virtualisation, some micro-VMs), KVM is chosen and the appliance never boots: launch() waits forever, and so would a
file-level restore in a DR runbook. The handle cannot be used from another thread while launch() holds it (libguestfs
locks each handle for the length of a call), so the watchdog finds the appliance's processes as the children of this
process that appeared during the launch (the direct backend runs qemu, as supermin before it, as children) and kills
them; launch() then fails and the caller says why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

__all__ = ["LaunchWatchdog", "child_pids"]


def child_pids(parent=None):
    """The pids of the live child processes of ``parent`` (default: this process), read from /proc."""
    parent = os.getpid() if parent is None else parent
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as handle:
                stat = handle.read()
        except OSError:          # ended while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, the last ")" ends it
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            children.add(int(entry))
    return children


class LaunchWatchdog:
    """``with LaunchWatchdog(seconds): handle.launch()``: when the block has not ended after ``seconds``, kill the
    child processes started since it began, and set ``fired``.

    One per launch; the timer runs on its own daemon thread and is cancelled when the block ends.
    """

    def __init__(self, seconds):
        self.seconds = float(seconds)
        self.fired = False
        self._before = set()
        self._timer = None

    def __enter__(self):
        self._before = child_pids()
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        return False

    def _fire(self):
        self.fired = True
        for pid in child_pids() - self._before:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
