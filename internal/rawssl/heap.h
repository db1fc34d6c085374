/*
 * The C heap meter of package freewatch: bytes the process's C allocator
 * has handed out and not had back.
 */
#ifndef SSLSESSION_FREEWATCH_HEAP_H
#define SSLSESSION_FREEWATCH_HEAP_H

#include <stddef.h>

/* Bytes in use in the C heap; (size_t)-1 where this C library cannot say. */
size_t freewatch_heap_in_use(void);

#endif
