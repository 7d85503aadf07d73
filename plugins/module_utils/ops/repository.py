# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository lifecycle: create it idempotently, add or change keys, show its settings. (Being wired to repo/.)"""


def ensure_repository(repo, chunk_size=4 * 1024 * 1024, encryption=True, compression_level=3,
                      new_passphrase=None, new_key_file=None, check=False):
    raise NotImplementedError("ops.repository.ensure_repository is not wired to the repository layer yet")


def show_repository(repo):
    raise NotImplementedError("ops.repository.show_repository is not wired to the repository layer yet")
