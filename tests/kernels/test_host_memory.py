"""keep_freed_host_memory: a jitted step's large temporary stops costing page faults every step.

Each case runs in a fresh process (the setting is process-wide and one-way) and counts the
minor page faults per call of a jitted function whose temporary (48 MB: the running sums) is over
glibc's largest mmap threshold, before and after the kernel path (or the direct call).
"""

import json
import os
import platform
import subprocess
import sys

import pytest

import jaxopt_notes as jn
from jaxopt_notes.kernels import host_memory

_SCRIPT = r"""
import json, resource, sys
import jax, jax.numpy as jnp
import jaxopt_notes as jn
from jaxopt_notes.kernels import host_memory

x = jnp.arange(6_000_000, dtype=jnp.float32)
f = jax.jit(lambda x: jnp.cumsum(x * 2.0)[-8:])
temp = f.lower(x).compile().memory_analysis().temp_size_in_bytes

def faults(calls=20):
  for _ in range(20):  # the heap settles in a few calls
    f(x).block_until_ready()
  start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(calls):
    f(x).block_until_ready()
  return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / calls

out = {"temp": temp, "before": faults()}
tx = jn.sgd(0.1, momentum=0.9)
params = {"w": jnp.ones(4)}
jax.jit(lambda p, s: jn.apply_step(tx, p, s, p, fused=True))(params, tx.init(params))
out["after_kernel"] = faults()
out["kept_by_kernel"] = host_memory._kept
out["direct"] = jn.keep_freed_host_memory()
out["after_direct"] = faults()
print(json.dumps(out))
"""


def _run(**env):
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300,
                        env={**os.environ, "JAX_PLATFORMS": "cpu", **env})
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or not jn.fused_status().available,
                                reason="glibc's malloc and the built kernel (Linux CI has both)")


def test_the_kernel_path_keeps_freed_memory_and_the_faults_drop():
  """Once the heap has settled (20 calls) most calls reuse its memory: measured 0-5% of the
  faults, 30% at worst after 3 calls."""
  got = _run()
  assert got["temp"] > 40 * 2**20  # over glibc's largest mmap threshold (32 MiB)
  assert got["before"] > 5000  # ~one fault per 4 KiB page of the 48 MB temporary, every call
  assert got["kept_by_kernel"] is True
  assert got["after_kernel"] < got["before"] / 3
  assert got["direct"] is True


def test_the_environment_turns_it_off_and_the_direct_call_still_works():
  got = _run(JAXOPT_NOTES_KEEP_HOST_MEMORY="0")
  assert got["kept_by_kernel"] is False
  assert got["after_kernel"] > 5000
  assert got["direct"] is True and got["after_direct"] < got["before"] / 3


def test_without_glibc_nothing_changes(monkeypatch):
  monkeypatch.setattr(host_memory, "_kept", False)
  monkeypatch.setattr(host_memory, "_glibc", lambda: None)
  assert jn.keep_freed_host_memory() is False
  assert host_memory._kept is False
