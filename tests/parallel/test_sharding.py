"""Sharded optimizer state, run on 8 simulated CPU devices in subprocesses.

JAX fixes the number of CPU devices when it starts its backend, which the
other test modules of this pytest process have already done with one device.
So the cases live in tests/_sharded_cases.py and each group runs there in a
fresh interpreter started with ``--xla_force_host_platform_device_count=8``;
a group passes only if every one of its cases ran and passed.
"""

import os
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests import _every

CASES = pathlib.Path(__file__).with_name("_sharded_cases.py")
ROOT = CASES.parent.parent
TIMEOUT_S = 300


def run_sharded_cases(selector: str, tmp_path: pathlib.Path) -> dict[str, int]:
  """Runs ``_sharded_cases.py::selector`` on 8 CPU devices; returns the junit counts."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = (
      env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  ).strip()
  env["JAX_PLATFORMS"] = "cpu"
  report = tmp_path / "report.xml"
  cmd = [
      sys.executable, "-m", "pytest", f"{CASES}::{selector}", "-q",
      "-p", "no:cacheprovider", "-p", "no:xdist", f"--junitxml={report}",
  ]
  try:
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
  except subprocess.TimeoutExpired as err:
    pytest.fail(f"{selector} did not finish in {TIMEOUT_S} s:\n{err.stdout or ''}"[-4000:])
  output = (proc.stdout + proc.stderr)[-6000:]
  assert report.exists(), f"no report from the subprocess (exit {proc.returncode}):\n{output}"
  suite = ET.parse(report).getroot()
  suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
  counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
  assert proc.returncode == 0, f"{selector}: {counts}\n{output}"
  return counts


@pytest.mark.parametrize(
    "selector, at_least",
    [
        # 17 optimizers x eager/jit x auto/explicit mesh, and 6 more.
        ("TestPlacement", 17 * 4 + 6),
        # 17 optimizers' steps and 2 meshes for clip_by_global_norm.
        ("TestCommunication", 17 + 2),
        ("TestZero1", 12),
        # Every optimizer of tests/_every.py, on an auto and an explicit mesh.
        ("TestEveryOptimizerInit", 2 * len(_every.ALL)),
    ],
)
def test_sharded_cases(selector, at_least, tmp_path):
  """Every case of the group ran on 8 devices and passed, none skipped."""
  counts = run_sharded_cases(selector, tmp_path)
  assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
  assert counts["tests"] >= at_least, counts
