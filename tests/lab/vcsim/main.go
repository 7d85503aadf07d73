// blockvault-vcsim: the lab's vCenter (govmomi 0.24.2 simulator, VPX model) with real disk files, point-in-time
// snapshots, Changed Block Tracking and lab endpoints, as tests/lab/PROTOCOL.md describes.
//
//	blockvault-vcsim --dir DIR [--port 0] [--seed 1] [--vm1-disk0 1G] [--vm1-disk1 256M] [--vm2-disk0 256M]
//	                 [--extra-vms 0] [--extra-vm-disk 64M]
//	                 [--cbt-page-limit 4] [--user U] [--password P] [--keep-datastores]
//
// Writes DIR/lab.json when ready; SIGTERM/SIGINT stops it and removes what it created under DIR.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

type config struct {
	dir            string
	port           int
	user           string
	password       string
	seed           uint64
	vm1Disk0       int64
	vm1Disk1       int64
	vm2Disk0       int64
	extraVMs       int
	extraVMDisk    int64
	pageLimit      int
	keepDatastores bool
	sessionIdle    time.Duration
}

// sizeFlag parses "1073741824", "64M", "1G", "512K" (binary units); the value must be a multiple of 1 KiB.
type sizeFlag struct{ v *int64 }

func (s sizeFlag) String() string {
	if s.v == nil {
		return ""
	}
	return strconv.FormatInt(*s.v, 10)
}

func (s sizeFlag) Set(text string) error {
	v, err := parseSize(text)
	if err != nil {
		return err
	}
	*s.v = v
	return nil
}

func parseSize(text string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(text))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n*mult%1024 != 0 {
		return 0, fmt.Errorf("size %q: give a positive multiple of 1 KiB (e.g. 65536, 64M, 1G)", text)
	}
	return n * mult, nil
}

func randomPassword() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "Lab-" + string(b)
}

func parseFlags(args []string) (*config, error) {
	c := &config{vm1Disk0: 1 << 30, vm1Disk1: 256 << 20, vm2Disk0: 256 << 20, extraVMDisk: 64 << 20}
	fs := flag.NewFlagSet("blockvault-vcsim", flag.ContinueOnError)
	fs.StringVar(&c.dir, "dir", "", "lab directory (lab.json, CA, datastores); required")
	fs.IntVar(&c.port, "port", 0, "https port on 127.0.0.1 (0 = a free one)")
	fs.StringVar(&c.user, "user", "administrator@vsphere.local", "the one accepted user name")
	fs.StringVar(&c.password, "password", "", "the one accepted password (default: random, see lab.json)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the initial disk contents and disk uuids")
	fs.Var(sizeFlag{&c.vm1Disk0}, "vm1-disk0", "capacity of lab-vm1 disk 0 (SCSI bus 0, pvscsi)")
	fs.Var(sizeFlag{&c.vm1Disk1}, "vm1-disk1", "capacity of lab-vm1 disk 1 (SCSI bus 1, lsilogic)")
	fs.Var(sizeFlag{&c.vm2Disk0}, "vm2-disk0", "capacity of lab-vm2 disk 0")
	fs.IntVar(&c.extraVMs, "extra-vms", 0, "more lab VMs: lab-vm3, lab-vm4, ... each with one disk (fleet benchmarks)")
	fs.Var(sizeFlag{&c.extraVMDisk}, "extra-vm-disk", "capacity of the disk of each extra VM")
	fs.IntVar(&c.pageLimit, "cbt-page-limit", 4, "most changed areas per QueryChangedDiskAreas answer")
	fs.BoolVar(&c.keepDatastores, "keep-datastores", false, "keep the datastore directories on exit")
	fs.DurationVar(&c.sessionIdle, "session-idle-timeout", 30*time.Minute,
		"a vCenter session idle this long is logged out, as vCenter's own timeout (default 30m) does; 0 = never")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.dir == "" {
		return nil, errors.New("--dir is required")
	}
	if c.sessionIdle < 0 {
		return nil, errors.New("--session-idle-timeout must not be negative")
	}
	if c.extraVMs < 0 {
		return nil, errors.New("--extra-vms must not be negative")
	}
	if c.pageLimit < 1 {
		return nil, errors.New("--cbt-page-limit must be at least 1")
	}
	if c.port < 0 || c.port > 65535 {
		return nil, errors.New("--port must be 0..65535")
	}
	if c.password == "" {
		c.password = randomPassword()
	}
	abs, err := filepath.Abs(c.dir)
	if err != nil {
		return nil, err
	}
	c.dir = abs
	return c, nil
}

// lab is one running simulator and what it created under its directory.
type lab struct {
	cfg     *config
	model   *simulator.Model
	server  *simulator.Server
	inv     *inventory
	pki     *labPKI
	created []string // paths under cfg.dir removed on exit
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "blockvault-vcsim:", err)
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	l := &lab{cfg: cfg, inv: newInventory()}
	if err := l.start(); err != nil {
		fmt.Fprintln(os.Stderr, "blockvault-vcsim: start failed:", err)
		l.stop()
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "blockvault-vcsim: ready on %s (pid %d)\n", l.server.URL.Host, os.Getpid())
	<-sig
	l.stop()
	fmt.Fprintln(os.Stderr, "blockvault-vcsim: stopped")
}

func (l *lab) start() (err error) {
	defer func() { // the simulator panics on some setup failures (e.g. port in use)
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	cfg := l.cfg
	if err = os.MkdirAll(cfg.dir, 0700); err != nil {
		return err
	}
	for _, name := range []string{"lab.json", "ca.pem", "datastores"} {
		if _, serr := os.Stat(filepath.Join(cfg.dir, name)); serr == nil {
			return fmt.Errorf("%s already exists: is another lab running there? stop it or remove the file",
				filepath.Join(cfg.dir, name))
		}
	}
	l.created = append(l.created, filepath.Join(cfg.dir, "ca.pem"))
	if l.pki, err = newLabPKI(filepath.Join(cfg.dir, "ca.pem")); err != nil {
		return err
	}
	dsRoot := filepath.Join(cfg.dir, "datastores")
	if err = os.Mkdir(dsRoot, 0700); err != nil {
		return err
	}
	if !cfg.keepDatastores {
		l.created = append(l.created, dsRoot)
	}
	// The model creates its datastores with ioutil.TempDir: point it at DIR/datastores.
	oldTmp, hadTmp := os.LookupEnv("TMPDIR")
	os.Setenv("TMPDIR", dsRoot)
	// like vCenter, sessions idle longer than this are logged out (a long transfer must keep its session alive)
	simulator.SessionIdleTimeout = cfg.sessionIdle
	l.model = simulator.VPX()
	err = l.model.Create()
	if hadTmp {
		os.Setenv("TMPDIR", oldTmp)
	} else {
		os.Unsetenv("TMPDIR")
	}
	if err != nil {
		return err
	}
	simulator.Map.AddHandler(l.inv)
	l.inv.reconcileAll()
	if err = l.createLabVMs(); err != nil {
		return err
	}
	l.model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{l.pki.serverCert}, MinVersion: tls.VersionTLS12}
	l.model.Service.Listen = &url.URL{
		Host: fmt.Sprintf("127.0.0.1:%d", cfg.port),
		User: url.UserPassword(cfg.user, cfg.password),
	}
	l.server = l.model.Service.NewServer()
	// The simulator serves its ServeMux; put the front handler before it.
	l.server.Config.Handler = &front{inv: l.inv, mux: l.model.Service.ServeMux, user: cfg.user,
		password: cfg.password, pageLimit: cfg.pageLimit}
	return l.writeLabJSON()
}

func (l *lab) writeLabJSON() error {
	port, _ := strconv.Atoi(l.server.URL.Port())
	datastores := map[string]string{}
	for _, e := range simulator.Map.All("Datastore") {
		if ds, ok := e.(*simulator.Datastore); ok {
			datastores[ds.Name] = ds.Info.GetDatastoreInfo().Url
		}
	}
	info := map[string]interface{}{
		"host":       "127.0.0.1",
		"port":       port,
		"url":        fmt.Sprintf("https://127.0.0.1:%d/sdk", port),
		"user":       l.cfg.user,
		"password":   l.cfg.password,
		"ca_bundle":  l.pki.caPEMPath,
		"thumbprint": l.pki.thumbprint,
		"datastores": datastores,
		"pid":        os.Getpid(),
	}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(l.cfg.dir, "lab.json")
	l.created = append(l.created, path)
	return writeFileAtomic(path, append(data, '\n'), 0600)
}

// createLabVMs adds lab-vm1 (two disks on two SCSI controllers), lab-vm2 (one disk) and --extra-vms more VMs of
// one disk each (lab-vm3, ...), fills their disks with the seeded initial data and powers them on.
func (l *lab) createLabVMs() error {
	ctx := context.Background()
	c, err := vim25.NewClient(ctx, l.model.Service)
	if err != nil {
		return err
	}
	finder := find.NewFinder(c, false)
	dc, err := finder.Datacenter(ctx, "DC0")
	if err != nil {
		return err
	}
	finder.SetDatacenter(dc)
	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}
	pool, err := finder.ResourcePool(ctx, "DC0_C0/Resources")
	if err != nil {
		return err
	}
	host, err := finder.HostSystem(ctx, "DC0_C0_H0")
	if err != nil {
		return err
	}
	rng := newXorshift(l.cfg.seed)
	index := 0
	type vmSpec struct {
		name  string
		sizes []int64
	}
	specs := []vmSpec{
		{"lab-vm1", []int64{l.cfg.vm1Disk0, l.cfg.vm1Disk1}},
		{"lab-vm2", []int64{l.cfg.vm2Disk0}},
	}
	for i := 0; i < l.cfg.extraVMs; i++ { // lab-vm3 ...: one disk each, seeded like the others (own data per index)
		specs = append(specs, vmSpec{fmt.Sprintf("lab-vm%d", i+3), []int64{l.cfg.extraVMDisk}})
	}
	for _, spec := range specs {
		var devices object.VirtualDeviceList
		var disks []*types.VirtualDisk
		for i, size := range spec.sizes {
			kind := "pvscsi"
			if i > 0 {
				kind = "lsilogic"
			}
			ctrl, err := devices.CreateSCSIController(kind)
			if err != nil {
				return err
			}
			scsi := ctrl.(types.BaseVirtualSCSIController).GetVirtualSCSIController()
			scsi.BusNumber = int32(i)
			scsi.Key = int32(1000 + i) // vCenter's numbering: SCSI controllers 1000+, their disks 2000+16*bus+unit
			devices = append(devices, ctrl)
			file := fmt.Sprintf("[LocalDS_0] %s/%s.vmdk", spec.name, spec.name)
			if i > 0 {
				file = fmt.Sprintf("[LocalDS_0] %s/%s_%d.vmdk", spec.name, spec.name, i)
			}
			disk := devices.CreateDisk(ctrl.(types.BaseVirtualController), types.ManagedObjectReference{}, file)
			disk.Key = int32(2000 + 16*i)
			disk.CapacityInBytes = size
			disk.CapacityInKB = size / 1024
			b := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			b.ThinProvisioned = types.NewBool(true)
			b.Uuid = newDiskUUID(rng)
			devices = append(devices, disk)
			disks = append(disks, disk)
		}
		changes, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
		if err != nil {
			return err
		}
		config := types.VirtualMachineConfigSpec{
			Name:         spec.name,
			GuestId:      string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest),
			NumCPUs:      2,
			MemoryMB:     2048,
			Files:        &types.VirtualMachineFileInfo{VmPathName: "[LocalDS_0]"},
			DeviceChange: changes,
		}
		task, err := folders.VmFolder.CreateVM(ctx, config, pool, host)
		if err != nil {
			return err
		}
		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return fmt.Errorf("creating %s: %w", spec.name, err)
		}
		vm := object.NewVirtualMachine(c, info.Result.(types.ManagedObjectReference))
		l.inv.reconcileAll()
		for _, d := range disks {
			flat, err := flatPathOf(d.Backing.(*types.VirtualDiskFlatVer2BackingInfo).FileName)
			if err != nil {
				return err
			}
			if err := fillInitialData(flat, diskCapacity(d), l.cfg.seed, index); err != nil {
				return err
			}
			index++
		}
		if task, err = vm.PowerOn(ctx); err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("powering on %s: %w", spec.name, err)
		}
	}
	return nil
}

// stop closes the server, removes the model's datastores and the files this process created.
func (l *lab) stop() {
	if l.server != nil {
		// Close waits for every request; a client's WaitForUpdates long poll would hold it forever.
		closed := make(chan struct{})
		go func() {
			l.server.CloseClientConnections()
			l.server.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			fmt.Fprintln(os.Stderr, "blockvault-vcsim: requests still running after 5 s; exiting anyway")
		}
	}
	if l.model != nil && !l.cfg.keepDatastores {
		l.model.Remove()
	}
	for i := len(l.created) - 1; i >= 0; i-- {
		_ = os.RemoveAll(l.created[i])
	}
	_ = os.Remove(filepath.Join(l.cfg.dir, "lab.json.tmp"))
	_ = os.Remove(filepath.Join(l.cfg.dir, "ca.pem.tmp"))
}
