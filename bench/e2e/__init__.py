# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The end-to-end benchmark's parts (bench/e2e_bench.py is the entry point):

* ``common``: measuring one process from outside, file helpers, the run's paths;
* ``tools``: blockvault (lab and file), restic, borg and qemu-img, each with init / backup / restore;
* ``floors``: the machine's ceilings, the restore's I/O floor, the full backup's compute floor;
* ``stats``: medians, spreads and target evaluation over paired repetitions (pure);
* ``estimate``: the expected duration said up front (pure);
* ``targets``: the targets and their per-repetition values, the per-tool summaries;
* ``render``: the markdown tables of a result;
* ``run``: the repetitions, the scaling run and the command line.
"""
