# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Back up one VM into one restore point. (Being wired: vsphere/ + vddk/ + transfer/ + repo/.)"""


def backup_vm(vsphere, vddk, repo, vm, mode="auto", quiesce=True, allow_crash_consistent=False,
              include_disks=None, exclude_disks=None, workers=4, memory_budget=256 * 1024 * 1024,
              run_id=None, status_file=None, check=False):
    raise NotImplementedError("ops.backup.backup_vm is not wired to the engine yet")
