// Defaults that vCenter reports and govmomi 0.24.2's simulator leaves false or unset.
package main

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// applyVCenterDefaults sets, on a VM the simulator created, the capabilities an ESXi 7 VM of hardware version 14+
// reports (clients read them before acting: community.vmware's vmware_guest_snapshot takes a memory snapshot only
// when memorySnapshotsSupported is true) and changeTrackingEnabled false (vCenter never leaves it unset).
// Caller holds the VM's simulator lock.
func applyVCenterDefaults(vm *simulator.VirtualMachine) {
	c := &vm.Capability
	if !c.SnapshotOperationsSupported { // the simulator's zero capability: fill it once
		c.SnapshotOperationsSupported = true
		c.MultipleSnapshotsSupported = true
		c.SnapshotConfigSupported = true
		c.PoweredOffSnapshotsSupported = true
		c.MemorySnapshotsSupported = true
		c.RevertToSnapshotSupported = true
		c.QuiescedSnapshotsSupported = true
		c.LockSnapshotsSupported = true
		c.CpuFeatureMaskSupported = true
		c.DiskSharesSupported = true
		c.BootOptionsSupported = true
		c.SwapPlacementSupported = true
		c.MultipleCoresPerSocketSupported = types.NewBool(true)
		c.DiskOnlySnapshotOnSuspendedVMSupported = types.NewBool(true)
	}
	c.ChangeTrackingSupported = types.NewBool(true)
	if vm.Config != nil && vm.Config.ChangeTrackingEnabled == nil {
		vm.Config.ChangeTrackingEnabled = types.NewBool(false)
	}
}
