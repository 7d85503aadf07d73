# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only views: restore points per VM, and the status of a running or finished run. (Being wired.)"""


def list_restore_points(repo, vm=None):
    raise NotImplementedError("ops.info.list_restore_points is not wired to the repository layer yet")


def run_status(status_file):
    raise NotImplementedError("ops.info.run_status is not wired to the transfer layer yet")
