// The change log F.cbt (PROTOCOL.md section 3): header, records, epochs, changeIds.
package main

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

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
