// Command checkptr is a probe for scripts/check-scripts.sh: it converts a
// pointer into a 16-byte allocation to a pointer to 4 KiB, which checkptr
// reports ("converted pointer straddles multiple allocations"). The suite
// relies on `go test -race` turning checkptr on; the probe proves this
// toolchain does.
package main

import (
	"fmt"
	"unsafe"
)

var sink []byte

func main() {
	sink = make([]byte, 16)
	p := (*[512]uint64)(unsafe.Pointer(&sink[0]))
	fmt.Println("not caught", p[0])
}
