"""ops._backup_plan: which disks a backup reads, and for each one full or incremental, and why (pure decisions)."""
import types

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops._backup_plan import (
    BackupPlanner, select_disks, transport_fallbacks)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import (
    DiskEntry, DiskRecord, Manifest, VmConfig, VmRecord)

MIB = 1 << 20


def live_disk(key, capacity=8 * MIB, label=None, uuid="uuid-%s", file_name="[ds] vm/vm_%s.vmdk", skip_reason=None):
    return types.SimpleNamespace(key=key, label=label or "Hard disk %s" % key, capacity=capacity, uuid=uuid % key,
                                 file_name=file_name % key, skip_reason=skip_reason)


def previous_point(*keys, change_id="52 aa/7"):
    disks = tuple(DiskEntry(record=DiskRecord(key=str(key), capacity=8 * MIB, mode="full", change_id=change_id,
                                              uuid="uuid-%s" % key, file_name="[ds] vm/vm_%s.vmdk" % key),
                            sha256="0" * 64, sha256_block_size=MIB, index="indexes/p/%s" % key, index_sha256="0" * 64)
                  for key in keys)
    return Manifest(id="20261201T000000.000000Z-0123456789abcdef-01234567", run_id="r0",
                    vm=VmRecord(key="k", name="vm", config=VmConfig("vm")), created="2026-12-01T00:00:00Z",
                    started="2026-12-01T00:00:00Z", finished="2026-12-01T00:00:01Z", backup_mode="full", chunk_size=MIB,
                    disks=disks, stats={})


@pytest.mark.parametrize("mode, previous, disk, enabled, enabled_now, reason", [
    ("full", previous_point(2000), live_disk(2000), True, False, "a full backup was requested"),
    ("auto", None, live_disk(2000), True, False, "this is the VM's first restore point"),
    ("auto", previous_point(2000), live_disk(2001), True, False, "the previous restore point has no disk with key 2001"),
    ("auto", previous_point(2000), live_disk(2000), False, False, "Changed Block Tracking is off on the VM"),
    ("auto", previous_point(2000), live_disk(2000), True, True,
     "Changed Block Tracking was enabled by this run: changes before it are unknown"),
    ("auto", previous_point(2000), live_disk(2000, capacity=16 * MIB), True, False,
     "the disk's size changed from %d to %d bytes" % (8 * MIB, 16 * MIB)),
    ("auto", previous_point(2000), live_disk(2000, uuid="other-%s"), True, False,
     "the disk's uuid changed since the restore point (a different disk)"),
    ("auto", previous_point(2000), live_disk(2000, file_name="[ds2] vm/vm_%s.vmdk"), True, False,
     "the disk's file moved from [ds] vm/vm_2000.vmdk to [ds2] vm/vm_2000.vmdk"),
    ("auto", previous_point(2000, change_id=None), live_disk(2000), True, False,
     "the restore point stored no change id for the disk"),
    ("incremental", previous_point(2000), live_disk(2000), True, False, None),
])
def test_full_reason(mode, previous, disk, enabled, enabled_now, reason):
    planner = BackupPlanner(mode, previous, MIB)
    assert planner.full_reason(disk, enabled, cbt_enabled_now=enabled_now) == reason


def test_cbt_reason_given_by_vsphere_is_the_reason():
    planner = BackupPlanner("auto", previous_point(2000), MIB)
    assert planner.full_reason(live_disk(2000), False, "the VM has snapshots") == "the VM has snapshots"


def test_incremental_reason_names_the_previous_point():
    previous = previous_point(2000)
    assert BackupPlanner("auto", previous, MIB).incremental_reason() == "changed areas since restore point %s" % previous.id


def test_select_disks_by_key_or_label_and_skips_what_a_snapshot_cannot_hold():
    disks = [live_disk(2000), live_disk(2001), live_disk(2002, skip_reason="the disk is independent_persistent")]
    selected, skipped = select_disks(disks, (), ("Hard disk 2001",))
    assert [d.key for d in selected] == [2000]
    assert skipped == {"Hard disk 2001": "in exclude_disks", "Hard disk 2002": "the disk is independent_persistent"}
    selected, skipped = select_disks(disks, ("2001",), ())
    assert [d.key for d in selected] == [2001] and skipped["Hard disk 2000"] == "not in include_disks"


def test_select_disks_refuses_unknown_names_and_an_empty_selection():
    disks = [live_disk(2000)]
    with pytest.raises(ConfigurationError, match=r"name disk\(s\) 2009 that the VM does not have; its disks are Hard disk 2000 \(key 2000\)"):
        select_disks(disks, ("2009",), ())
    with pytest.raises(ConfigurationError, match=r"No disk of the VM is left to back up \(Hard disk 2000: in exclude_disks\)"):
        select_disks(disks, (), ("2000",))


def disk_with_transport(key, transport, label=None):
    return DiskRecord(key=str(key), capacity=8 * MIB, mode="full", label=label, transport=transport)


def test_a_faster_mode_asked_for_first_that_fell_back_is_warned_naming_disk_asked_and_used():
    disks = [disk_with_transport(2000, "nbd", label="Hard disk 1"), disk_with_transport(2001, "hotadd", label="Hard disk 2")]
    warnings = transport_fallbacks("hotadd:nbdssl:nbd", disks)
    assert warnings == [
        "Disk Hard disk 1 (key 2000) was read with transport nbd although hotadd was asked for first (transports "
        "hotadd:nbdssl:nbd): VDDK could not use hotadd for it, so this backup ran slower than planned. hotadd needs the "
        "proxy to be a VM that can reach the disk's datastore; san needs the datastore's LUNs visible to the proxy."]


@pytest.mark.parametrize("requested, used", [
    ("nbdssl:nbd", "nbd"),          # nbd is no slower than nbdssl: no warning
    ("hotadd:nbd", "hotadd"),       # the first mode was used
    ("san:hotadd:nbd", "hotadd"),   # san and hotadd rank the same
    ("hotadd:nbd", None),           # a restore point from before transports were recorded
    ("nbd", "hotadd"),              # a mode not asked for (an old manifest, a changed list): nothing to compare
])
def test_no_warning_without_a_slower_fallback(requested, used):
    assert transport_fallbacks(requested, [disk_with_transport(2000, used)]) == []


def test_a_disk_without_label_is_named_by_key():
    assert transport_fallbacks("san:nbd", [disk_with_transport(2000, "nbd")])[0].startswith(
        "Disk key 2000 was read with transport nbd although san was asked for first")
