package rawssl

// #include "heap.h"
import "C"

import "errors"

// ErrHeapUnknown is HeapInUse's error where the C library cannot report its
// heap (a C library other than glibc 2.33 or later, without AddressSanitizer).
var ErrHeapUnknown = errors.New("rawssl: this C library does not report its heap in use")

// HeapInUse is the number of bytes the process's C allocator has handed out
// and not had back: OpenSSL's memory (it allocates with malloc) and any
// other C code's, never the Go heap's. It reads glibc's mallinfo2(3) (every
// arena, and the chunks mapped on their own), or AddressSanitizer's own count
// under go test -asan. Allocators keep freed memory for reuse, so compare
// it with itself, not with the process's resident size.
func HeapInUse() (int64, error) {
	n := C.freewatch_heap_in_use()
	if n == ^C.size_t(0) {
		return 0, ErrHeapUnknown
	}
	return int64(n), nil
}
