#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_repository
short_description: Create a backup repository, and add, remove or rotate its passphrases and key files
version_added: 0.1.0
description:
  - Creates the repository at O(repository) when there is none. An existing repository with the same settings is
    left as it is and the task reports no change; one whose immutable settings (chunk size, encryption, compression
    level) differ from those given makes the task fail, naming the difference.
  - O(new_passphrase) or O(new_key_file) adds a way to open the repository's key (a key slot, labelled O(key_label)),
    which O(passphrase) or O(key_file) must open first. Adding one that already opens it changes nothing.
  - O(remove_keys) removes key slots by id or label (RV(repository.key_slots) lists them). A removed passphrase or
    key file no longer opens the repository. Removing one that is not there changes nothing; the last key slot is
    never removed.
  - A rotation is both in one task (O(passphrase) the old one, O(new_passphrase) the new one, O(remove_keys) the old
    slot's label). Once it has run, the old passphrase no longer opens the repository, so a rerun opens it with
    O(new_passphrase) and reports no change.
  - The settings of the repository are returned in RV(repository). To read them without creating anything, use
    M(blockvault.vsphere.backup_info).
  - The repository format is documented in the collection's C(docs/repository-format.md).
  - Accepts the vSphere and VDDK options without using them, so that one C(module_defaults) group
    (C(group/blockvault.vsphere.vsphere)) can carry them for every module of the collection.
author:
  - blockvault.vsphere contributors (@blockvault)
extends_documentation_fragment:
  - blockvault.vsphere.repository
  - blockvault.vsphere.vsphere
  - blockvault.vsphere.vddk
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Reports whether the repository would be created or a key added or removed, without writing.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    membership:
      - blockvault.vsphere.vsphere
options:
  state:
    description:
      - V(present) creates the repository if needed and adds O(new_passphrase) or O(new_key_file).
    type: str
    choices: [present]
    default: present
  chunk_size:
    description:
      - Size in bytes of the chunks disks are cut into. Applies when the repository is created; for an existing
        repository, when given, it must equal the repository's.
      - When not given, a new repository gets 4194304 (4 MiB) and an existing one keeps its own.
    type: int
  encryption:
    description:
      - Encrypt chunks and metadata (AES-256-GCM; the key is wrapped by O(passphrase) or O(key_file)). Applies when
        the repository is created; for an existing repository it must equal the repository's.
    type: bool
    default: true
  compression_level:
    description:
      - zstd compression level of the chunks. Applies when the repository is created; for an existing repository,
        when given, it must equal the repository's.
      - When not given, a new repository gets level 1 (fast; a higher level gives a somewhat smaller repository for
        more CPU per backup) and an existing one keeps its own.
    type: int
  new_passphrase:
    description:
      - A passphrase to add to the repository's key slots.
    type: str
  new_key_file:
    description:
      - Path of a key file to add to the repository's key slots.
    type: path
  key_label:
    description:
      - Label of the key slot O(new_passphrase) or O(new_key_file) adds (for example who holds it, or C(dr-2026)).
    type: str
  remove_keys:
    description:
      - Key slots to remove, by id or label. A slot added by the same task is never removed.
    type: list
    elements: str
seealso:
  - module: blockvault.vsphere.vm_backup
  - module: blockvault.vsphere.backup_prune
  - module: blockvault.vsphere.backup_info
"""

EXAMPLES = r"""
- name: Create an encrypted repository on an NFS mount
  blockvault.vsphere.backup_repository:
    repository: /mnt/backups/vsphere
    passphrase: "{{ repository_passphrase }}"

- name: Create a repository in S3 with Object Lock and larger chunks
  blockvault.vsphere.backup_repository:
    repository: s3://backups/vsphere
    region: eu-west-1
    object_lock_days: 30
    key_file: /etc/blockvault/repository.key
    chunk_size: 8388608

- name: Add a recovery key file to the repository
  blockvault.vsphere.backup_repository:
    repository: /mnt/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
    new_key_file: /root/blockvault-recovery.key
    key_label: recovery

- name: Rotate the operators' passphrase (a leaked one is revoked; a rerun changes nothing)
  blockvault.vsphere.backup_repository:
    repository: /mnt/backups/vsphere
    passphrase: "{{ old_repository_passphrase }}"
    new_passphrase: "{{ repository_passphrase }}"
    key_label: operators-2026-12
    remove_keys: [operators-2026-06]

- name: Show whether the repository would be created, and its settings
  blockvault.vsphere.backup_repository:
    repository: /mnt/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
  check_mode: true
  register: repo
"""

RETURN = r"""
created:
  description: Whether the repository was created by this task (would be, in check mode).
  returned: success
  type: bool
  sample: false
keys_added:
  description: What was added to the key slots, V(passphrase) and/or V(key_file).
  returned: success
  type: list
  elements: str
  sample: [key_file]
keys_removed:
  description: The key slots removed (or that would be, in check mode), each with C(id), C(type) and C(label).
  returned: success
  type: list
  elements: dict
  sample: [{"id": "5c0e2a9b1d7f4e36", "type": "passphrase", "label": "ops-2025"}]
repository:
  description: The repository's settings (in check mode, for a repository still to create, only location, chunk_size,
    encryption and compression_level).
  returned: success
  type: dict
  contains:
    location:
      description: Where the repository is.
      type: str
      sample: /mnt/backups/vsphere
    id:
      description: Unique id of the repository.
      type: str
      sample: 3b2f0a4c6d8e4f10a1b2c3d4e5f60718
    format_version:
      description: Version of the repository format.
      type: int
      sample: 1
    chunk_size:
      description: Chunk size in bytes.
      type: int
      sample: 4194304
    encryption:
      description: Whether chunks and metadata are encrypted.
      type: bool
      sample: true
    compression_level:
      description: zstd compression level of the chunks.
      type: int
      sample: 3
    created:
      description: When the repository was created, UTC ISO-8601.
      type: str
      sample: "2026-11-20T10:00:00Z"
    key_slots:
      description: The passphrases and key files that open the key, each with C(id), C(type) (V(passphrase) or
        V(key_file)), C(label) and C(created); never the secrets themselves.
      type: list
      elements: dict
      sample: [{"id": "k1", "type": "passphrase", "label": "", "created": "2026-11-20T10:00:00Z"}]
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import repository as ops_repository


def manage(bv):
    params = bv.params
    request = ops_repository.RepositoryRequest(
        # None: the default on creation, not compared with an existing repository's own setting
        chunk_size=params["chunk_size"],
        encryption=params["encryption"],
        compression_level=params["compression_level"],
        new_passphrase=params["new_passphrase"],
        new_key_file=params["new_key_file"],
        key_label=params["key_label"],
        remove_keys=tuple(params["remove_keys"] or ()),
    )
    return ops_repository.ensure_repository(request=request, repo=bv.repository_settings(), check=bv.check_mode)


def main():
    argument_spec = dict(
        state=dict(type="str", default="present", choices=["present"]),
        chunk_size=dict(type="int"),
        encryption=dict(type="bool", default=True),
        compression_level=dict(type="int"),
        new_passphrase=dict(type="str", no_log=True),
        new_key_file=dict(type="path", no_log=False),
        key_label=dict(type="str", no_log=False),
        remove_keys=dict(type="list", elements="str", no_log=False),
    )
    bv = BlockvaultModule(argument_spec)
    bv.run(manage)


if __name__ == "__main__":
    main()
