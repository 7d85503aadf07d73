// Byte extents: allocation of a file (SEEK_DATA/SEEK_HOLE), clipping and merging.
package main

import (
	"os"
	"sort"
	"syscall"
)

// extent is a byte range [Start, Start+Length).
type extent struct {
	Start  int64
	Length int64
}

func (e extent) end() int64 { return e.Start + e.Length }

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
