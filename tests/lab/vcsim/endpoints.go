// Lab-only HTTP endpoints (PROTOCOL.md section 4) on the simulator's https port.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// maxWrite bounds one guest write (it is generated in memory).
const maxWrite = 256 << 20

// diskInfo is one entry of GET /lab/disks.
type diskInfo struct {
	Index         int    `json:"index"`
	Key           int32  `json:"key"`
	ControllerKey int32  `json:"controllerKey"`
	UnitNumber    int32  `json:"unitNumber"`
	FileName      string `json:"fileName"`
	Flat          string `json:"flat"`
	Capacity      int64  `json:"capacity"`
	UUID          string `json:"uuid"`
	ChangeID      string `json:"changeId"`
}

type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, a ...interface{}) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, a...)}
}

func notFound(format string, a ...interface{}) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, a...)}
}

func (f *front) serveLab(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="blockvault lab"`)
		http.Error(w, "authentication required: Basic credentials of the simulator or a SOAP session cookie",
			http.StatusUnauthorized)
		return
	}
	routes := map[string]struct {
		method  string
		handler func(http.ResponseWriter, *http.Request) error
	}{
		"/lab/vddk":        {http.MethodGet, f.labVDDK},
		"/lab/write":       {http.MethodPost, f.labWrite},
		"/lab/write-bytes": {http.MethodPost, f.labWriteBytes},
		"/lab/checksum":    {http.MethodGet, f.labChecksum},
		"/lab/reset-cbt":   {http.MethodPost, f.labResetCBT},
		"/lab/disks":       {http.MethodGet, f.labDisks},
	}
	route, ok := routes[r.URL.Path]
	if !ok {
		http.Error(w, "no such lab endpoint: "+r.URL.Path, http.StatusNotFound)
		return
	}
	if r.Method != route.method {
		http.Error(w, r.URL.Path+" needs "+route.method, http.StatusMethodNotAllowed)
		return
	}
	if err := route.handler(w, r); err != nil {
		code := http.StatusInternalServerError
		if he, ok := err.(*httpError); ok {
			code = he.code
		}
		http.Error(w, err.Error(), code)
	}
}

func (f *front) labVDDK(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: q.Get("vm")}
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return notFound("virtual machine %q not found", ref.Value)
	}
	devices := vm.Config.Hardware.Device
	if s := q.Get("snapshot"); s != "" {
		snap := snapshotOf(types.ManagedObjectReference{Type: "VirtualMachineSnapshot", Value: s})
		if snap == nil || snap.Vm != vm.Self {
			return notFound("snapshot %q of virtual machine %q not found", s, ref.Value)
		}
		devices = snap.Config.Hardware.Device
	}
	var names []string
	paths := map[string]string{}
	for _, e := range simulator.Map.All("Datastore") {
		if ds, ok := e.(*simulator.Datastore); ok {
			names = append(names, ds.Name)
			paths[ds.Name] = ds.Info.GetDatastoreInfo().Url
		}
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, n := range names {
		fmt.Fprintf(w, "datastore %s %s\n", n, paths[n])
	}
	// the disks this VM (or snapshot) may open: real VDDK refuses a disk that is not the VM's
	for _, disk := range vmDisks(devices) {
		if b := flatBacking(disk); b != nil {
			fmt.Fprintf(w, "disk %s\n", b.FileName)
		}
	}
	return nil
}

// vmDiskInfo resolves ?vm=<name> and returns its disks in device order.
func vmDiskInfo(name string) (*simulator.VirtualMachine, []diskInfo, error) {
	if name == "" {
		return nil, nil, badRequest("missing parameter vm (a virtual machine name)")
	}
	vm := findVMByName(name)
	if vm == nil {
		return nil, nil, notFound("virtual machine %q not found", name)
	}
	var out []diskInfo
	var err error
	simulator.Map.WithLock(vm, func() {
		if vm.Config == nil {
			return
		}
		for i, d := range vmDisks(vm.Config.Hardware.Device) {
			di := diskInfo{Index: i, Key: d.Key, ControllerKey: d.ControllerKey, Capacity: diskCapacity(d)}
			if d.UnitNumber != nil {
				di.UnitNumber = *d.UnitNumber
			}
			if b := flatBacking(d); b != nil {
				di.FileName, di.UUID, di.ChangeID = b.FileName, b.Uuid, b.ChangeId
				if flat, ferr := flatPathOf(b.FileName); ferr == nil {
					di.Flat = flat
				} else {
					err = ferr
				}
			}
			out = append(out, di)
		}
	})
	return vm, out, err
}

func pickDisk(vmName, diskArg string) (*simulator.VirtualMachine, diskInfo, error) {
	vm, disks, err := vmDiskInfo(vmName)
	if err != nil {
		return nil, diskInfo{}, err
	}
	n, perr := strconv.Atoi(diskArg)
	if perr != nil || n < 0 {
		return nil, diskInfo{}, badRequest("parameter disk=%q must be a 0-based disk index", diskArg)
	}
	if n >= len(disks) {
		return nil, diskInfo{}, notFound("virtual machine %q has %d disk(s); disk %d does not exist", vmName, len(disks), n)
	}
	if disks[n].Flat == "" {
		return nil, diskInfo{}, badRequest("disk %d of %q has no flat file backing", n, vmName)
	}
	return vm, disks[n], nil
}

func int64Param(r *http.Request, name string, def int64, required bool) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		if required {
			return 0, badRequest("missing parameter %s", name)
		}
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, badRequest("parameter %s=%q must be a non-negative integer", name, s)
	}
	return v, nil
}

func (f *front) labWrite(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	_, disk, err := pickDisk(q.Get("vm"), q.Get("disk"))
	if err != nil {
		return err
	}
	off, err := int64Param(r, "offset", 0, true)
	if err != nil {
		return err
	}
	length, err := int64Param(r, "length", 0, true)
	if err != nil {
		return err
	}
	seed, err := int64Param(r, "seed", 1, false)
	if err != nil {
		return err
	}
	if length == 0 || length > maxWrite {
		return badRequest("length must be between 1 and %d bytes", maxWrite)
	}
	if off+length > disk.Capacity {
		return badRequest("write [%d, %d) goes past the end of disk %d (capacity %d)", off, off+length, disk.Index,
			disk.Capacity)
	}
	if err := guestWrite(disk.Flat, off, writePattern(uint64(seed), off, length)); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]interface{}{"fileName": disk.FileName, "offset": off, "length": length})
}

// labWriteBytes is a guest write of the request body (raw bytes) at offset: the lab's guest filesystems
// (labkit.guestfs) build a changed filesystem offline and send the byte ranges that differ through here, so the
// change takes the same write path as /lab/write (open snapshots keep their view, CBT records the range).
func (f *front) labWriteBytes(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	_, disk, err := pickDisk(q.Get("vm"), q.Get("disk"))
	if err != nil {
		return err
	}
	off, err := int64Param(r, "offset", 0, true)
	if err != nil {
		return err
	}
	// one byte more than allowed tells an oversized body from one of exactly maxWrite bytes
	data, err := io.ReadAll(io.LimitReader(r.Body, maxWrite+1))
	if err != nil {
		return badRequest("reading the body: %v", err)
	}
	if len(data) == 0 || len(data) > maxWrite {
		return badRequest("the body must hold between 1 and %d bytes", maxWrite)
	}
	length := int64(len(data))
	if off+length > disk.Capacity {
		return badRequest("write [%d, %d) goes past the end of disk %d (capacity %d)", off, off+length, disk.Index,
			disk.Capacity)
	}
	if err := guestWrite(disk.Flat, off, data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]interface{}{"fileName": disk.FileName, "offset": off, "length": length})
}

func (f *front) labChecksum(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	vm, disk, err := pickDisk(q.Get("vm"), q.Get("disk"))
	if err != nil {
		return err
	}
	snapRef := ""
	if s := q.Get("snapshot"); s != "" {
		var ref *types.ManagedObjectReference
		simulator.Map.WithLock(vm, func() { ref = findSnapshotByName(vm, s) })
		if ref == nil {
			return notFound("virtual machine %q has no snapshot %q", vm.Name, s)
		}
		snapRef = ref.Value
	}
	view, err := openView(disk.Flat, snapRef)
	if err != nil {
		return notFound("disk %d of %q as snapshot %q sees it: %v", disk.Index, vm.Name, snapRef, err)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < view.capacity; off += int64(len(buf)) {
		n := int64(len(buf))
		if off+n > view.capacity {
			n = view.capacity - off
		}
		if err := view.ReadAt(buf[:n], off); err != nil {
			return err
		}
		h.Write(buf[:n])
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = fmt.Fprintln(w, hex.EncodeToString(h.Sum(nil)))
	return err
}

func (f *front) labResetCBT(w http.ResponseWriter, r *http.Request) error {
	vm, disks, err := vmDiskInfo(r.URL.Query().Get("vm"))
	if err != nil {
		return err
	}
	for _, d := range disks {
		if d.Flat == "" {
			continue
		}
		if _, err := resetCBT(d.Flat); err != nil {
			return err
		}
	}
	simulator.Map.WithLock(vm, func() { f.inv.reconcileVM(vm) }) // live changeIds move to the new epoch
	_, disks, err = vmDiskInfo(vm.Name)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(disks)
}

func (f *front) labDisks(w http.ResponseWriter, r *http.Request) error {
	_, disks, err := vmDiskInfo(r.URL.Query().Get("vm"))
	if err != nil {
		return err
	}
	if disks == nil {
		disks = []diskInfo{}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(disks)
}
