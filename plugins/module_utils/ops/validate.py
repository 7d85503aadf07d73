# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate restore points: quick, full, or by a test restore. (Being wired to the engine.)"""


def validate(repo, level="quick", restore_point=None, vm=None, vsphere=None, vddk=None, scratch_path=None, check=False):
    raise NotImplementedError("ops.validate.validate is not wired to the engine yet")
