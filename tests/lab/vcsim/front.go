// The front http.Handler: answers QueryChangedDiskAreas itself (PROTOCOL.md section 3), serves /lab/...
// (section 4), hands every other request to the simulator's ServeMux and, after a request that may have changed
// the inventory, reconciles disk files and backings before the client sees the answer.
package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// front is safe for concurrent use; the simulator and the inventory do their own locking.
type front struct {
	inv       *inventory
	mux       http.Handler
	user      string
	password  string
	pageLimit int
}

// readOnlyMethods never change the inventory, so no reconcile is needed after them.
var readOnlyMethods = map[string]bool{
	"RetrieveServiceContent": true, "RetrieveProperties": true, "RetrievePropertiesEx": true,
	"ContinueRetrievePropertiesEx": true, "WaitForUpdates": true, "WaitForUpdatesEx": true, "CheckForUpdates": true,
	"CreateFilter": true, "DestroyPropertyFilter": true, "CreatePropertyCollector": true,
	"DestroyPropertyCollector": true, "CurrentTime": true, "Login": true, "Logout": true, "SessionIsActive": true,
	"FindByUuid": true, "FindByInventoryPath": true, "FindChild": true, "FindByIp": true, "FindByDnsName": true,
	"CreateContainerView": true, "CreateListView": true, "DestroyView": true, "CancelRetrievePropertiesEx": true,
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/lab/"):
		f.serveLab(w, r)
	case r.Method == http.MethodPost && (r.URL.Path == "/sdk" || r.URL.Path == "/sdk/vimService"):
		f.serveSOAP(w, r)
	default:
		f.mux.ServeHTTP(w, r)
	}
}

func (f *front) serveSOAP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		http.Error(w, "cannot read request body", http.StatusBadRequest)
		return
	}
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err == nil && method.Name == "Fetch" && f.serveUnsetFetch(w, r, method.Body) {
		return
	}
	var snapOp *snapshotOp
	if err == nil {
		snapOp = f.beforeSnapshotOp(method.Body)
		switch req := method.Body.(type) {
		case *types.QueryChangedDiskAreas:
			f.queryChangedDiskAreas(w, r, req)
			return
		case *types.RenameSnapshot:
			f.renameSnapshot(w, r, req)
			return
		case *types.ReconfigVM_Task:
			if msg, fault := checkNoShrink(req); fault != "" && f.sessionValid(r) {
				writeFault(w, msg, fault)
				return
			}
		}
	}
	rec := httptest.NewRecorder()
	r.Body = io.NopCloser(bytes.NewReader(body))
	name := "a request that is not SOAP"
	if method != nil {
		name = method.Name
	}
	f.serveRecovering(rec, r, name)
	if snapOp != nil {
		f.afterSnapshotOp(snapOp, rec.Body.Bytes()) // a fault's body names no task: nothing but cleanup
	}
	if method != nil && !readOnlyMethods[method.Name] && rec.Code == http.StatusOK {
		if req, ok := method.Body.(*types.CreateVirtualDisk_Task); ok {
			f.afterCreateVirtualDisk(req)
		}
		if strings.HasSuffix(method.Name, "_Task") {
			f.fixTaskEntity(method.This, rec.Body.Bytes())
		}
		f.inv.reconcileAll()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

var taskRefRE = regexp.MustCompile(`<returnval type="Task">([^<]+)</returnval>`)

// fixTaskEntity keeps a task's info.entity a ManagedEntity, as vCenter does: the simulator puts the object the
// method ran on there (a snapshot, the VirtualDiskManager), which pyvmomi rejects. Snapshot tasks get their VM,
// other non-entities none.
func (f *front) fixTaskEntity(this types.ManagedObjectReference, response []byte) {
	m := taskRefRE.FindSubmatch(response)
	if m == nil {
		return
	}
	task, ok := simulator.Map.Get(types.ManagedObjectReference{Type: "Task", Value: string(m[1])}).(*simulator.Task)
	if !ok || task.Info.Entity == nil {
		return
	}
	if _, isEntity := simulator.Map.Get(*task.Info.Entity).(mo.Entity); isEntity {
		return
	}
	var vmRef *types.ManagedObjectReference
	if this.Type == "VirtualMachineSnapshot" {
		if snap := snapshotOf(this); snap != nil {
			vmRef = &snap.Vm
		} else {
			vmRef = f.inv.snapshotVM(this)
		}
	}
	simulator.Map.WithLock(task, func() {
		task.Info.Entity, task.Info.EntityName = nil, ""
		if vmRef == nil {
			return
		}
		if vm, ok := simulator.Map.Get(*vmRef).(*simulator.VirtualMachine); ok {
			task.Info.Entity, task.Info.EntityName = vmRef, vm.Name
		}
	})
}

// checkNoShrink refuses a ReconfigVM_Task that would shrink a disk (vSphere does not shrink virtual disks).
func checkNoShrink(req *types.ReconfigVM_Task) (string, string) {
	vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		return "", ""
	}
	var msg, fault string
	simulator.Map.WithLock(vm, func() {
		if vm.Config == nil {
			return
		}
		current := map[int32]int64{}
		for _, d := range vmDisks(vm.Config.Hardware.Device) {
			current[d.Key] = diskCapacity(d)
		}
		for _, ch := range req.Spec.DeviceChange {
			spec := ch.GetVirtualDeviceConfigSpec()
			disk, isDisk := spec.Device.(*types.VirtualDisk)
			if !isDisk || spec.Operation != types.VirtualDeviceConfigSpecOperationEdit {
				continue
			}
			if old, found := current[disk.Key]; found && diskCapacity(disk) < old {
				msg = fmt.Sprintf("disk %d: shrinking a virtual disk (%d -> %d bytes) is not supported",
					disk.Key, old, diskCapacity(disk))
				fault = invalidArgumentXML("spec.deviceChange.device.capacityInBytes")
				return
			}
		}
	})
	return msg, fault
}

// afterCreateVirtualDisk gives a disk made by VirtualDiskManager a sparse flat file of its capacity and a uuid.
func (f *front) afterCreateVirtualDisk(req *types.CreateVirtualDisk_Task) {
	spec, ok := req.Spec.(*types.FileBackedVirtualDiskSpec)
	if !ok {
		return
	}
	flat, err := flatPathOf(req.Name)
	if err != nil {
		log.Printf("lab: CreateVirtualDisk %s: %v", req.Name, err)
		return
	}
	f.inv.mu.Lock()
	defer f.inv.mu.Unlock()
	if _, err := ensureFlat(flat, spec.CapacityKb*1024); err != nil {
		log.Printf("lab: CreateVirtualDisk %s: %v", req.Name, err)
		return
	}
	f.inv.disks[flat] = &diskState{uuid: newDiskUUID(nil), capacity: spec.CapacityKb * 1024}
}

// sessionValid asks the simulator whether the request's vmware_soap_session cookie is a logged-in session, by
// handing it an internal CurrentTime call (which needs a session).
func (f *front) sessionValid(r *http.Request) bool {
	c, err := r.Cookie("vmware_soap_session")
	if err != nil || c.Value == "" {
		return false
	}
	const env = `<?xml version="1.0" encoding="UTF-8"?>` +
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">` +
		`<soapenv:Body><CurrentTime xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this>` +
		`</CurrentTime></soapenv:Body></soapenv:Envelope>`
	req := httptest.NewRequest(http.MethodPost, "/sdk", strings.NewReader(env))
	req.AddCookie(&http.Cookie{Name: "vmware_soap_session", Value: c.Value})
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, req)
	return rec.Code == http.StatusOK
}

// authorized accepts the simulator's Basic credentials or a valid SOAP session cookie.
func (f *front) authorized(r *http.Request) bool {
	if u, p, ok := r.BasicAuth(); ok {
		uOK := subtle.ConstantTimeCompare([]byte(u), []byte(f.user)) == 1
		pOK := subtle.ConstantTimeCompare([]byte(p), []byte(f.password)) == 1
		return uOK && pOK
	}
	return f.sessionValid(r)
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

const envelopeStart = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
	`<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" ` +
	`xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" ` +
	`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>`
const envelopeEnd = `</soapenv:Body></soapenv:Envelope>`

// writeFault writes a SOAP fault whose detail is faultXML (a "<XFault xmlns=urn:vim25 xsi:type=X>" element).
func writeFault(w http.ResponseWriter, msg, faultXML string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, "%s<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>%s</faultstring>"+
		"<detail>%s</detail></soapenv:Fault>%s", envelopeStart, xmlEscape(msg), faultXML, envelopeEnd)
}

func invalidArgumentXML(property string) string {
	return `<InvalidArgumentFault xmlns="urn:vim25" xsi:type="InvalidArgument"><invalidProperty>` +
		xmlEscape(property) + `</invalidProperty></InvalidArgumentFault>`
}

func notFoundXML(ref types.ManagedObjectReference) string {
	return `<ManagedObjectNotFoundFault xmlns="urn:vim25" xsi:type="ManagedObjectNotFound"><obj type="` +
		xmlEscape(ref.Type) + `">` + xmlEscape(ref.Value) + `</obj></ManagedObjectNotFoundFault>`
}

func notAuthenticatedXML() string {
	return `<NotAuthenticatedFault xmlns="urn:vim25" xsi:type="NotAuthenticated">` +
		`<object type="ServiceInstance">ServiceInstance</object><privilegeId>System.View</privilegeId>` +
		`</NotAuthenticatedFault>`
}

// fileFaultXML is a FileFault carrying a localizable message key, as ESXi reports CBT problems.
func fileFaultXML(file, key, message string) string {
	return `<FileFaultFault xmlns="urn:vim25" xsi:type="FileFault"><faultMessage><key>` + xmlEscape(key) +
		`</key><message>` + xmlEscape(message) + `</message></faultMessage><file>` + xmlEscape(file) +
		`</file></FileFaultFault>`
}
