// Fetch (the one-property read pyVmomi's accessors use: vm.snapshot, eventManager.latestEvent, ...) as vCenter
// answers it: an unset property reads as an empty FetchResponse (None in pyVmomi). govmomi 0.24.2's
// PropertyCollector.Fetch indexes MissingSet[0] when the property is unset and panics, which drops the client's
// connection; the lab asks RetrievePropertiesEx first and answers the unset case itself.
package main

import (
	"bytes"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime/debug"

	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// fetchArgs reads _this and prop of a decoded Fetch request (the simulator's internal.Fetch, which this package
// cannot name), by reflection.
func fetchArgs(body interface{}) (types.ManagedObjectReference, string, bool) {
	v := reflect.ValueOf(body)
	if v.Kind() == reflect.Ptr {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return types.ManagedObjectReference{}, "", false
	}
	this, ok1 := v.FieldByName("This").Interface().(types.ManagedObjectReference)
	prop, ok2 := v.FieldByName("Prop").Interface().(string)
	return this, prop, ok1 && ok2
}

// serveUnsetFetch answers a Fetch of an unset property with an empty FetchResponse and returns true; it returns
// false (the caller hands the request to the simulator) when the property is set, invalid, or the object is
// reached through a supertype the simulator resolves itself.
func (f *front) serveUnsetFetch(w http.ResponseWriter, r *http.Request, body interface{}) bool {
	this, prop, ok := fetchArgs(body)
	if !ok || prop == "" || (this == vim25.ServiceInstance && prop == "content") {
		return false
	}
	content, fault := f.retrieveOne(r, this, prop)
	if fault {
		return false // the simulator's own Fetch returns the same fault (not authenticated, invalid property...)
	}
	if content == nil {
		writeFault(w, "The object has already been deleted or has not been completely created", notFoundXML(this))
		return true
	}
	if len(content.PropSet) > 0 || len(content.MissingSet) > 0 {
		return false
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, `%s<FetchResponse xmlns="urn:vim25"></FetchResponse>%s`, envelopeStart, envelopeEnd)
	return true
}

// retrieveOne asks the simulator, with the caller's session cookie, RetrievePropertiesEx of one path of one
// object. It returns the object's content (nil when the simulator returned no object) and whether it answered
// a fault or an undecodable response.
func (f *front) retrieveOne(r *http.Request, this types.ManagedObjectReference, prop string) (*types.ObjectContent, bool) {
	req := types.RetrievePropertiesEx{
		This: types.ManagedObjectReference{Type: "PropertyCollector", Value: "propertyCollector"},
		SpecSet: []types.PropertyFilterSpec{{
			PropSet:   []types.PropertySpec{{Type: this.Type, PathSet: []string{prop}}},
			ObjectSet: []types.ObjectSpec{{Obj: this}},
		}},
	}
	payload, err := xml.Marshal(req)
	if err != nil {
		return nil, true
	}
	env := []byte(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope ` +
		`xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` +
		`<soapenv:Body>`)
	env = append(env, bytes.Replace(payload, []byte("<RetrievePropertiesEx>"),
		[]byte(`<RetrievePropertiesEx xmlns="urn:vim25">`), 1)...)
	env = append(env, []byte(`</soapenv:Body></soapenv:Envelope>`)...)
	inner := httptest.NewRequest(http.MethodPost, "/sdk", bytes.NewReader(env))
	for _, c := range r.Cookies() {
		inner.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, inner)
	if rec.Code != http.StatusOK {
		return nil, true
	}
	var res methods.RetrievePropertiesExBody
	dec := xml.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.TypeFunc = types.TypeFunc()
	if err := dec.Decode(&soap.Envelope{Body: &res}); err != nil || res.Res == nil {
		return nil, true
	}
	if res.Res.Returnval == nil || len(res.Res.Returnval.Objects) == 0 {
		return nil, false
	}
	return &res.Res.Returnval.Objects[0], false
}

// serveRecovering hands the request to the simulator; a panic inside it becomes a SystemError fault (vCenter
// answers faults, it does not drop connections) and a log line starting "lab: panic" with the stack, which the
// lab's conformance suite fails on.
func (f *front) serveRecovering(rec *httptest.ResponseRecorder, r *http.Request, method string) {
	defer func() {
		if p := recover(); p != nil {
			log.Printf("lab: panic in the simulator serving %s: %v\n%s", method, p, debug.Stack())
			*rec = *httptest.NewRecorder()
			writeFault(rec, fmt.Sprintf("the lab simulator failed serving %s: %v", method, p),
				`<SystemErrorFault xmlns="urn:vim25" xsi:type="SystemError"><reason>`+
					xmlEscape(fmt.Sprint(p))+`</reason></SystemErrorFault>`)
		}
	}()
	f.mux.ServeHTTP(rec, r)
}
