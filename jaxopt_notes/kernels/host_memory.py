r"""Freed host memory kept for reuse: no page faults for XLA's temporaries each step.

Why. A jitted CPU step allocates its temporaries (one buffer of
``compiled.memory_analysis().temp_size_in_bytes``) when it starts and frees
them when it ends. glibc's ``malloc`` serves a block over its mmap threshold
(at most 32 MiB) with a fresh ``mmap`` and returns it with ``munmap``, so
every step touches brand-new pages: one page fault per 4 KiB, every step.
:func:`~jaxopt_notes.apply_step`'s kernel is a custom call, so the gradients
it reads are materialized as temporaries (where ``tx.update`` +
``apply_updates`` lets XLA fuse the last gradient operation into the update
loops); on a 13.6M-parameter MLP at batch 1 that is a 54.6 MB temporary,
13,341 page faults a step, and the fused step was 1.5x slower end to end than
optax's although the optimizer alone is 0.63x (``benchmarks/bench_end_to_end.py``,
the speed guide). Kept in malloc's heap instead, the temporary is the same
memory every step: no faults, and the fused step is faster end to end
(0.77-0.80x optax's there, measured in one process).

What. :func:`keep_freed_host_memory` sets two of glibc's ``mallopt``
parameters: ``M_MMAP_MAX = 0`` (large blocks come from the heap, not from
their own ``mmap``) and ``M_TRIM_THRESHOLD = 2**31 - 1`` (free memory at the
top of the heap is not handed back to the OS below 2 GiB). The process then
keeps the memory it has freed for its next allocations: its resident size
stays at its peak rather than shrinking between steps, as with jemalloc or
tcmalloc, which torch's CPU guides recommend for the same reason. It is
process-wide and cannot be undone; it changes no number. ``apply_step`` calls
it once, the first time it takes the fused kernel (so ``fit`` and
``jaxopt_notes.flax.Optimizer`` do too); ``JAXOPT_NOTES_KEEP_HOST_MEMORY=0``
in the environment turns that off. Elsewhere than glibc (macOS, musl) nothing
is changed and it returns ``False``.
"""

from __future__ import annotations

import ctypes
import os
import threading

__all__ = ["keep_freed_host_memory"]

# glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int

_lock = threading.Lock()
_kept = False


def _glibc():
  try:
    libc = ctypes.CDLL(None)
  except OSError:
    return None
  return libc if hasattr(libc, "gnu_get_libc_version") else None


def keep_freed_host_memory() -> bool:
  r"""Keeps freed host memory in malloc's heap, so that a jitted step reuses its temporaries.

  Sets glibc's ``mallopt(M_MMAP_MAX, 0)`` and ``mallopt(M_TRIM_THRESHOLD, 2**31 - 1)`` once
  for the process (see :mod:`jaxopt_notes.kernels.host_memory` for the measurements): a
  step's temporary buffer is then the same memory every step instead of freshly mapped
  pages, each first touched through a page fault. Numbers are unchanged; the process's
  resident memory stays at its peak. :func:`~jaxopt_notes.apply_step` calls it the first
  time it takes the fused kernel, unless ``JAXOPT_NOTES_KEEP_HOST_MEMORY=0``.

  This is not in the notes or in optax; it answers a cost measured in this library's
  end-to-end benchmark (the speed guide, "Page faults").

  Returns:
    ``True`` where the setting is in effect (glibc), ``False`` where nothing was changed.

  Examples:
    >>> import platform
    >>> import jaxopt_notes as jn
    >>> kept = jn.keep_freed_host_memory()
    >>> kept == (platform.libc_ver()[0] == "glibc")  # in effect exactly where glibc runs
    True
  """
  global _kept
  with _lock:
    if not _kept:
      libc = _glibc()
      if libc is None:
        return False
      _kept = all(libc.mallopt(option, value) == 1 for option, value in (
          (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)))
    return _kept


def keep_for_the_kernel() -> None:
  """What ``apply_step`` calls when it takes the kernel: once, unless the environment says no."""
  if not _kept and os.environ.get("JAXOPT_NOTES_KEEP_HOST_MEMORY", "1") != "0":
    keep_freed_host_memory()
