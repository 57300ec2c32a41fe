"""The lab's guide page shows what the lab prints: each output block there is run and compared.

docs/guides/lab.md puts each shown run between ``<!-- lab-output:start -->`` and
``<!-- lab-output:end -->``: a console block whose first line is the command. The
test runs that command and checks the optimizer names, the steps-to-tolerance
column and the "first below" line exactly, and the floats to a tolerance (their
last digits can differ between machines).
"""

from __future__ import annotations

import pathlib
import re
import shlex

import pytest

from jaxopt_notes.lab.cli import main

PAGE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "guides" / "lab.md"
BLOCK = re.compile(r"<!-- lab-output:start -->\s*```console\n(.*?)```\s*<!-- lab-output:end -->", re.S)
PROGRAM = "$ python -m jaxopt_notes"


def _blocks() -> list[tuple[str, list[str]]]:
  """``(arguments, shown output lines)`` for every marked block of the page."""
  blocks = []
  for body in BLOCK.findall(PAGE.read_text()):
    command, *output = body.rstrip("\n").split("\n")
    assert command.startswith(PROGRAM), command
    blocks.append((command[len(PROGRAM):].strip(), output))
  return blocks


def test_the_page_shows_the_default_run_between_markers():
  blocks = _blocks()
  assert "" in [args for args, _ in blocks], "no block shows plain `python -m jaxopt_notes`"
  assert PAGE.read_text().count("<!-- lab-output:start -->") == len(blocks)


def _split(lines: list[str]):
  """The shown or printed lines as (header, table rows by name, the other lines)."""
  head = next(i for i, line in enumerate(lines) if line.startswith("optimizer"))
  end = next(i for i, line in enumerate(lines) if line.startswith("first below"))
  rows = {line.split()[0]: line.split()[1:] for line in lines[head + 1:end]}
  return lines[:head + 1], rows, lines[end:]


def _close(shown: str, real: str) -> bool:
  if shown in ("-", "diverged") or real in ("-", "diverged"):
    return shown == real
  # Printed with 4 significant digits (.3e) or 4 decimals: allow a few units of the last one.
  return float(shown) == pytest.approx(float(real), rel=2e-2, abs=2e-4)


@pytest.mark.parametrize("args,shown", _blocks(), ids=[args or "default" for args, _ in _blocks()])
def test_the_shown_output_is_what_the_lab_prints(args, shown, tmp_path, monkeypatch, capsys):
  # From an empty folder, so the figures line reads ./lab-output as on the page.
  monkeypatch.chdir(tmp_path)
  assert main(shlex.split(args)) == 0
  real = capsys.readouterr().out.rstrip("\n").split("\n")
  shown_head, shown_rows, shown_tail = _split(shown)
  real_head, real_rows, real_tail = _split(real)
  assert shown_head == real_head
  assert list(shown_rows) == list(real_rows)
  for name, cells in real_rows.items():
    final, distance, steps = shown_rows[name]
    assert steps == cells[2], (name, steps, cells)
    assert _close(final, cells[0]) and _close(distance, cells[1]), (name, shown_rows[name], cells)
  # The "first below" conclusion and the figures written, word for word.
  assert shown_tail == real_tail
