# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention: forget restore points by policy, then collect garbage. (Being wired to the repository layer.)"""


def prune(repo, policy, vm=None, gc=True, check=False):
    raise NotImplementedError("ops.prune.prune is not wired to the repository layer yet")
