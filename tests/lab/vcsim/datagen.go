// Deterministic disk contents: the realistic initial data of the lab VMs' disks and the bytes of guest writes.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
)

// xorshift is a small, fast, seeded generator (xorshift64*); not for cryptography.
type xorshift struct{ s uint64 }

func newXorshift(seed uint64) *xorshift {
	x := &xorshift{s: seed*0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D}
	if x.s == 0 {
		x.s = 1
	}
	for i := 0; i < 4; i++ {
		x.next()
	}
	return x
}

func (x *xorshift) next() uint64 {
	x.s ^= x.s >> 12
	x.s ^= x.s << 25
	x.s ^= x.s >> 27
	return x.s * 0x2545F4914F6CDD1D
}

func (x *xorshift) intn(n int) int { return int(x.next() % uint64(n)) }

func (x *xorshift) fill(p []byte) {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], x.next())
	}
	if i < len(p) {
		var tail [8]byte
		binary.LittleEndian.PutUint64(tail[:], x.next())
		copy(p[i:], tail[:])
	}
}

var words = []string{
	"the", "backup", "of", "virtual", "machine", "disk", "block", "change", "tracking", "snapshot", "restore",
	"data", "and", "to", "in", "is", "for", "log", "server", "error", "warning", "info", "request", "user",
	"session", "database", "table", "index", "page", "record", "transaction", "commit", "rollback", "vmware",
	"vsphere", "datastore", "cluster", "host", "network", "packet", "kernel", "module", "process", "thread",
	"memory", "allocation", "file", "system", "mount", "volume", "inode", "journal", "sector", "offset",
	"length", "checksum", "repository", "chunk", "compress", "encrypt", "deduplicate", "retention", "policy",
}

// textBuffer returns n bytes of log-like text (compressible, not repetitive at block granularity).
func textBuffer(rng *xorshift, n int) []byte {
	out := make([]byte, 0, n+256)
	line := 0
	for len(out) < n {
		line++
		out = append(out, []byte("2026-11-26T08:")...)
		out = append(out, byte('0'+rng.intn(6)), byte('0'+rng.intn(10)), ':', byte('0'+rng.intn(6)), byte('0'+rng.intn(10)))
		out = append(out, " host-"...)
		out = append(out, byte('0'+rng.intn(10)), ' ')
		for w := 3 + rng.intn(12); w > 0; w-- {
			out = append(out, words[rng.intn(len(words))]...)
			out = append(out, ' ')
		}
		out = append(out, byte('0'+line%10), '\n')
	}
	return out[:n]
}

// fillInitialData writes the initial contents of a new lab disk: 64 KiB-aligned regions of text, random bytes,
// written zeros, a repeated 64 KiB block, and holes (about 40 % of the disk). Deterministic for (seed, index).
func fillInitialData(flat string, capacity int64, seed uint64, index int) error {
	rng := newXorshift(seed ^ uint64(index+1)*0xA24BAED4963EE407)
	text := textBuffer(rng, 4<<20)
	repeated := make([]byte, cowBlock)
	rng.fill(repeated)
	f, err := os.OpenFile(flat, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 16*cowBlock)
	for off := int64(0); off < capacity; {
		size := int64(1+rng.intn(16)) * cowBlock
		if off+size > capacity {
			size = capacity - off
		}
		p := buf[:size]
		kind := rng.intn(100)
		switch {
		case kind < 40: // hole
			p = nil
		case kind < 62: // text
			start := rng.intn(len(text) - int(size))
			copy(p, text[start:])
		case kind < 80: // random
			rng.fill(p)
		case kind < 88: // written zeros
			for i := range p {
				p[i] = 0
			}
		default: // the same 64 KiB block over and over
			for i := int64(0); i < size; i += cowBlock {
				copy(p[i:], repeated)
			}
		}
		if p != nil {
			if _, err := f.WriteAt(p, off); err != nil {
				return err
			}
		}
		off += size
	}
	return nil
}

// writePattern returns the bytes of a guest write: SHA-256 in counter mode over (seed, offset, counter),
// so `labctl write` with the same arguments always writes the same bytes.
func writePattern(seed uint64, offset int64, length int64) []byte {
	out := make([]byte, length)
	var in [8 + 8 + 8 + 8]byte
	copy(in[:8], "labwrite")
	binary.LittleEndian.PutUint64(in[8:], seed)
	binary.LittleEndian.PutUint64(in[16:], uint64(offset))
	for i, pos := uint64(0), int64(0); pos < length; i, pos = i+1, pos+sha256.Size {
		binary.LittleEndian.PutUint64(in[24:], i)
		sum := sha256.Sum256(in[:])
		copy(out[pos:], sum[:])
	}
	return out
}
