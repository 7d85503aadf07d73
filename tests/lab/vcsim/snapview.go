// Copy-on-write snapshot directories F.snap/<moref>/ (PROTOCOL.md section 2): create, remove, preserve on
// write, and reading or listing the allocation of the disk as a snapshot (or the live VM) sees it.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

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

// revertFlat writes back into F every block that snapshot moref preserved (the blocks written since it was
// taken), through guestWrite. Blocks past the snapshot's capacity (a disk grown since) are left as they are.
func revertFlat(flat, moref string) error {
	dir := snapDir(flat, moref)
	bmap, err := os.ReadFile(filepath.Join(dir, "map"))
	if err != nil {
		return err
	}
	view, err := openView(flat, moref)
	if err != nil {
		return err
	}
	buf := make([]byte, cowBlock)
	for b, preserved := range bmap {
		off := int64(b) * cowBlock
		if preserved == 0 || off >= view.capacity {
			continue
		}
		n := view.capacity - off
		if n > cowBlock {
			n = cowBlock
		}
		if err := view.ReadAt(buf[:n], off); err != nil {
			return err
		}
		if err := guestWrite(flat, off, buf[:n]); err != nil {
			return err
		}
	}
	return nil
}
