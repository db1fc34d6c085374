#include "heap.h"

#include <stdlib.h> /* __GLIBC__ */

/* Under AddressSanitizer (go test -asan) malloc is the sanitizer's, which
 * keeps its own count; otherwise glibc's mallinfo2(3) sums every arena. */
#if defined(__SANITIZE_ADDRESS__)
#define FREEWATCH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FREEWATCH_ASAN 1
#endif
#endif

#if defined(FREEWATCH_ASAN)
#include <sanitizer/allocator_interface.h>

size_t freewatch_heap_in_use(void) { return __sanitizer_get_current_allocated_bytes(); }

#elif defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>

/* uordblks: bytes in chunks in use in the arenas; hblkhd: bytes in chunks
 * malloc mapped on their own (large allocations). */
size_t freewatch_heap_in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

#else
size_t freewatch_heap_in_use(void) { return (size_t)-1; }
#endif
