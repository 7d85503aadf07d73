# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vSphere layer: plain Python over pyVmomi (no ansible import), raising the engine's typed errors.

Modules (each one's docstring has its design notes):
- settings.py  VSphereSettings: where vCenter is and how to trust it (validated once; ops.settings re-exports it)
- session.py   VSphereSession: TLS policy, login/logout, the session cookie and verified thumbprint for VDDK
- tasks.py     wait_for_task: the one task waiter (jittered backoff per a WaitPolicy, timeout, TaskError with the fault name)
- inventory.py find_vm (name, path, BIOS/instance UUID, moref) and datacenter/folder/datastore/pool/network/host
- disks.py     DiskInfo/ControllerInfo of a VM or snapshot, in device order
- snapshots.py backup snapshots (blockvault-<run_id>), context manager for ExitStacks, orphan cleanup
- cbt.py       CBT state, ensure_cbt, changed_areas (paged QueryChangedDiskAreas, merged)
- placement.py resolve_placement: the Placement (datacenter, folder, pool, datastore, host) of a new VM
- config.py    capture_config / build_config_spec / create_vm (at a Placement, with the captured->new disk mapping),
               add_disk (a DiskSpec), power, destroy

Typical backup flow for the ops layer::

    with contextlib.ExitStack() as stack:
        session = stack.enter_context(VSphereSession(VSphereSettings(host, user, password, ca_bundle=...),
                                                     vddk_thumbprint=...))
        vm = inventory.find_vm(session, name="web01")
        snapshots.remove_orphan_snapshots(vm, live_run_ids=[run_id])
        status = cbt.ensure_cbt(vm)                      # status.reason -> report "reads in full"
        captured = config.capture_config(vm)
        snap = stack.enter_context(snapshots.backup_snapshot(vm, run_id, quiesce=True, allow_crash_consistent=True))
        for disk in disks.list_disks(snap.snapshot):     # file names + change ids of the point in time
            areas = cbt.changed_areas(vm, snap.snapshot, disk.key, disk.capacity, previous_change_id)
            # VDDK: ConnectEx(moref=vm._moId, snapshot=snap.moref, cookie=session.session_cookie,
            #                 thumbprint=session.thumbprint), Open(disk.file_name)
"""
