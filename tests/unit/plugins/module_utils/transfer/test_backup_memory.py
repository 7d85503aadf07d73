# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup's buffer layout: the budget bounds it, and so does what the workers can use."""

from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.pipeline import backup_buffer_layout

MIB = 1 << 20


def test_a_large_budget_gets_only_the_buffers_the_workers_can_use():
    # 4 workers: 4 being processed + 4 queued + a read batch of 4 -> 12 buffers of 8 MiB, not the 32 of 256 MiB
    assert backup_buffer_layout(4 * MIB, 256 * MIB, workers=4, read_batch=4) == (8 * MIB, 12)
    assert backup_buffer_layout(4 * MIB, 256 * MIB, workers=1, read_batch=1) == (8 * MIB, 3)


def test_a_small_budget_still_bounds_the_buffers():
    assert backup_buffer_layout(4 * MIB, 32 * MIB, workers=8, read_batch=4) == (8 * MIB, 4)
    assert backup_buffer_layout(MIB, MIB + 1, workers=4) == (MIB, 1)
