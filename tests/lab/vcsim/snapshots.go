// Snapshot methods where govmomi 0.24.2 differs from vCenter: RenameSnapshot (missing: MethodNotFound), revert
// (RevertToSnapshot_Task, RevertToCurrentSnapshot_Task: the simulator only moves currentSnapshot; vCenter also
// brings the disks back to the snapshot's content and the VM to the snapshot's power state), RemoveSnapshot_Task
// with removeChildren (the simulator drops the children from the tree but leaves their objects, frozen views and
// files behind) and CreateSnapshot_Task without memory (vCenter records such a snapshot of a running VM as
// poweredOff: it holds no running state).
package main

import (
	"fmt"
	"log"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// snapshotOp is what the lab must finish after the simulator ran a snapshot task.
type snapshotOp struct {
	vm          *simulator.VirtualMachine
	revertTo    *types.ManagedObjectReference  // revert: the snapshot whose disk content comes back
	noPowerOn   bool                           // revert with suppressPowerOn
	descendants []types.ManagedObjectReference // RemoveSnapshot_Task with removeChildren
	create      bool                           // CreateSnapshot_Task
	memory      bool                           // ... with memory of a powered-on VM
	stateless   bool                           // ... without memory of a powered-on VM
	removal     bool                           // RemoveSnapshot_Task, RemoveAllSnapshots_Task
}

// findSnapshotNode returns the tree node of ref in tree (depth first), or nil.
func findSnapshotNode(tree []types.VirtualMachineSnapshotTree, ref types.ManagedObjectReference) *types.VirtualMachineSnapshotTree {
	for i := range tree {
		if tree[i].Snapshot == ref {
			return &tree[i]
		}
		if n := findSnapshotNode(tree[i].ChildSnapshotList, ref); n != nil {
			return n
		}
	}
	return nil
}

func snapshotRefs(tree []types.VirtualMachineSnapshotTree) []types.ManagedObjectReference {
	var out []types.ManagedObjectReference
	for _, n := range tree {
		out = append(out, n.Snapshot)
		out = append(out, snapshotRefs(n.ChildSnapshotList)...)
	}
	return out
}

// beforeSnapshotOp notes what a snapshot request will need once the simulator has run it (nil: nothing).
func (f *front) beforeSnapshotOp(body interface{}) *snapshotOp {
	switch req := body.(type) {
	case *types.CreateSnapshot_Task:
		if vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine); ok {
			op := &snapshotOp{vm: vm, create: true}
			simulator.Map.WithLock(vm, func() {
				on := vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
				op.memory, op.stateless = req.Memory && on, !req.Memory && on
			})
			return op
		}
	case *types.RemoveAllSnapshots_Task:
		if vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine); ok {
			simulator.Map.WithLock(vm, func() { detachSnapshotKeys(vm) })
			return &snapshotOp{vm: vm, removal: true}
		}
	case *types.RevertToSnapshot_Task:
		if snap := snapshotOf(req.This); snap != nil {
			if vm, ok := simulator.Map.Get(snap.Vm).(*simulator.VirtualMachine); ok {
				ref := req.This
				return &snapshotOp{vm: vm, revertTo: &ref, noPowerOn: isTrue(req.SuppressPowerOn)}
			}
		}
	case *types.RevertToCurrentSnapshot_Task:
		vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
		if !ok {
			return nil
		}
		op := &snapshotOp{vm: vm, noPowerOn: isTrue(req.SuppressPowerOn)}
		simulator.Map.WithLock(vm, func() {
			if vm.Snapshot != nil && vm.Snapshot.CurrentSnapshot != nil {
				ref := *vm.Snapshot.CurrentSnapshot
				op.revertTo = &ref
			}
		})
		if op.revertTo != nil {
			return op
		}
	case *types.RemoveSnapshot_Task:
		snap := snapshotOf(req.This)
		if snap == nil {
			return nil
		}
		vm, ok := simulator.Map.Get(snap.Vm).(*simulator.VirtualMachine)
		if !ok {
			return nil
		}
		op := &snapshotOp{vm: vm, removal: true}
		simulator.Map.WithLock(vm, func() {
			detachSnapshotKeys(vm)
			if vm.Snapshot == nil || !req.RemoveChildren {
				return
			}
			if n := findSnapshotNode(vm.Snapshot.RootSnapshotList, req.This); n != nil {
				op.descendants = snapshotRefs(n.ChildSnapshotList)
			}
		})
		return op
	}
	return nil
}

// afterSnapshotOp finishes op when the simulator's task (the response's returnval) succeeded; when it did not
// (a fault, a failed task), it only gives a removal's detached layout keys back.
func (f *front) afterSnapshotOp(op *snapshotOp, response []byte) {
	var state types.TaskInfoState
	var result types.AnyType
	if m := taskRefRE.FindSubmatch(response); m != nil {
		ref := types.ManagedObjectReference{Type: "Task", Value: string(m[1])}
		if task, ok := simulator.Map.Get(ref).(*simulator.Task); ok {
			simulator.Map.WithLock(task, func() { state, result = task.Info.State, task.Info.Result })
		}
	}
	if state != types.TaskInfoStateSuccess {
		if op.removal {
			simulator.Map.WithLock(op.vm, func() { f.inv.fixSnapshotLayoutKeys(op.vm) })
		}
		return
	}
	switch {
	case op.create:
		if ref, ok := result.(types.ManagedObjectReference); ok {
			simulator.Map.WithLock(op.vm, func() {
				f.inv.recordSnapshotFiles(op.vm, ref, op.memory)
				if n := findSnapshotNode(op.vm.Snapshot.RootSnapshotList, ref); n != nil && op.stateless {
					n.State = types.VirtualMachinePowerStatePoweredOff
				}
			})
		}
	case op.revertTo != nil:
		f.inv.revertDisks(*op.revertTo)
		simulator.Map.WithLock(op.vm, func() { revertPowerState(op.vm, *op.revertTo, op.noPowerOn) })
	case op.removal:
		gone := map[types.ManagedObjectReference]bool{}
		for _, ref := range op.descendants {
			gone[ref] = true
		}
		simulator.Map.WithLock(op.vm, func() {
			for ref := range gone {
				removeSnapshotLayout(op.vm, ref)
			}
			f.inv.removeOrphanSnapshotFiles(op.vm, gone)
		})
		for ref := range gone {
			if snapshotOf(ref) != nil {
				simulator.Map.Remove(ref) // the inventory hook deletes the frozen views
			}
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// revertPowerState gives the VM the power state recorded in the snapshot, as vCenter's revert does: a snapshot
// recorded poweredOff (taken powered off, or without memory) powers the VM off; one recorded poweredOn powers it
// on unless suppressPowerOn. Only the state changes (no power events). Caller holds the VM's simulator lock.
func revertPowerState(vm *simulator.VirtualMachine, ref types.ManagedObjectReference, suppressPowerOn bool) {
	if vm.Snapshot == nil {
		return
	}
	n := findSnapshotNode(vm.Snapshot.RootSnapshotList, ref)
	if n == nil || n.State == vm.Runtime.PowerState {
		return
	}
	state := n.State
	if state == types.VirtualMachinePowerStatePoweredOn && suppressPowerOn {
		state = types.VirtualMachinePowerStateSuspended
	}
	simulator.Map.Update(vm, []types.PropertyChange{
		{Name: "runtime.powerState", Val: state},
		{Name: "summary.runtime.powerState", Val: state},
	})
}

// removeSnapshotLayout drops snapshot ref from the VM's layout (removeOrphanSnapshotFiles deletes its files, by
// name). Caller holds the VM's simulator lock.
func removeSnapshotLayout(vm *simulator.VirtualMachine, ref types.ManagedObjectReference) {
	snaps := vm.LayoutEx.Snapshot[:0]
	for _, s := range vm.LayoutEx.Snapshot {
		if s.Key != ref {
			snaps = append(snaps, s)
		}
	}
	vm.LayoutEx.Snapshot = snaps
	layout := vm.Layout.Snapshot[:0]
	for _, s := range vm.Layout.Snapshot {
		if s.Key != ref {
			layout = append(layout, s)
		}
	}
	vm.Layout.Snapshot = layout
}

// datastoreFilePath maps "[DS] dir/file" to the file's path on this machine.
func datastoreFilePath(name string) (string, error) {
	i := strings.Index(name, "]")
	if !strings.HasPrefix(name, "[") || i < 0 {
		return "", fmt.Errorf("not a datastore path: %q", name)
	}
	store := datastoreByName(name[1:i])
	if store == nil {
		return "", fmt.Errorf("datastore %q not found", name[1:i])
	}
	rel := strings.TrimSpace(name[i+1:])
	return filepath.Join(store.Info.GetDatastoreInfo().Url, filepath.FromSlash(rel)), nil
}

// revertDisks brings every disk frozen for snapshot ref back to the snapshot's content, through the write path
// (other snapshots keep their view, CBT records the changed blocks).
func (inv *inventory) revertDisks(ref types.ManagedObjectReference) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	rec := inv.snaps[ref]
	if rec == nil {
		return
	}
	for _, flat := range rec.flats {
		if err := revertFlat(flat, ref.Value); err != nil {
			log.Printf("lab: reverting %s to snapshot %s: %v", flat, ref.Value, err)
		}
	}
}

// renameSnapshot implements RenameSnapshot: a non-empty name or description replaces the snapshot's.
func (f *front) renameSnapshot(w http.ResponseWriter, r *http.Request, req *types.RenameSnapshot) {
	if !f.sessionValid(r) {
		writeFault(w, "The session is not authenticated.", notAuthenticatedXML())
		return
	}
	snap := snapshotOf(req.This)
	var vm *simulator.VirtualMachine
	if snap != nil {
		vm, _ = simulator.Map.Get(snap.Vm).(*simulator.VirtualMachine)
	}
	if vm == nil {
		writeFault(w, "The object has already been deleted or has not been completely created", notFoundXML(req.This))
		return
	}
	found := false
	simulator.Map.WithLock(vm, func() {
		if vm.Snapshot == nil {
			return
		}
		n := findSnapshotNode(vm.Snapshot.RootSnapshotList, req.This)
		if n == nil {
			return
		}
		found = true
		if req.Name != "" {
			n.Name = req.Name
		}
		if req.Description != "" {
			n.Description = req.Description
		}
		// property collectors (WaitForUpdates) see the new tree
		simulator.Map.Update(vm, []types.PropertyChange{
			{Name: "snapshot.rootSnapshotList", Val: vm.Snapshot.RootSnapshotList}})
	})
	if !found {
		writeFault(w, "The object has already been deleted or has not been completely created", notFoundXML(req.This))
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, `%s<RenameSnapshotResponse xmlns="urn:vim25"></RenameSnapshotResponse>%s`, envelopeStart, envelopeEnd)
}
