"""keep_freed_host_memory: a jitted step's large temporaries stop costing page faults every step.

Each case runs in a fresh process (the setting is process-wide, one-way, and only taken before
a JAX backend starts) and counts the minor page faults per call of jitted functions whose
temporaries are over glibc's mmap thresholds: 48 MB (over 32 MiB) and 96 MB (over the 64 MiB
of a thread's own arena), with the setting made by ``import jaxopt_notes`` and without it.
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
if sys.argv[1] == "jax-first":  # a backend running before the import: nothing may change
  import jax.numpy as jnp
  jnp.ones(3).block_until_ready()
import jax, jax.numpy as jnp
import jaxopt_notes as jn
from jaxopt_notes.kernels import host_memory

out = {"kept_at_import": host_memory._kept}
for n in (6_000_000, 12_000_000):
  x = jnp.arange(n, dtype=jnp.float32)
  f = jax.jit(lambda x: jnp.cumsum(x * 2.0)[-8:])
  out[f"temp_{n}"] = f.lower(x).compile().memory_analysis().temp_size_in_bytes
  for _ in range(20):  # the heap settles in a few calls
    f(x).block_until_ready()
  start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(20):
    f(x).block_until_ready()
  out[f"faults_{n}"] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 20
out["direct"] = jn.keep_freed_host_memory()  # with a backend running: only says what is in effect
print(json.dumps(out))
"""


def _run(mode="import", **env):
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, timeout=300,
                        env={**os.environ, "JAX_PLATFORMS": "cpu", **env})
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc (Linux CI has it)")


@pytest.fixture(scope="module")
def without():
  got = _run(JAXOPT_NOTES_KEEP_HOST_MEMORY="0")
  assert got["kept_at_import"] is False and got["direct"] is False  # too late once a backend runs
  return got


@pytest.mark.parametrize("n", [6_000_000, 12_000_000], ids=["48MB", "96MB"])
def test_glibcs_defaults_fault_on_every_page_every_call(without, n):
  assert without[f"temp_{n}"] >= 8 * n  # over glibc's mmap thresholds
  assert without[f"faults_{n}"] > 0.8 * without[f"temp_{n}"] / 4096


@pytest.fixture(scope="module")
def with_setting():
  got = _run()
  assert got["kept_at_import"] is True and got["direct"] is True
  return got


@pytest.mark.parametrize("n", [6_000_000, 12_000_000], ids=["48MB", "96MB"])
def test_set_at_import_the_faults_go(without, with_setting, n):
  """Measured: 0-20% of glibc's faults on the 48 MB temporary, 0 on the 96 MB one."""
  assert with_setting[f"faults_{n}"] < without[f"faults_{n}"] / 3


def test_after_a_backend_started_nothing_changes():
  got = _run("jax-first")
  assert got["kept_at_import"] is False and got["direct"] is False
  assert got["faults_12000000"] > 0.8 * got["temp_12000000"] / 4096


def test_without_glibc_nothing_changes(monkeypatch):
  monkeypatch.setattr(host_memory, "_kept", False)
  monkeypatch.setattr(host_memory.xla_bridge, "backends_are_initialized", lambda: False)
  monkeypatch.setattr(host_memory, "_glibc", lambda: None)
  assert jn.keep_freed_host_memory() is False
  assert host_memory._kept is False
