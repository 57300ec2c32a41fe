"""Builds the optional fused-step kernel (jaxopt_notes/kernels/step_kernels.cc).

Everything else is in pyproject.toml. The kernel is compiled against the XLA FFI
headers that ship inside jaxlib (a build requirement, fetched from the package
registry). Without a C++ compiler the install still succeeds: the extension is
optional, and jaxopt_notes then runs every step on its pure-JAX path
(``jaxopt_notes.fused_status()`` says which).
"""

import importlib.util
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildKernels(build_ext):
  """Adds jaxlib's include directory; skips the kernel instead of failing."""

  def build_extensions(self):
    spec = importlib.util.find_spec("jaxlib")
    include = os.path.join(os.path.dirname(spec.origin), "include") if spec and spec.origin else None
    if include is None or not os.path.exists(os.path.join(include, "xla", "ffi", "api", "ffi.h")):
      print("jaxopt_notes: jaxlib's XLA FFI headers not found; fused kernels not built")
      return
    for ext in self.extensions:
      ext.include_dirs.append(include)
    super().build_extensions()


setup(
    ext_modules=[
        Extension(
            "jaxopt_notes.kernels._step_kernels",
            sources=["jaxopt_notes/kernels/step_kernels.cc"],
            depends=["jaxopt_notes/kernels/step_rules.h"],
            language="c++",
            extra_compile_args=["-O3", "-std=c++17", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"],
            extra_link_args=["-lstdc++"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildKernels},
)
