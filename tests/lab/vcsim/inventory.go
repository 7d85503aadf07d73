// The lab's view of the simulator inventory: disk files behind VirtualDisk backings, disk uuids, CBT epochs on
// CBT switches and resizes, and the point-in-time freeze of snapshots (a Registry handler sees PutObject of each
// *simulator.VirtualMachineSnapshot).
//
// Locking order: simulator object lock (Map.WithLock) -> lab.mu -> flock on a flat file. The snapshot hooks run
// inside the simulator's VM lock (CreateSnapshot_Task holds it), so they never take it again.
package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// diskState is what the lab remembers of a flat file it manages.
type diskState struct {
	uuid     string
	capacity int64
}

// snapRecord lists the flat files frozen for one snapshot.
type snapRecord struct {
	vm    types.ManagedObjectReference
	flats []string
}

// inventory tracks lab state for the simulator's objects. All fields are guarded by mu.
type inventory struct {
	mu    sync.Mutex
	disks map[string]*diskState
	cbtOn map[types.ManagedObjectReference]bool
	snaps map[types.ManagedObjectReference]*snapRecord
	order map[types.ManagedObjectReference][]int32
	// snapFiles lists the datastore files ("[DS] dir/name") of each live snapshot: its state and memory files.
	snapFiles map[types.ManagedObjectReference][]string
	// removedSnaps remembers the VM of removed snapshots, for the entity of their removal task.
	removedSnaps map[types.ManagedObjectReference]types.ManagedObjectReference
}

func newInventory() *inventory {
	return &inventory{
		disks: make(map[string]*diskState),
		cbtOn: make(map[types.ManagedObjectReference]bool),
		snaps: make(map[types.ManagedObjectReference]*snapRecord),
		order: make(map[types.ManagedObjectReference][]int32),

		snapFiles:    make(map[types.ManagedObjectReference][]string),
		removedSnaps: make(map[types.ManagedObjectReference]types.ManagedObjectReference),
	}
}

// Reference makes the inventory a simulator.RegisterObject (Map.AddHandler keys handlers by it).
func (inv *inventory) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "BlockvaultLabHook", Value: "labhook-1"}
}

// newDiskUUID returns a vSphere-like disk uuid "6000C29x-xxxx-xxxx-xxxx-xxxxxxxxxxxx" from rng (crypto when nil).
func newDiskUUID(rng *xorshift) string {
	b := make([]byte, 13)
	if rng != nil {
		rng.fill(b)
	} else if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	h := fmt.Sprintf("6000C29%x", b)[:32]
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func datastoreByName(name string) *simulator.Datastore {
	for _, e := range simulator.Map.All("Datastore") {
		if ds, ok := e.(*simulator.Datastore); ok && ds.Name == name {
			return ds
		}
	}
	return nil
}

// flatPathOf maps "[DS] dir/name.vmdk" to DSPATH/dir/name-flat.vmdk.
func flatPathOf(fileName string) (string, error) {
	fileName = strings.TrimSpace(fileName)
	if !strings.HasPrefix(fileName, "[") || !strings.Contains(fileName, "]") {
		return "", fmt.Errorf("not a datastore path: %q", fileName)
	}
	i := strings.Index(fileName, "]")
	dsName, rel := fileName[1:i], strings.TrimSpace(fileName[i+1:])
	ds := datastoreByName(dsName)
	if ds == nil {
		return "", fmt.Errorf("datastore %q not found", dsName)
	}
	if !strings.HasSuffix(rel, ".vmdk") {
		return "", fmt.Errorf("disk file name %q does not end in .vmdk", fileName)
	}
	rel = strings.TrimSuffix(rel, ".vmdk") + "-flat.vmdk"
	return filepath.Join(ds.Info.GetDatastoreInfo().Url, filepath.FromSlash(rel)), nil
}

func diskCapacity(d *types.VirtualDisk) int64 {
	if d.CapacityInBytes != 0 {
		return d.CapacityInBytes
	}
	return d.CapacityInKB * 1024
}

// vmDisks returns the VirtualDisk devices of a device list in device order.
func vmDisks(devices []types.BaseVirtualDevice) []*types.VirtualDisk {
	var out []*types.VirtualDisk
	for _, d := range devices {
		if disk, ok := d.(*types.VirtualDisk); ok {
			out = append(out, disk)
		}
	}
	return out
}

func flatBacking(d *types.VirtualDisk) *types.VirtualDiskFlatVer2BackingInfo {
	b, _ := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	return b
}

// reconcileAll brings every VM's disk files and backings in line with its configuration, and removes the change
// log and snapshot views of flat files that were deleted (a disk removed with fileOperation destroy).
func (inv *inventory) reconcileAll() {
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm, ok := e.(*simulator.VirtualMachine)
		if !ok {
			continue
		}
		simulator.Map.WithLock(vm, func() { inv.reconcileVM(vm) })
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for flat := range inv.disks {
		if _, err := os.Stat(flat); errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(cbtPath(flat))
			_ = os.RemoveAll(snapRoot(flat))
			delete(inv.disks, flat)
		}
	}
}

// reconcileVM gives every disk of vm a sparse flat file of its capacity, a uuid and a CBT log; grows files whose
// capacity grew (new CBT epoch); starts a new epoch on every disk when CBT was switched; sets capacityInBytes,
// capacityInKB and, with CBT on, changeId. Caller holds the simulator lock of vm.
func (inv *inventory) reconcileVM(vm *simulator.VirtualMachine) {
	if vm.Config == nil {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	applyVCenterDefaults(vm)
	on := vm.Config.ChangeTrackingEnabled != nil && *vm.Config.ChangeTrackingEnabled
	prev, known := inv.cbtOn[vm.Self]
	switched := known && prev != on
	inv.cbtOn[vm.Self] = on

	// The simulator moves an edited device to the end of the list; vCenter keeps the order. Restore the order
	// in which the lab first saw each device (new devices go last, in the simulator's order).
	inv.fixSnapshotLayoutKeysLocked(vm)
	devices := inv.stableOrder(vm.Self, vm.Config.Hardware.Device)
	vm.Config.Hardware.Device = devices

	for _, disk := range vmDisks(devices) {
		b := flatBacking(disk)
		if b == nil || b.FileName == "" {
			continue
		}
		flat, err := flatPathOf(b.FileName)
		if err != nil {
			log.Printf("lab: %s: %v", vm.Name, err)
			continue
		}
		if err := inv.reconcileDisk(disk, b, flat, switched, on); err != nil {
			log.Printf("lab: %s disk %d (%s): %v", vm.Name, disk.Key, b.FileName, err)
		}
	}
}

// stableOrder returns a new slice of devices: those seen before in their remembered order, then the new ones.
// Caller holds inv.mu.
func (inv *inventory) stableOrder(vm types.ManagedObjectReference, devices []types.BaseVirtualDevice) []types.BaseVirtualDevice {
	byKey := make(map[int32]types.BaseVirtualDevice, len(devices))
	for _, d := range devices {
		byKey[d.GetVirtualDevice().Key] = d
	}
	out := make([]types.BaseVirtualDevice, 0, len(devices))
	var keys []int32
	for _, k := range inv.order[vm] {
		if d, ok := byKey[k]; ok {
			out = append(out, d)
			keys = append(keys, k)
			delete(byKey, k)
		}
	}
	for _, d := range devices {
		k := d.GetVirtualDevice().Key
		if _, ok := byKey[k]; ok {
			out = append(out, d)
			keys = append(keys, k)
			delete(byKey, k)
		}
	}
	inv.order[vm] = keys
	return out
}

func (inv *inventory) reconcileDisk(disk *types.VirtualDisk, b *types.VirtualDiskFlatVer2BackingInfo, flat string,
	switched, cbtOn bool) error {
	want := diskCapacity(disk)
	st := inv.disks[flat]
	if st != nil {
		if fi, err := os.Stat(flat); err != nil || (fi.Size() == 0 && st.capacity > 0) {
			st = nil // the file was deleted or recreated: a new disk
		}
	}
	if st == nil {
		if want == 0 { // attaching an existing disk without a capacity: take the file's
			if fi, err := os.Stat(flat); err == nil {
				want = fi.Size()
			}
		}
		if _, err := ensureFlat(flat, want); err != nil {
			return err
		}
		fi, err := os.Stat(flat)
		if err != nil {
			return err
		}
		uuid := b.Uuid
		if uuid == "" {
			uuid = newDiskUUID(nil)
		}
		st = &diskState{uuid: uuid, capacity: fi.Size()}
		inv.disks[flat] = st
	} else if want > st.capacity {
		if _, err := ensureFlat(flat, want); err != nil { // grows the file and starts a new epoch
			return err
		}
		st.capacity = want
	}
	if b.Uuid == "" {
		b.Uuid = st.uuid
	} else {
		st.uuid = b.Uuid
	}
	disk.CapacityInBytes = st.capacity
	disk.CapacityInKB = st.capacity / 1024
	if b.ThinProvisioned == nil {
		b.ThinProvisioned = types.NewBool(true)
	}
	if switched {
		if _, err := resetCBT(flat); err != nil {
			return err
		}
	}
	if !cbtOn {
		b.ChangeId = ""
		return nil
	}
	l, err := lockFlat(flat, true)
	if err != nil {
		return err
	}
	defer l.Close()
	cur, epoch, err := currentChangeIDLocked(flat)
	if err != nil {
		return err
	}
	if e, _, ok := parseChangeID(b.ChangeId); !ok || e != epoch {
		b.ChangeId = cur
	}
	return nil
}

// PutObject freezes the disks of a new snapshot: deep-copies the snapshot's disks (the simulator shares the VM's
// device slice), creates F.snap/<moref> for each, and stamps the changeId of that moment on the snapshot's and
// the live VM's disk backings when CBT is on. Runs inside the VM's simulator lock.
func (inv *inventory) PutObject(obj mo.Reference) {
	snap, ok := obj.(*simulator.VirtualMachineSnapshot)
	if !ok {
		return
	}
	vm, ok := simulator.Map.Get(snap.Vm).(*simulator.VirtualMachine)
	if !ok || vm.Config == nil {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	devices := make([]types.BaseVirtualDevice, len(snap.Config.Hardware.Device))
	for i, d := range snap.Config.Hardware.Device {
		disk, isDisk := d.(*types.VirtualDisk)
		if !isDisk {
			devices[i] = d
			continue
		}
		c := *disk
		if b := flatBacking(disk); b != nil {
			bc := *b
			c.Backing = &bc
		}
		devices[i] = &c
	}
	snap.Config.Hardware.Device = devices
	on := vm.Config.ChangeTrackingEnabled != nil && *vm.Config.ChangeTrackingEnabled
	rec := &snapRecord{vm: vm.Self}
	live := vmDisks(vm.Config.Hardware.Device)
	for _, disk := range vmDisks(devices) {
		b := flatBacking(disk)
		if b == nil {
			continue
		}
		flat, err := flatPathOf(b.FileName)
		if err != nil {
			log.Printf("lab: snapshot %s: %v", snap.Self.Value, err)
			continue
		}
		changeID, _, err := createSnapshotDir(flat, snap.Self.Value)
		if err != nil {
			log.Printf("lab: snapshot %s of %s: %v", snap.Self.Value, flat, err)
			continue
		}
		rec.flats = append(rec.flats, flat)
		if !on {
			continue
		}
		b.ChangeId = changeID
		for _, ld := range live {
			if lb := flatBacking(ld); lb != nil && ld.Key == disk.Key {
				lb.ChangeId = changeID
			}
		}
	}
	inv.snaps[snap.Self] = rec
}

// UpdateObject is required by simulator.RegisterObject; the lab reconciles after each request instead.
func (inv *inventory) UpdateObject(mo.Reference, []types.PropertyChange) {}

// RemoveObject deletes the frozen views of a removed snapshot and forgets a removed VM.
func (inv *inventory) RemoveObject(ref types.ManagedObjectReference) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	switch ref.Type {
	case "VirtualMachineSnapshot":
		rec := inv.snaps[ref]
		if rec == nil {
			return
		}
		for _, flat := range rec.flats {
			if err := removeSnapshotDir(flat, ref.Value); err != nil {
				log.Printf("lab: removing snapshot %s of %s: %v", ref.Value, flat, err)
			}
		}
		inv.removedSnaps[ref] = rec.vm
		delete(inv.snaps, ref)
	case "VirtualMachine":
		for snap, rec := range inv.snaps {
			if rec.vm == ref {
				delete(inv.snapFiles, snap)
			}
		}
		delete(inv.cbtOn, ref)
		delete(inv.order, ref)
	}
}

// snapshotVM returns the VM of a removed snapshot, or nil.
func (inv *inventory) snapshotVM(ref types.ManagedObjectReference) *types.ManagedObjectReference {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if vm, ok := inv.removedSnaps[ref]; ok {
		return &vm
	}
	return nil
}

// snapshotOf returns the snapshot object, or nil.
func snapshotOf(ref types.ManagedObjectReference) *simulator.VirtualMachineSnapshot {
	s, _ := simulator.Map.Get(ref).(*simulator.VirtualMachineSnapshot)
	return s
}

// findVMByName returns the VM with that name, or nil.
func findVMByName(name string) *simulator.VirtualMachine {
	for _, e := range simulator.Map.All("VirtualMachine") {
		if vm, ok := e.(*simulator.VirtualMachine); ok && vm.Name == name {
			return vm
		}
	}
	return nil
}

// findSnapshotByName searches the VM's snapshot tree (depth first) for a name or a moref value.
func findSnapshotByName(vm *simulator.VirtualMachine, name string) *types.ManagedObjectReference {
	if vm.Snapshot == nil {
		return nil
	}
	var walk func([]types.VirtualMachineSnapshotTree) *types.ManagedObjectReference
	walk = func(tree []types.VirtualMachineSnapshotTree) *types.ManagedObjectReference {
		for i := range tree {
			if tree[i].Name == name || tree[i].Snapshot.Value == name {
				return &tree[i].Snapshot
			}
			if r := walk(tree[i].ChildSnapshotList); r != nil {
				return r
			}
		}
		return nil
	}
	return walk(vm.Snapshot.RootSnapshotList)
}
