"""Freed memory kept in the process while training on the CPU, so each step's activations reuse the last step's pages.

A training step frees and allocates tensors of a few MB (the baseline's first feature maps: 6.4 MB a batch). glibc's
malloc hands such blocks back to the kernel when they are freed (mmap, or trimming the top of the heap), and the next
step faults every page in again: 3,000 to 6,000 page faults a step. Setting its thresholds (`mallopt`) keeps them;
the numbers trained are the same, only where the memory lies changes. Elsewhere than glibc nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

from ablate import recipe

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


@functools.cache
def keep_freed_memory() -> bool:
    """Keep freed blocks under recipe.CPU_MALLOC_MMAP_BYTES in the heap, and up to recipe.CPU_MALLOC_TRIM_BYTES of free
    heap unreturned, for the rest of the process (once); whether glibc took both settings."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(M_MMAP_THRESHOLD, recipe.CPU_MALLOC_MMAP_BYTES)
                and libc.mallopt(M_TRIM_THRESHOLD, recipe.CPU_MALLOC_TRIM_BYTES))
