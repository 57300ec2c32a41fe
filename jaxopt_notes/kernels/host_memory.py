r"""Freed host memory kept for reuse: no page faults for XLA's temporaries every step.

Why. A jitted CPU step allocates its temporaries (one buffer of
``compiled.memory_analysis().temp_size_in_bytes``) when it starts and frees
them when it ends. glibc's ``malloc`` serves a block over its mmap threshold
(at most 32 MiB; and on a thread with an arena of its own, any block over
64 MiB) with a fresh ``mmap`` and unmaps it when it is freed, so every step
touches new pages: a page fault per 4 KiB, every step.
:func:`~jaxopt_notes.apply_step`'s kernel is a custom call, so the gradients
it reads are materialized as temporaries, where ``tx.update`` +
``apply_updates`` lets XLA fuse the last gradient operation into the update
loops. On a 13.7M-parameter MLP at batch 1 that is a 54.6 MB temporary and
13,341 faults a step: the fused step was 1.29-1.65x optax's end to end
although the optimizer alone takes 0.63x; on a 30M-parameter one 1.31x
(``benchmarks/bench_end_to_end.py``, the speed guide).

What. :func:`keep_freed_host_memory` sets three of glibc's ``mallopt``
parameters: ``M_ARENA_MAX = 1`` (threads started later share the main heap,
which has no 64 MiB limit), ``M_MMAP_MAX = 0`` (large blocks come from the
heap, not from an ``mmap`` of their own) and ``M_TRIM_THRESHOLD = 2**31 - 1``
(free memory at the top of the heap is not handed back below 2 GiB). The
process then reuses the memory it has freed: its resident size stays at its
peak, as with jemalloc or tcmalloc. It changes no number, and is
process-wide and one-way.

When. It only helps if it runs before JAX's CPU client starts its threads
(their arenas are made then); set afterwards, ``M_MMAP_MAX = 0`` sends blocks
over 64 MiB from those threads' arenas through a slower path (measured: a
30M-parameter step 4x slower). So ``import jaxopt_notes`` calls it when no
JAX backend is initialized yet (importing JAX does not initialize one), and
it changes nothing and returns ``False`` once one is.
``JAXOPT_NOTES_KEEP_HOST_MEMORY=0`` in the environment turns the call at
import off. Elsewhere than glibc (macOS, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import threading

from jax._src import xla_bridge

__all__ = ["keep_freed_host_memory"]

# glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))  # mallopt takes ints

_lock = threading.Lock()
_kept = False


def _glibc():
  try:
    libc = ctypes.CDLL(None)
  except OSError:
    return None
  return libc if hasattr(libc, "gnu_get_libc_version") else None


def keep_freed_host_memory() -> bool:
  r"""Keeps freed host memory in malloc's heap, so that jitted steps reuse their temporaries.

  Sets glibc's ``mallopt`` ``M_ARENA_MAX = 1``, ``M_MMAP_MAX = 0`` and
  ``M_TRIM_THRESHOLD = 2**31 - 1`` for the process, if no JAX backend is initialized yet
  (see :mod:`jaxopt_notes.kernels.host_memory` for why and for the measurements). A step's
  temporary buffer is then the same memory every step instead of freshly mapped pages, each
  first touched through a page fault; on a 13.7M-parameter MLP at batch 1 the fused step went
  from 1.29x optax's time end to end to 0.83x, on a 30M one from 1.31x to 0.67-0.76x. Numbers are
  unchanged; the process's resident memory stays at its peak. ``import jaxopt_notes`` calls
  it, unless ``JAXOPT_NOTES_KEEP_HOST_MEMORY=0``.

  Not in the notes or in optax: it answers a cost measured in this library's end-to-end
  benchmark (the speed guide, ``bench_end_to_end.py``).

  Returns:
    ``True`` where the setting is in effect; ``False`` where nothing was changed: not glibc,
    or a JAX backend already started (then set ``MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0
    MALLOC_TRIM_THRESHOLD_=2147483647`` in the environment before the process starts).

  Examples:
    >>> import platform
    >>> import jax.numpy as jnp
    >>> import jaxopt_notes as jn
    >>> _ = jnp.ones(3)  # a JAX backend is running now: too late to change anything
    >>> kept = jn.keep_freed_host_memory()  # True only if the import already set it
    >>> kept <= (platform.libc_ver()[0] == "glibc")
    True
  """
  global _kept
  with _lock:
    if not _kept and not xla_bridge.backends_are_initialized():
      libc = _glibc()
      if libc is not None:
        _kept = all(libc.mallopt(option, value) == 1 for option, value in _SETTINGS)
    return _kept


def keep_at_import() -> None:
  """What ``import jaxopt_notes`` calls: the setting, unless the environment says no."""
  if os.environ.get("JAXOPT_NOTES_KEEP_HOST_MEMORY", "1") != "0":
    keep_freed_host_memory()
