"""A writer process for the checkpoint kill test: overwrites one step for ever.

A ``forkserver`` preloads this module (and with it jax and orbax), so each
writer the test kills starts in a fraction of a second instead of importing
JAX again.
"""

import jaxopt_notes as jn
from jaxopt_notes.training import checkpoint as ckpt

STEP = 3


def optimizer():
  return jn.sgd(0.1, momentum=0.9)


def overwrite_forever(directory, versions):
  """Saves ``versions`` (numpy ``(params, opt_state)`` pairs) over ``STEP`` in turn."""
  i = 0
  while True:
    params, state = versions[i % len(versions)]
    ckpt.save_checkpoint(directory, STEP, params, state, overwrite=True)
    i += 1
