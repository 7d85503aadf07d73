// The datastore files of snapshots (NAME-SnapshotN.vmsn, and NAME-SnapshotN.vmem for a memory snapshot of a
// running VM), tracked by name. govmomi 0.24.2 finds them by layoutEx file keys, but its RefreshStorageInfo
// renumbers every file (it stats datastore paths as local paths, drops them all and lists the directory again),
// so after the first snapshot removal the keys of the others point at other files: their state and memory files
// stayed behind, and a stale key could name a disk. The lab records the names at creation, hides the keys from
// the simulator's removal (-1), deletes the files of removed snapshots by name, and points the layout's keys at
// the right files again after every call (reconcileVM).
package main

import (
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func layoutFileByKey(vm *simulator.VirtualMachine, key int32) string {
	for _, f := range vm.LayoutEx.File {
		if f.Key == key {
			return f.Name
		}
	}
	return ""
}

func layoutKeyByName(vm *simulator.VirtualMachine, name string) int32 {
	for _, f := range vm.LayoutEx.File {
		if f.Name == name {
			return f.Key
		}
	}
	return -1
}

// recordSnapshotFiles notes the state file the simulator just created for snapshot ref and, for a memory
// snapshot of a running VM, creates its memory file (sparse, the VM's memory size) as ESXi does. Caller holds
// the VM's simulator lock.
func (inv *inventory) recordSnapshotFiles(vm *simulator.VirtualMachine, ref types.ManagedObjectReference, memory bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for i := range vm.LayoutEx.Snapshot {
		s := &vm.LayoutEx.Snapshot[i]
		if s.Key != ref {
			continue
		}
		state := layoutFileByKey(vm, s.DataKey)
		if state == "" {
			return
		}
		inv.snapFiles[ref] = []string{state}
		if !memory || !strings.HasSuffix(state, ".vmsn") {
			return
		}
		vmem := strings.TrimSuffix(state, ".vmsn") + ".vmem"
		path, err := datastoreFilePath(vmem)
		if err == nil {
			err = os.WriteFile(path, nil, 0600)
		}
		if err == nil && vm.Config != nil {
			err = os.Truncate(path, int64(vm.Config.Hardware.MemoryMB)<<20)
		}
		if err != nil {
			log.Printf("lab: memory file of snapshot %s: %v", ref.Value, err)
			return
		}
		key := int32(0)
		for _, f := range vm.LayoutEx.File {
			if f.Key >= key {
				key = f.Key + 1
			}
		}
		vm.LayoutEx.File = append(vm.LayoutEx.File, types.VirtualMachineFileLayoutExFileInfo{
			Key: key, Name: vmem, Type: string(types.VirtualMachineFileLayoutExFileTypeSnapshotMemory),
			Accessible: types.NewBool(true)})
		s.MemoryKey = key
		inv.snapFiles[ref] = append(inv.snapFiles[ref], vmem)
		return
	}
}

// detachSnapshotKeys sets every snapshot's layoutEx data and memory keys to -1 so that the simulator's snapshot
// removal deletes no file by a possibly stale key. Caller holds the VM's simulator lock.
func detachSnapshotKeys(vm *simulator.VirtualMachine) {
	for i := range vm.LayoutEx.Snapshot {
		vm.LayoutEx.Snapshot[i].DataKey, vm.LayoutEx.Snapshot[i].MemoryKey = -1, -1
	}
}

// repairLayoutNames gives back their directory to the layoutEx files the simulator's RefreshStorageInfo listed
// as "[DS] name" (it drops the VM's directory), and drops duplicates and files that no longer exist. Caller
// holds the VM's simulator lock.
func repairLayoutNames(vm *simulator.VirtualMachine) {
	if vm.Config == nil {
		return
	}
	dirPath := vm.Config.Files.VmPathName
	if strings.HasSuffix(dirPath, ".vmx") {
		dirPath = dirPath[:strings.LastIndex(dirPath, "/")+1]
	}
	i := strings.Index(dirPath, "]")
	if i < 0 {
		return
	}
	ds, dir := dirPath[:i+1], strings.Trim(strings.TrimSpace(dirPath[i+1:]), "/")
	seen := map[string]bool{}
	files := vm.LayoutEx.File[:0]
	for _, file := range vm.LayoutEx.File {
		p, err := datastoreFilePath(file.Name)
		if err != nil {
			files = append(files, file) // not on a datastore the lab knows: left as the simulator has it
			continue
		}
		if _, serr := os.Stat(p); serr != nil {
			if !strings.HasPrefix(file.Name, ds) || dir == "" {
				continue // gone
			}
			fixed := ds + " " + dir + "/" + filepath.Base(strings.TrimSpace(file.Name[len(ds):]))
			q, err := datastoreFilePath(fixed)
			if err != nil {
				continue
			}
			if _, err := os.Stat(q); err != nil {
				continue // gone
			}
			file.Name = fixed
		}
		if !seen[file.Name] {
			seen[file.Name] = true
			files = append(files, file)
		}
	}
	vm.LayoutEx.File = files
}

// fixSnapshotLayoutKeys is fixSnapshotLayoutKeysLocked for a caller that holds the VM's lock but not inv.mu.
func (inv *inventory) fixSnapshotLayoutKeys(vm *simulator.VirtualMachine) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.fixSnapshotLayoutKeysLocked(vm)
}

// fixSnapshotLayoutKeysLocked points each snapshot's layoutEx data and memory keys at its recorded files (-1,
// none, when a file is not in the layout). Caller holds the VM's simulator lock and inv.mu.
func (inv *inventory) fixSnapshotLayoutKeysLocked(vm *simulator.VirtualMachine) {
	repairLayoutNames(vm)
	for i := range vm.LayoutEx.Snapshot {
		s := &vm.LayoutEx.Snapshot[i]
		s.DataKey, s.MemoryKey = -1, -1
		for _, name := range inv.snapFiles[s.Key] {
			if strings.HasSuffix(name, ".vmem") {
				s.MemoryKey = layoutKeyByName(vm, name)
			} else {
				s.DataKey = layoutKeyByName(vm, name)
			}
		}
	}
}

// removeOrphanSnapshotFiles deletes the recorded files of vm's snapshots that no longer exist (or are about to
// be removed: gone) and drops them from its layout. Caller holds the VM's simulator lock.
func (inv *inventory) removeOrphanSnapshotFiles(vm *simulator.VirtualMachine, gone map[types.ManagedObjectReference]bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	repairLayoutNames(vm) // the names must be right before files are matched by name
	live := map[types.ManagedObjectReference]bool{}
	if vm.Snapshot != nil {
		for _, ref := range snapshotRefs(vm.Snapshot.RootSnapshotList) {
			live[ref] = !gone[ref]
		}
	}
	removed := map[string]bool{}
	for ref, names := range inv.snapFiles {
		if live[ref] || (snapshotOf(ref) != nil && !gone[ref]) {
			continue
		}
		for _, name := range names {
			removed[name] = true
			path, err := datastoreFilePath(name)
			if err == nil {
				err = os.Remove(path)
			}
			if err != nil && !os.IsNotExist(err) {
				log.Printf("lab: removing %s of snapshot %s: %v", name, ref.Value, err)
			}
		}
		delete(inv.snapFiles, ref)
	}
	files := vm.LayoutEx.File[:0]
	for _, file := range vm.LayoutEx.File {
		if !removed[file.Name] {
			files = append(files, file)
		}
	}
	vm.LayoutEx.File = files
	inv.fixSnapshotLayoutKeysLocked(vm)
}
