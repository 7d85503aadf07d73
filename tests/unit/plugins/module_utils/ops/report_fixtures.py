"""A repository whose manifests carry figures the report tests know: three VMs, one of them with a hostile name.

``build_report_repository(path)`` writes restore points straight through the repository's BackupSession (no lab:
indexes of all-zero disks plus one real chunk per restore point), with DiskRecords and stats chosen here, then pins,
notes and validation records. Used by the unit tests of ops.report and by the headless Chromium test.
"""
import hashlib
import uuid

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, RepositorySettings, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import DiskRecord, ManifestDraft, VmConfig, VmRecord
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import MIB, PASSPHRASE, make_repo

#: a VM name that breaks any page that does not escape it (markup, a script, an attribute break-out, an entity)
HOSTILE_NAME = '<script>alert("vm")</script><img src=x onerror=alert(1)> &amp; \'quoted" <b>bold</b>'
#: a note that a spreadsheet would run as a formula, with markup too
HOSTILE_NOTE = '=HYPERLINK("http://attacker.invalid","x") <i>note</i>'
CAPACITY = 4 * MIB

# (vm key, vm name, [restore points]); a restore point: stats and its disks as
# (key, mode, reason, transport, bytes_read, bytes_new, bytes_stored); bytes_stored None = written before it existed
VMS = (
    ("vm-web01", "web01", (
        {"stats": {"bytes_read": 8 * MIB, "bytes_written": 3 * MIB, "duration": 12.5, "quiesced": True},
         "disks": (("2000", "full", "no previous restore point", "hotadd", 6 * MIB, 6 * MIB, 2 * MIB),
                   ("2001", "full", "no previous restore point", "hotadd", 2 * MIB, 2 * MIB, MIB))},
        {"stats": {"bytes_read": 2 * MIB, "bytes_written": MIB // 2, "duration": 3.25, "quiesced": True},
         "disks": (("2000", "incremental", "changed areas since the previous restore point", "nbdssl", 2 * MIB, MIB, MIB // 2),
                   ("2001", "incremental", "changed areas since the previous restore point", "nbdssl", 0, 0, 0))},
        {"stats": {"bytes_read": 3 * MIB, "bytes_written": MIB, "duration": 75.0, "quiesced": False},
         "disks": (("2000", "incremental", "changed areas since the previous restore point", "nbd", 3 * MIB, 2 * MIB, MIB),
                   ("2001", "full", "CBT was reset (changeId unknown to vCenter)", "nbd", 0, 0, 0))},
    )),
    ("vm-hostile", HOSTILE_NAME, (
        {"stats": {"bytes_read": 4 * MIB, "bytes_written": 2 * MIB, "duration": 5.0, "quiesced": False},
         "disks": (("2000", "full", "first backup <of> \"this\" VM", "nbdssl", 4 * MIB, 4 * MIB, 2 * MIB),)},
        {"stats": {"bytes_read": MIB, "bytes_written": MIB // 4, "duration": 1.5},
         "disks": (("2000", "incremental", "changed areas", "hotadd", MIB, MIB // 2, MIB // 4),)},
    )),
    ("vm-db01", "db01", (
        {"stats": {"bytes_read": 16 * MIB, "bytes_written": 5 * MIB, "duration": 30.0, "quiesced": True},
         "disks": (("2000", "full", "no previous restore point", None, 16 * MIB, 5 * MIB, None),)},
    )),
)


def _vm(key, name):
    config = VmConfig.from_json({"name": name, "guest_id": "otherGuest64", "num_cpus": 1, "memory_mb": 512,
                                 "controllers": [], "nics": []})
    return VmRecord(key=key, name=name, moref="vm-%s" % key, instance_uuid=key, config=config)


def _commit(repo, key, name, point, seed):
    with repo.begin_backup(vm_key=key, run_id="report-%s" % uuid.uuid4().hex[:8]) as session:
        chunk = hashlib.sha256(seed.encode()).digest() * 1024          # 32 KiB, one real chunk per restore point
        session.put_chunk(hashlib.sha256(chunk).digest(), chunk)
        records = []
        for disk_key, mode, reason, transport, read, new, stored in point["disks"]:
            session.add_disk_index(disk_key, DiskIndex(CAPACITY, repo.chunk_size))
            records.append(DiskRecord(key=disk_key, capacity=CAPACITY, mode=mode, reason=reason, label="Hard disk %s" % disk_key,
                                      controller={"key": 1000, "type": "pvscsi", "bus_number": 0}, unit_number=0,
                                      file_name="[ds1] %s/%s.vmdk" % (key, disk_key), uuid="6000c29" + disk_key,
                                      change_id="52 aa/%s" % seed, bytes_read=read, bytes_new=new,
                                      bytes_stored=stored, transport=transport))
        return session.commit(ManifestDraft.build(session.run_id, _vm(key, name), records, stats=dict(point["stats"])))


def build_report_repository(path):
    """A repository at ``path`` with the restore points of VMS; returns (RepositorySettings, {vm key: [Manifest]}).

    The first and the third restore point of web01 and the first of the hostile VM are recorded as validated (full,
    restore, full); web01's second is pinned and the hostile VM's first has HOSTILE_NOTE."""
    backend = open_backend(str(path))
    repo = make_repo(backend)
    manifests = {}
    for key, name, points in VMS:
        manifests[key] = [_commit(repo, key, name, point, "%s-%d" % (key, number)) for number, point in enumerate(points)]
    web, hostile = manifests["vm-web01"], manifests["vm-hostile"]
    repo.record_validated(web[0].id, "full")
    repo.record_validated(web[2].id, "restore")
    repo.record_validated(hostile[0].id, "full")
    repo.set_pinned(web[1].id, True)
    repo.set_note(hostile[0].id, HOSTILE_NOTE)
    repo.close()
    return RepositorySettings(location=str(path), passphrase=PASSPHRASE), manifests
