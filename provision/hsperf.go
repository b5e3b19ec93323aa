package provision

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// JVMHeap is the heap of a running JVM, read from its hsperfdata file (the
// shared-memory counters jstat reads; every HotSpot JVM writes one to
// /tmp/hsperfdata_USER/PID unless started with -XX:-UsePerfData). Reading
// it needs no JDK tool on the host and does not touch the JVM.
type JVMHeap struct {
	UsedBytes     int64 `json:"used_bytes"`
	CapacityBytes int64 `json:"capacity_bytes"` // committed; the maximum is -Xmx on the command line
}

// ParseHSPerfData reads the heap counters from an hsperfdata file: the sum
// over the collector's generations and spaces of sun.gc.generation.*.
func ParseHSPerfData(data []byte) (JVMHeap, error) {
	var h JVMHeap
	counters, err := hsperfCounters(data)
	if err != nil {
		return h, err
	}
	found := false
	for name, v := range counters {
		rest, ok := strings.CutPrefix(name, "sun.gc.generation.")
		if !ok {
			continue
		}
		parts := strings.Split(rest, ".")
		switch {
		case len(parts) == 4 && parts[1] == "space" && parts[3] == "used":
			h.UsedBytes += v
			found = true
		case len(parts) == 2 && parts[1] == "capacity":
			h.CapacityBytes += v
		}
	}
	if !found {
		return h, errors.New("hsperfdata has no heap counters (sun.gc.generation.*.space.*.used)")
	}
	return h, nil
}

// hsperfCounters reads every long counter of an hsperfdata file (jvmstat
// format 2: a 32-byte prologue, then entries of name and value).
func hsperfCounters(data []byte) (map[string]int64, error) {
	if len(data) < 32 || !bytes.Equal(data[:4], []byte{0xca, 0xfe, 0xc0, 0xc0}) {
		return nil, errors.New("not an hsperfdata file (bad magic)")
	}
	var order binary.ByteOrder = binary.BigEndian
	if data[4] == 1 {
		order = binary.LittleEndian
	}
	if major := data[5]; major != 2 {
		return nil, fmt.Errorf("hsperfdata format %d is not supported (want 2)", major)
	}
	i32 := func(off int) int { return int(int32(order.Uint32(data[off:]))) }
	offset, entries := i32(24), i32(28)
	out := map[string]int64{}
	for n := 0; n < entries; n++ {
		if offset < 0 || offset+20 > len(data) {
			return nil, errors.New("hsperfdata is truncated")
		}
		length, nameOff, vecLen := i32(offset), i32(offset+4), i32(offset+8)
		typ, dataOff := data[offset+12], i32(offset+16)
		if length <= 0 || offset+length > len(data) {
			return nil, errors.New("hsperfdata has a damaged entry")
		}
		entry := data[offset : offset+length]
		if nameOff < 0 || nameOff >= len(entry) {
			return nil, errors.New("hsperfdata has a damaged entry name")
		}
		name := entry[nameOff:]
		if end := bytes.IndexByte(name, 0); end >= 0 {
			name = name[:end]
		}
		if typ == 'J' && vecLen == 0 && dataOff >= 0 && dataOff+8 <= len(entry) {
			out[string(name)] = int64(order.Uint64(entry[dataOff:]))
		}
		offset += length
	}
	return out, nil
}
