#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_report
short_description: Write an HTML report of a repository's restore points, with the same data as JSON and CSV
version_added: 0.3.0
description:
  - Writes into the directory O(dest) a report of the repository's restore points (of one VM with O(vm))
    - C(report.html), one self-contained page (inline CSS, charts drawn as inline SVG, no script, nothing fetched;
    it opens offline); C(report.json), the same data as one JSON document; C(restore_points.csv), one row per
    restore point; and C(disks.csv), one row per disk of each restore point. The CSV files and the JSON are meant
    for dashboards.
  - Per VM, its restore points on a timeline. Per restore point, its mode (full, incremental, or mixed when its
    disks differ) and, per disk, the mode, why (the reason the backup recorded, for example a CBT reset) and the VDDK
    transport mode the disk was really read with; bytes read, new (before compression) and stored (compressed and
    encrypted), the deduplication ratio (read / new) and the compression ratio (new / stored); quiesced or not;
    duration; whether and when a validation that read every chunk (M(blockvault.vsphere.backup_validate) at level
    V(full) or V(restore)) last found it intact; pinned and note. Charts of the restore points over time, of bytes
    read and stored, of the deduplication and compression ratios over time (cumulative), and of the VMs that take
    the most room.
  - The figures are the ones the manifests recorded when each restore point was written. A VM's stored bytes are
    what its restore points added to the repository; a chunk shared by several VMs counts for the one that stored it
    first. A restore point copied by M(blockvault.vsphere.backup_copy) shows the figures of the backup that made it.
  - Idempotent. Nothing in the files depends on when the report is made - the page's "data as of" time is the newest
    time the repository records for the restore points shown (one finished, or a validation passed) - so a report of
    an unchanged repository is byte for byte the one already in O(dest), nothing is written and the task is not
    changed. Each file is written only when its content differs, atomically (a temporary file in O(dest), renamed
    over the old one).
  - The report names VMs and shows notes, which an encrypted repository keeps encrypted. A file the module creates is
    readable by its owner only (mode C(0600)); a file it replaces keeps its mode. Every string from the repository is
    escaped in the page; in the CSV files a text that a spreadsheet would run as a formula (starting with C(=),
    C(+), C(-) or C(@)) is prefixed with a single quote.
  - A restore point whose manifest is damaged is left out with a warning naming it.
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
    details: Reads the repository and says which files would be written (RV(updated)), without writing any.
  diff_mode:
    support: none
  action_group:
    membership:
      - blockvault.vsphere.vsphere
  platform:
    platforms: posix
options:
  dest:
    description:
      - Directory to write the report into, created when missing (on the host the module runs on). The files in it
        are C(report.html), C(report.json), C(restore_points.csv) and C(disks.csv); other files are left alone.
    type: path
    required: true
  vm:
    description:
      - Report only on the restore points of the VM with this name. It fails when the VM has none.
    type: str
  title:
    description:
      - Title of the page (and of the JSON document), at most 200 characters.
    type: str
    default: Backup report
seealso:
  - module: blockvault.vsphere.backup_info
  - module: blockvault.vsphere.backup_validate
"""

EXAMPLES = r"""
- name: Write the report of the repository after the nightly backups
  blockvault.vsphere.backup_report:
    repository: /srv/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
    dest: /srv/reports/vsphere
    title: Nightly backups
  register: report

- name: Say where it is
  ansible.builtin.debug:
    msg: "{{ report.files.html }}: {{ report.summary.restore_points }} restore points of {{ report.summary.vms }} VMs"

- name: The report of one VM only
  blockvault.vsphere.backup_report:
    repository: /srv/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
    vm: web01
    dest: /srv/reports/web01
"""

RETURN = r"""
dest:
  description: The directory of the report (absolute).
  returned: always
  type: str
  sample: /srv/reports/vsphere
files:
  description: The report's files by kind, each an absolute path in RV(dest) (written or not).
  returned: always
  type: dict
  contains:
    html:
      description: The page, C(report.html).
      type: str
      sample: /srv/reports/vsphere/report.html
    json:
      description:
        - The JSON document, C(report.json) - C(format) (V(blockvault-report)), C(version) (1), C(title),
          C(vm_filter), C(as_of), C(repository), C(summary) (as RV(summary)), C(vms) (each with C(name), C(key),
          C(bytes_read), C(bytes_stored) and its C(restore_points), oldest first), C(ratios) (the cumulative ratios
          after each restore point) and C(warnings).
        - A restore point has C(id), C(vm), C(vm_key), C(run_id), C(created), C(finished), C(backup_mode),
          C(bytes_read), C(bytes_new), C(bytes_stored), C(logical_bytes), C(dedup_ratio), C(compression_ratio),
          C(duration) (seconds), C(quiesced), C(validated) (C(at) and C(level), or null), C(pinned), C(copied),
          C(note) and its C(disks), each with C(key), C(label), C(capacity), C(mode), C(reason), C(transport),
          C(bytes_read), C(bytes_new) and C(bytes_stored); null where the restore point does not record a value.
      type: str
      sample: /srv/reports/vsphere/report.json
    restore_points_csv:
      description:
        - One row per restore point, oldest first, C(restore_points.csv) - C(vm), C(vm_key), C(restore_point),
          C(run_id), C(created), C(finished), C(backup_mode), C(disk_modes) and C(transports) (per disk, as
          C(key:value;...)), C(bytes_read), C(bytes_new), C(bytes_stored), C(logical_bytes) (the size of its disks),
          C(dedup_ratio), C(compression_ratio), C(duration_seconds), C(quiesced), C(validated) (when it last passed,
          empty if never), C(validation_level), C(pinned), C(copied) and C(note).
        - An empty cell is a value the restore point does not record (restore points written before C(bytes_stored)
          existed have no C(bytes_new), nor ratios).
      type: str
      sample: /srv/reports/vsphere/restore_points.csv
    disks_csv:
      description:
        - One row per disk of each restore point, C(disks.csv) - C(vm), C(vm_key), C(restore_point), C(created),
          C(disk_key), C(label), C(capacity), C(mode), C(reason), C(transport), C(bytes_read), C(bytes_new) and
          C(bytes_stored).
      type: str
      sample: /srv/reports/vsphere/disks.csv
updated:
  description: The files written (in check mode, that would be written) because their content differs; empty when the report is unchanged.
  returned: always
  type: list
  elements: str
  sample: ["/srv/reports/vsphere/report.html", "/srv/reports/vsphere/report.json"]
summary:
  description: What the report covers.
  returned: always
  type: dict
  contains:
    vms:
      description: Number of VMs.
      type: int
      sample: 12
    restore_points:
      description: Number of restore points.
      type: int
      sample: 168
    validated_restore_points:
      description: Restore points that a validation reading every chunk found intact.
      type: int
      sample: 140
    bytes_read:
      description: Bytes the backups of these restore points read from the VMs' disks.
      type: int
      sample: 1099511627776
    bytes_stored:
      description: Bytes these restore points added to the repository (compressed, encrypted).
      type: int
      sample: 274877906944
    logical_bytes:
      description: The sum of the sizes of the disks of every restore point (what the restore points would take as
        full images).
      type: int
      sample: 21990232555520
    repository_bytes:
      description: Bytes the repository's chunks take now, every VM's (from one listing).
      type: int
      sample: 250000000000
    repository_chunks:
      description: Number of chunks in the repository.
      type: int
      sample: 62000
    as_of:
      description: The newest time the repository records for these restore points (one finished, or a validation
        passed), UTC ISO-8601; null when there is none. The page shows it as "data as of".
      type: str
      sample: "2026-11-26T08:31:27.412093Z"
msg:
  description: One line saying what was written, or that the report is unchanged.
  returned: always
  type: str
  sample: "report of 168 restore points of 12 VMs: wrote report.html, report.json, restore_points.csv, disks.csv"
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import report as ops_report


def report(bv):
    params = bv.params
    request = ops_report.ReportRequest(dest=params["dest"], vm=params["vm"], title=params["title"])
    return ops_report.write_report(request=request, repo=bv.repository_settings(), check=bv.check_mode)


def main():
    argument_spec = dict(
        dest=dict(type="path", required=True),
        vm=dict(type="str"),
        title=dict(type="str", default=ops_report.DEFAULT_TITLE),
    )
    bv = BlockvaultModule(argument_spec)
    bv.run(report)


if __name__ == "__main__":
    main()
