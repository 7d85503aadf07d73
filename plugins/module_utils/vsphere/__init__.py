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

- vm.py        VmHandle (moref, name, power state, the verbs ops needs) and VmSelector: the VM as ops sees it

Typical backup flow for the ops layer (ops never touches a pyVmomi object: it holds VmHandles)::

    with contextlib.ExitStack() as stack:
        session = stack.enter_context(VSphereSession(VSphereSettings(host, user, password, ca_bundle=...),
                                                     vddk_thumbprint=...))
        vm = find_vm(session, VmSelector(name="web01"))
        vm.remove_orphan_snapshots(live_run_ids=[run_id])
        status = vm.ensure_cbt()                         # status.reason -> report "reads in full"
        captured = vm.capture_config()
        snap = stack.enter_context(vm.backup_snapshot(run_id, quiesce=True, allow_crash_consistent=True))
        for disk in snap.disks():                        # file names + change ids of the point in time
            areas = vm.changed_areas(snap, disk, previous_change_id)
            # VDDK: ConnectEx(moref=vm.moref, snapshot=snap.moref, cookie=session.session_cookie,
            #                 thumbprint=session.thumbprint), Open(disk.file_name)
"""
