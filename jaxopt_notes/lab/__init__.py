"""The teaching lab: the notes' test problems, series, plots and the CLI.

``problems`` (the loss surfaces and optimizer comparisons), ``series`` (EMA
of temperatures, minibatch gradient noise), ``plots`` (matplotlib figures)
and ``cli`` (``python -m jaxopt_notes``). ``from jaxopt_notes import lab``
gives the problems' names directly (``lab.compare``, ``lab.trajectory``).

May import: anything in jaxopt_notes.
"""

from jaxopt_notes.lab.problems import *  # noqa: F401,F403
from jaxopt_notes.lab.problems import __all__  # noqa: F401
