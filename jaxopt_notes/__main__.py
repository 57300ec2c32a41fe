"""``python -m jaxopt_notes``: the optimizer lab's command line (see :mod:`jaxopt_notes.lab.cli`)."""

import sys

from jaxopt_notes.lab.cli import main

if __name__ == "__main__":
  sys.exit(main())
