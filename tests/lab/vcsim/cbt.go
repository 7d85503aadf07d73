// QueryChangedDiskAreas (PROTOCOL.md section 3), answered by the front handler with vSphere's faults.
package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// cbtQuery is what QueryChangedDiskAreas needs, gathered under the VM's simulator lock.
type cbtQuery struct {
	cbtOn    bool
	fileName string
	flat     string
}

func (f *front) queryChangedDiskAreas(w http.ResponseWriter, r *http.Request, req *types.QueryChangedDiskAreas) {
	if !f.sessionValid(r) {
		writeFault(w, "", notAuthenticatedXML())
		return
	}
	vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		writeFault(w, fmt.Sprintf("managed object not found: %s", req.This), notFoundXML(req.This))
		return
	}
	var devices []types.BaseVirtualDevice
	snapName := ""
	if req.Snapshot != nil {
		snap := snapshotOf(*req.Snapshot)
		if snap == nil {
			writeFault(w, fmt.Sprintf("managed object not found: %s", *req.Snapshot), notFoundXML(*req.Snapshot))
			return
		}
		if snap.Vm != vm.Self {
			writeFault(w, fmt.Sprintf("snapshot %s does not belong to %s", req.Snapshot.Value, vm.Self.Value),
				invalidArgumentXML("snapshot"))
			return
		}
		devices = snap.Config.Hardware.Device
		snapName = req.Snapshot.Value
	}
	var q cbtQuery
	simulator.Map.WithLock(vm, func() {
		q.cbtOn = vm.Config != nil && vm.Config.ChangeTrackingEnabled != nil && *vm.Config.ChangeTrackingEnabled
		if devices == nil && vm.Config != nil {
			devices = vm.Config.Hardware.Device
		}
		for _, d := range vmDisks(devices) {
			if d.Key == req.DeviceKey {
				if b := flatBacking(d); b != nil {
					q.fileName = b.FileName
				}
			}
		}
	})
	if !q.cbtOn {
		writeFault(w, fmt.Sprintf("Error caused by file %s: change tracking is not enabled on virtual machine %s",
			q.fileName, vm.Name), fileFaultXML(q.fileName, "vim.hostd.vmsvc.cbt.noTrack",
			"Change tracking is not enabled on the virtual machine."))
		return
	}
	if q.fileName == "" {
		writeFault(w, fmt.Sprintf("deviceKey %d is not a virtual disk of %s", req.DeviceKey, vm.Name),
			invalidArgumentXML("deviceKey"))
		return
	}
	flat, err := flatPathOf(q.fileName)
	if err != nil {
		writeFault(w, err.Error(), invalidArgumentXML("deviceKey"))
		return
	}
	view, err := openView(flat, snapName)
	if err != nil {
		writeFault(w, fmt.Sprintf("Error caused by file %s: %v", q.fileName, err),
			fileFaultXML(q.fileName, "vim.hostd.vmsvc.cbt.cannotGetChanges", "Cannot open the disk."))
		return
	}
	if req.StartOffset < 0 || req.StartOffset >= view.capacity {
		writeFault(w, fmt.Sprintf("startOffset %d is not within the disk (capacity %d)", req.StartOffset,
			view.capacity), invalidArgumentXML("startOffset"))
		return
	}
	var areas []extent
	if req.ChangeId == "*" {
		all, err := view.allocatedExtents()
		if err != nil {
			writeFault(w, fmt.Sprintf("Error caused by file %s: %v", q.fileName, err),
				fileFaultXML(q.fileName, "vim.hostd.vmsvc.cbt.cannotGetChanges", "Cannot read the disk."))
			return
		}
		areas = clipExtents(all, req.StartOffset, view.capacity)
	} else {
		epoch, from, ok := parseChangeID(req.ChangeId)
		if !ok {
			writeFault(w, fmt.Sprintf("changeId %q is not a valid change ID", req.ChangeId),
				invalidArgumentXML("changeId"))
			return
		}
		to := int64(-1)
		if snapName != "" {
			meta, err := readSnapMeta(snapDir(flat, snapName))
			sEpoch, sCount, ok := parseChangeID(meta.ChangeID)
			if err != nil || !ok || sEpoch != epoch {
				f.staleFault(w, q.fileName, req.ChangeId, "it is not of the change tracking epoch of snapshot "+
					snapName+" (change tracking was reset, switched or the disk was resized in between)")
				return
			}
			to = sCount
		}
		var stale string
		areas, stale, err = changedExtents(flat, epoch, from, to, req.StartOffset, view.capacity)
		if err != nil {
			writeFault(w, fmt.Sprintf("Error caused by file %s: %v", q.fileName, err),
				fileFaultXML(q.fileName, "vim.hostd.vmsvc.cbt.cannotGetChanges", "Cannot read the change log."))
			return
		}
		if stale != "" {
			f.staleFault(w, q.fileName, req.ChangeId, stale)
			return
		}
	}
	length := view.capacity - req.StartOffset
	if len(areas) > f.pageLimit {
		areas = areas[:f.pageLimit]
		length = areas[len(areas)-1].end() - req.StartOffset
	}
	var b strings.Builder
	fmt.Fprintf(&b, `%s<QueryChangedDiskAreasResponse xmlns="urn:vim25"><returnval><startOffset>%d</startOffset>`+
		`<length>%d</length>`, envelopeStart, req.StartOffset, length)
	for _, a := range areas {
		fmt.Fprintf(&b, `<changedArea><start>%d</start><length>%d</length></changedArea>`, a.Start, a.Length)
	}
	b.WriteString(`</returnval></QueryChangedDiskAreasResponse>` + envelopeEnd)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(b.String()))
}

func (f *front) staleFault(w http.ResponseWriter, fileName, changeID, why string) {
	writeFault(w, fmt.Sprintf("Error caused by file %s: vim.hostd.vmsvc.cbt.cannotGetChanges: "+
		"vim.hostd.vmsvc.cbt.noEpoch: cannot compute changes since change ID %s: %s", fileName, changeID, why),
		fileFaultXML(fileName, "vim.hostd.vmsvc.cbt.noEpoch",
			"Cannot compute changes for the disk: the change ID belongs to an older change tracking epoch."))
}
