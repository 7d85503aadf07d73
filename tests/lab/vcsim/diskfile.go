// Disk files of the lab (tests/lab/PROTOCOL.md sections 1-3): the flat file F, its change log F.cbt and its
// copy-on-write snapshot directories F.snap/<moref>/. Every function here takes flock(2) on F itself, on its own
// file descriptor, for the duration of one call: LOCK_EX to change anything, LOCK_SH to read. Safe for concurrent
// use by goroutines of this process and by the VDDK stand-in (another process) following the same protocol.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

const (
	cowBlock     = 65536
	cbtMagic     = "LABCBT01"
	cbtHeaderLen = 32
	cbtRecordLen = 16
	seekData     = 3 // SEEK_DATA
	seekHole     = 4 // SEEK_HOLE
)

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

func cbtPath(flat string) string        { return flat + ".cbt" }
func snapRoot(flat string) string       { return flat + ".snap" }
func snapDir(flat, moref string) string { return filepath.Join(snapRoot(flat), moref) }

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

// changedExtents returns the merged records [from, to) of F.cbt clipped to [lo, hi), after checking that the
// log is still in epoch (to < 0 means up to the current record). stale explains why no answer is possible: the
// epoch is not the log's current one, or the counts do not fit the log.
func changedExtents(flat string, epoch uint64, from, to, lo, hi int64) (areas []extent, stale string, err error) {
	l, err := lockFlat(flat, false)
	if err != nil {
		return nil, "", err
	}
	defer l.Close()
	cur, recs, err := readCBTLocked(flat)
	if err != nil {
		return nil, "", err
	}
	if to < 0 {
		to = int64(len(recs))
	}
	switch {
	case cur != epoch:
		return nil, "it is not of the disk's current change tracking epoch (change tracking was reset, " +
			"switched or the disk was resized)", nil
	case from > to:
		return nil, "it is newer than the snapshot", nil
	case to > int64(len(recs)):
		return nil, "the change log is shorter than the snapshot's change ID", nil
	}
	return mergeExtents(clipExtents(recs[from:to], lo, hi)), "", nil
}
