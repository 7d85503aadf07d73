# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a restore point to a new VM, in place, one disk, or a raw file. (Being wired to the engine.)"""


def restore(vsphere, vddk, repo, restore_point="latest", vm_name=None, before=None, target="new_vm",
            new_name=None, disk=None, path=None, overrides=None, force=False, workers=4,
            status_file=None, check=False):
    raise NotImplementedError("ops.restore.restore is not wired to the engine yet")
