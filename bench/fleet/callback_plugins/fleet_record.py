# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback of bench/fleet_bench.py: writes what a playbook run did to the JSON file FLEET_RECORD_FILE.

Enabled with ANSIBLE_CALLBACK_PLUGINS=bench/fleet/callback_plugins and ANSIBLE_CALLBACKS_ENABLED=fleet_record; the
stdout callback is left as it is. Recorded: each task's name, action and wall-clock start and end (a task ends when
the next one starts, or the play ends: one host, linear strategy) with its number of results (loop items); every
module result that carries a restore point (the vm_backup results the role collects with async_status,
vm_restore results), trimmed to the figures the benchmark reads; the failures (ignored ones too); the custom stats
(set_stats) at the end.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: fleet_record
    type: aggregate
    short_description: record task timings and backup results for bench/fleet_bench.py
    description: Writes task timings, backup and restore results, failures and custom stats to FLEET_RECORD_FILE.
    requirements: [FLEET_RECORD_FILE set in the environment]
"""

_KEPT = ("restore_point", "disks", "bytes_read", "bytes_written", "duration", "throughput_mbps", "snapshot", "warnings",
         "run_id", "msg", "changed", "failed", "vm", "ok", "damaged", "errors", "checked", "restore_points")


def _trim(result):
    return {key: result[key] for key in _KEPT if key in result}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.path = os.environ.get("FLEET_RECORD_FILE")
        self.started = time.time()
        self.tasks = []
        self.results = []
        self.failures = []
        self.custom = {}

    def _close_task(self, now):
        if self.tasks and self.tasks[-1]["end"] is None:
            self.tasks[-1]["end"] = now

    def v2_playbook_on_task_start(self, task, is_conditional):
        now = time.time()
        self._close_task(now)
        self.tasks.append({"name": task.get_name(), "action": task.action, "start": now, "end": None, "results": 0,
                           "items": []})

    def _count(self):
        if self.tasks:
            self.tasks[-1]["results"] += 1

    def _record(self, result, failed=False, ignored=False):
        data = result._result  # pylint: disable=protected-access
        items = data.get("results") if isinstance(data.get("results"), list) else None
        for one in items if items is not None else [data]:
            if not isinstance(one, dict):
                continue
            if "restore_point" in one or "damaged" in one:
                entry = _trim(one)
                entry["task"] = self.tasks[-1]["name"] if self.tasks else None
                run = one.get("vm_backup_run")
                entry["item"] = str(run["vm_backup_entry"]["label"] if isinstance(run, dict) else one.get("item", ""))
                entry["at"] = time.time()
                self.results.append(entry)
            if failed or one.get("failed"):
                self.failures.append({"task": self.tasks[-1]["name"] if self.tasks else None, "ignored": ignored,
                                      "msg": str(one.get("msg", ""))[:2000]})

    def v2_runner_on_ok(self, result):
        self._count()
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count()
        self._record(result, failed=True, ignored=ignore_errors)

    def _item(self):
        if self.tasks:
            self.tasks[-1]["items"].append(time.time())

    def v2_runner_item_on_ok(self, result):
        self._item()

    def v2_runner_item_on_failed(self, result):
        self._item()

    def v2_runner_item_on_skipped(self, result):
        self._item()

    def v2_runner_on_skipped(self, result):
        self._count()

    def v2_playbook_on_stats(self, stats):
        now = time.time()
        self._close_task(now)
        self.custom = dict(stats.custom.get("_run", {})) if hasattr(stats, "custom") else {}
        if not self.path:
            return
        document = {"started": self.started, "ended": now, "tasks": self.tasks, "results": self.results,
                    "failures": self.failures, "custom_stats": self.custom}
        with open(self.path + ".tmp", "w") as handle:
            json.dump(document, handle, default=str)
        os.replace(self.path + ".tmp", self.path)
