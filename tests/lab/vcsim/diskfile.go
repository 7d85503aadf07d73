// Disk files of the lab (tests/lab/PROTOCOL.md sections 1-3): the flat file F, its change log F.cbt and its
// copy-on-write snapshot directories F.snap/<moref>/. Every function here takes flock(2) on F itself, on its own
// file descriptor, for the duration of one call: LOCK_EX to change anything, LOCK_SH to read. Safe for concurrent
// use by goroutines of this process and by the VDDK stand-in (another process) following the same protocol.
package main

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	cowBlock     = 65536
	cbtMagic     = "LABCBT01"
	cbtHeaderLen = 32
	cbtRecordLen = 16
	seekData     = 3 // SEEK_DATA
	seekHole     = 4 // SEEK_HOLE
)

// extent is a byte range [Start, Start+Length).
type extent struct {
	Start  int64
	Length int64
}

func (e extent) end() int64 { return e.Start + e.Length }

// lockedFile is F opened on its own descriptor and flock'ed; Close releases the lock.
type lockedFile struct {
	*os.File
}

func lockFlat(flat string, exclusive bool) (*lockedFile, error) {
	mode, how := os.O_RDONLY, syscall.LOCK_SH
	if exclusive {
		mode, how = os.O_RDWR, syscall.LOCK_EX
	}
	f, err := os.OpenFile(flat, mode, 0)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", flat, err)
	}
	return &lockedFile{f}, nil
}

func (l *lockedFile) Close() error { return l.File.Close() } // closing the descriptor drops the flock

func cbtPath(flat string) string                { return flat + ".cbt" }
func snapRoot(flat string) string               { return flat + ".snap" }
func snapDir(flat, moref string) string         { return filepath.Join(snapRoot(flat), moref) }
func changeIDText(epoch uint64, n int64) string { return fmt.Sprintf("%016x/%d", epoch, n) }

// parseChangeID splits "%016x/%d"; ok is false for anything else (including "*").
func parseChangeID(id string) (epoch uint64, count int64, ok bool) {
	parts := strings.Split(id, "/")
	if len(parts) != 2 || len(parts[0]) != 16 {
		return 0, 0, false
	}
	e, err1 := strconv.ParseUint(parts[0], 16, 64)
	c, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || c < 0 || e == 0 {
		return 0, 0, false
	}
	return e, c, true
}

func randomEpoch() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err)
		}
		if e := binary.LittleEndian.Uint64(b[:]); e != 0 {
			return e
		}
	}
}

func cbtHeader(epoch uint64) []byte {
	h := make([]byte, cbtHeaderLen)
	copy(h, cbtMagic)
	binary.LittleEndian.PutUint64(h[8:], epoch)
	return h
}

// writeNewEpochLocked replaces F.cbt by an empty log with a new random epoch. Caller holds LOCK_EX on F.
func writeNewEpochLocked(flat string) (uint64, error) {
	epoch := randomEpoch()
	tmp := cbtPath(flat) + ".tmp"
	if err := os.WriteFile(tmp, cbtHeader(epoch), 0600); err != nil {
		return 0, err
	}
	return epoch, os.Rename(tmp, cbtPath(flat))
}

// readCBTLocked returns the epoch and the records of F.cbt. Caller holds a lock on F. A missing log reads as
// epoch 0 with no records.
func readCBTLocked(flat string) (uint64, []extent, error) {
	data, err := os.ReadFile(cbtPath(flat))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	if len(data) < cbtHeaderLen || string(data[:8]) != cbtMagic {
		return 0, nil, fmt.Errorf("%s: not a LABCBT01 change log", cbtPath(flat))
	}
	epoch := binary.LittleEndian.Uint64(data[8:])
	n := (len(data) - cbtHeaderLen) / cbtRecordLen
	recs := make([]extent, n)
	for i := 0; i < n; i++ {
		p := data[cbtHeaderLen+i*cbtRecordLen:]
		recs[i] = extent{int64(binary.LittleEndian.Uint64(p)), int64(binary.LittleEndian.Uint64(p[8:]))}
	}
	return epoch, recs, nil
}

// cbtStateLocked returns the epoch and record count of F.cbt from its header and size (epoch 0: no log).
// Caller holds a lock on F.
func cbtStateLocked(flat string) (uint64, int64, error) {
	f, err := os.Open(cbtPath(flat))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	header := make([]byte, cbtHeaderLen)
	if _, err := io.ReadFull(f, header); err != nil || string(header[:8]) != cbtMagic {
		return 0, 0, fmt.Errorf("%s: not a LABCBT01 change log", cbtPath(flat))
	}
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint64(header[8:]), (st.Size() - cbtHeaderLen) / cbtRecordLen, nil
}

// currentChangeIDLocked returns "epoch/count" of F.cbt, creating the log when missing. Caller holds LOCK_EX.
func currentChangeIDLocked(flat string) (string, uint64, error) {
	epoch, count, err := cbtStateLocked(flat)
	if err != nil {
		return "", 0, err
	}
	if epoch == 0 {
		if epoch, err = writeNewEpochLocked(flat); err != nil {
			return "", 0, err
		}
	}
	return changeIDText(epoch, count), epoch, nil
}

func appendCBTLocked(flat string, off, length int64) error {
	f, err := os.OpenFile(cbtPath(flat), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0600)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var buf []byte
	if st.Size() == 0 {
		buf = cbtHeader(randomEpoch())
	}
	rec := make([]byte, cbtRecordLen)
	binary.LittleEndian.PutUint64(rec, uint64(off))
	binary.LittleEndian.PutUint64(rec[8:], uint64(length))
	_, err = f.Write(append(buf, rec...))
	return err
}

// ensureFlat creates F when missing and grows it (never shrinks) to capacity; creates F.cbt when missing.
// grown reports whether an existing file got bigger.
func ensureFlat(flat string, capacity int64) (grown bool, err error) {
	if err = os.MkdirAll(filepath.Dir(flat), 0700); err != nil {
		return false, err
	}
	f, err := os.OpenFile(flat, os.O_RDWR|os.O_CREATE, 0600)
	if err != nil {
		return false, err
	}
	f.Close()
	l, err := lockFlat(flat, true)
	if err != nil {
		return false, err
	}
	defer l.Close()
	st, err := l.Stat()
	if err != nil {
		return false, err
	}
	if st.Size() < capacity {
		if err = l.Truncate(capacity); err != nil {
			return false, err
		}
		grown = st.Size() > 0
	}
	if grown {
		_, err = writeNewEpochLocked(flat)
	} else {
		_, _, err = currentChangeIDLocked(flat)
	}
	return grown, err
}

// resetCBT starts a new epoch with no records (power loss, CBT off/on, resize).
func resetCBT(flat string) (uint64, error) {
	l, err := lockFlat(flat, true)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return writeNewEpochLocked(flat)
}

// snapMeta is the parsed F.snap/<moref>/meta.
type snapMeta struct {
	Capacity int64
	ChangeID string
}

func readSnapMeta(dir string) (snapMeta, error) {
	var m snapMeta
	data, err := os.ReadFile(filepath.Join(dir, "meta"))
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		kv := strings.SplitN(strings.TrimSpace(line), " ", 2)
		if len(kv) != 2 {
			continue
		}
		switch kv[0] {
		case "capacity":
			m.Capacity, err = strconv.ParseInt(kv[1], 10, 64)
			if err != nil {
				return m, fmt.Errorf("%s/meta: bad capacity", dir)
			}
		case "changeid":
			m.ChangeID = kv[1]
		}
	}
	return m, nil
}

// createSnapshotDir freezes F for snapshot moref; returns the changeId of that moment and F's capacity.
func createSnapshotDir(flat, moref string) (string, int64, error) {
	l, err := lockFlat(flat, true)
	if err != nil {
		return "", 0, err
	}
	defer l.Close()
	st, err := l.Stat()
	if err != nil {
		return "", 0, err
	}
	capacity := st.Size()
	changeID, _, err := currentChangeIDLocked(flat)
	if err != nil {
		return "", 0, err
	}
	if err = os.MkdirAll(snapRoot(flat), 0700); err != nil {
		return "", 0, err
	}
	tmp := filepath.Join(snapRoot(flat), ".tmp-"+moref)
	_ = os.RemoveAll(tmp)
	if err = os.Mkdir(tmp, 0700); err != nil {
		return "", 0, err
	}
	meta := fmt.Sprintf("capacity %d\nchangeid %s\ncreated %d\n", capacity, changeID, time.Now().Unix())
	nblocks := (capacity + cowBlock - 1) / cowBlock
	if err = os.WriteFile(filepath.Join(tmp, "meta"), []byte(meta), 0600); err == nil {
		err = os.WriteFile(filepath.Join(tmp, "map"), make([]byte, nblocks), 0600)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Create(filepath.Join(tmp, "data")); err == nil {
			err = d.Truncate(capacity)
			d.Close()
		}
	}
	if err == nil {
		err = os.Rename(tmp, snapDir(flat, moref))
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", 0, err
	}
	return changeID, capacity, nil
}

// removeSnapshotDir deletes F.snap/<moref> (and F.snap when it becomes empty).
func removeSnapshotDir(flat, moref string) error {
	l, err := lockFlat(flat, true)
	if errors.Is(err, os.ErrNotExist) {
		return os.RemoveAll(snapDir(flat, moref))
	}
	if err != nil {
		return err
	}
	defer l.Close()
	if err = os.RemoveAll(snapDir(flat, moref)); err != nil {
		return err
	}
	_ = os.Remove(snapRoot(flat)) // fails harmlessly while other snapshots exist
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// preserveLocked copies F's blocks overlapping [off, off+length) into every snapshot that still shares them.
func preserveLocked(l *lockedFile, flat string, off, length int64) error {
	entries, err := os.ReadDir(snapRoot(flat))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	buf := make([]byte, cowBlock)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !e.IsDir() {
			continue
		}
		dir := filepath.Join(snapRoot(flat), e.Name())
		meta, err := readSnapMeta(dir)
		if err != nil {
			return err
		}
		bmap, err := os.OpenFile(filepath.Join(dir, "map"), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		data, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR, 0)
		if err != nil {
			bmap.Close()
			return err
		}
		err = func() error {
			defer bmap.Close()
			defer data.Close()
			for b := off / cowBlock; b*cowBlock < off+length && b*cowBlock < meta.Capacity; b++ {
				flag := []byte{0}
				if _, err := bmap.ReadAt(flag, b); err != nil {
					return err
				}
				if flag[0] != 0 {
					continue
				}
				n := int64(cowBlock)
				if b*cowBlock+n > meta.Capacity {
					n = meta.Capacity - b*cowBlock
				}
				chunk := buf[:n]
				if _, err := l.ReadAt(chunk, b*cowBlock); err != nil && err != io.EOF {
					return err
				}
				if !allZero(chunk) {
					if _, err := data.WriteAt(chunk, b*cowBlock); err != nil {
						return err
					}
				}
				if _, err := bmap.WriteAt([]byte{1}, b); err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// guestWrite writes p at off into F following the protocol's write path (preserve, pwrite, log).
func guestWrite(flat string, off int64, p []byte) error {
	l, err := lockFlat(flat, true)
	if err != nil {
		return err
	}
	defer l.Close()
	st, err := l.Stat()
	if err != nil {
		return err
	}
	if off < 0 || off+int64(len(p)) > st.Size() {
		return fmt.Errorf("write [%d, %d) is outside the disk (capacity %d)", off, off+int64(len(p)), st.Size())
	}
	if err = preserveLocked(l, flat, off, int64(len(p))); err != nil {
		return err
	}
	if _, err = l.WriteAt(p, off); err != nil {
		return err
	}
	return appendCBTLocked(flat, off, int64(len(p)))
}

// viewReader reads F as the live disk (snap == "") or as snapshot snap sees it. Not safe for concurrent use;
// each ReadAt call takes LOCK_SH on F for its duration.
type viewReader struct {
	flat     string
	snap     string
	capacity int64
}

func openView(flat, snap string) (*viewReader, error) {
	v := &viewReader{flat: flat, snap: snap}
	if snap == "" {
		st, err := os.Stat(flat)
		if err != nil {
			return nil, err
		}
		v.capacity = st.Size()
		return v, nil
	}
	meta, err := readSnapMeta(snapDir(flat, snap))
	if err != nil {
		return nil, err
	}
	v.capacity = meta.Capacity
	return v, nil
}

func (v *viewReader) ReadAt(p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > v.capacity {
		return fmt.Errorf("read [%d, %d) is outside the disk (capacity %d)", off, off+int64(len(p)), v.capacity)
	}
	l, err := lockFlat(v.flat, false)
	if err != nil {
		return err
	}
	defer l.Close()
	if v.snap == "" {
		return fullRead(l.File, p, off)
	}
	dir := snapDir(v.flat, v.snap)
	bmap, err := os.ReadFile(filepath.Join(dir, "map"))
	if err != nil {
		return err
	}
	data, err := os.Open(filepath.Join(dir, "data"))
	if err != nil {
		return err
	}
	defer data.Close()
	for pos := off; pos < off+int64(len(p)); {
		b := pos / cowBlock
		end := (b + 1) * cowBlock
		if end > off+int64(len(p)) {
			end = off + int64(len(p))
		}
		src := l.File
		if b < int64(len(bmap)) && bmap[b] != 0 {
			src = data
		}
		if err := fullRead(src, p[pos-off:end-off], pos); err != nil {
			return err
		}
		pos = end
	}
	return nil
}

// fullRead reads len(p) bytes at off; bytes past the end of the file read as zero.
func fullRead(f *os.File, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if err == io.EOF {
		for i := n; i < len(p); i++ {
			p[i] = 0
		}
		return nil
	}
	return err
}

// dataExtents lists the allocated ranges of f within [0, limit) (SEEK_DATA/SEEK_HOLE granularity).
func dataExtents(f *os.File, limit int64) ([]extent, error) {
	var out []extent
	fd := int(f.Fd())
	for pos := int64(0); pos < limit; {
		start, err := syscall.Seek(fd, pos, seekData)
		if err == syscall.ENXIO {
			break
		}
		if err != nil {
			return nil, err
		}
		if start >= limit {
			break
		}
		end, err := syscall.Seek(fd, start, seekHole)
		if err != nil {
			return nil, err
		}
		if end > limit {
			end = limit
		}
		out = append(out, extent{start, end - start})
		pos = end
	}
	return out, nil
}

func clipExtents(in []extent, lo, hi int64) []extent {
	var out []extent
	for _, e := range in {
		s, t := e.Start, e.end()
		if s < lo {
			s = lo
		}
		if t > hi {
			t = hi
		}
		if t > s {
			out = append(out, extent{s, t - s})
		}
	}
	return out
}

// mergeExtents sorts and merges overlapping and adjacent extents.
func mergeExtents(in []extent) []extent {
	s := append([]extent(nil), in...)
	sort.Slice(s, func(i, j int) bool { return s[i].Start < s[j].Start })
	var out []extent
	for _, e := range s {
		if e.Length <= 0 {
			continue
		}
		if n := len(out); n > 0 && e.Start <= out[n-1].end() {
			if e.end() > out[n-1].end() {
				out[n-1].Length = e.end() - out[n-1].Start
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

// allocatedExtents returns the allocated ranges of the view, merged and sorted.
func (v *viewReader) allocatedExtents() ([]extent, error) {
	l, err := lockFlat(v.flat, false)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	live, err := dataExtents(l.File, v.capacity)
	if err != nil || v.snap == "" {
		return mergeExtents(live), err
	}
	dir := snapDir(v.flat, v.snap)
	bmap, err := os.ReadFile(filepath.Join(dir, "map"))
	if err != nil {
		return nil, err
	}
	data, err := os.Open(filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	defer data.Close()
	saved, err := dataExtents(data, v.capacity)
	if err != nil {
		return nil, err
	}
	var out []extent
	// Walk runs of blocks with the same map value and take the allocation of the file they read from.
	nblocks := (v.capacity + cowBlock - 1) / cowBlock
	for b := int64(0); b < nblocks; {
		flag := bmap[b]
		e := b + 1
		for e < nblocks && bmap[e] == flag {
			e++
		}
		lo, hi := b*cowBlock, e*cowBlock
		if hi > v.capacity {
			hi = v.capacity
		}
		if flag != 0 {
			out = append(out, clipExtents(saved, lo, hi)...)
		} else {
			out = append(out, clipExtents(live, lo, hi)...)
		}
		b = e
	}
	return mergeExtents(out), nil
}

// changedExtents returns the merged records [from, to) of F.cbt clipped to [lo, hi), after checking that the
// log is still in epoch (to < 0 means up to the current record). stale is true when the epoch differs or the counts do not fit the log.
func changedExtents(flat string, epoch uint64, from, to, lo, hi int64) (areas []extent, stale bool, err error) {
	l, err := lockFlat(flat, false)
	if err != nil {
		return nil, false, err
	}
	defer l.Close()
	cur, recs, err := readCBTLocked(flat)
	if err != nil {
		return nil, false, err
	}
	if to < 0 {
		to = int64(len(recs))
	}
	if cur != epoch || from > to || to > int64(len(recs)) {
		return nil, true, nil
	}
	return mergeExtents(clipExtents(recs[from:to], lo, hi)), false, nil
}
