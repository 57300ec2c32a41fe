"""Every ```python block of README.md, CONTRIBUTING.md and the docs pages runs as written.

A reader copies a page's snippets in order into one session, so the test does the same: it
joins a page's python blocks (```python fences and MyST ``{code-block} python`` directives,
also inside admonitions) into one script and runs it in a fresh interpreter with a temporary
working directory. Shell commands and outputs belong in ```bash / ```console / ```text fences,
which are not run. Generated folders (the API reference, the lab's figures, the copied
notebooks, a local build) are left out: nothing there is written by hand.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

import jaxopt_notes

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATED = ("_build", "_generated", "api", "notebooks")
TIMEOUT_S = 300
PYTHON_LANGS = {"python", "python3", "py", "ipython", "ipython3"}
# Directives whose body is code or data, not markdown: fences inside them are not blocks.
LITERAL_DIRECTIVES = {"code-block", "code", "sourcecode", "code-cell", "literalinclude", "math", "eval-rst", "raw",
                      "mermaid", "graphviz", "csv-table", "toctree", "autosummary"}
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,}|:{3,})\s*(?P<info>.*?)\s*$")
_OPTION = re.compile(r"^:[\w-]+:")


def pages() -> list[pathlib.Path]:
  """README.md, CONTRIBUTING.md (when there is one) and the hand-written docs pages."""
  found = [p for p in (ROOT / "README.md", ROOT / "CONTRIBUTING.md") if p.exists()]
  for path in sorted(DOCS.rglob("*.md")):
    if path.relative_to(DOCS).parts[0] not in GENERATED:
      found.append(path)
  return found


def _language(info: str) -> tuple[str | None, str]:
  """(directive name or None, language) of a fence's info string."""
  m = re.match(r"\{([\w-]+)\}\s*(\S*)", info)
  if m:
    return m.group(1), m.group(2).lower()
  return None, (info.split() or [""])[0].lower()


def _body(lines: list[str]) -> list[str]:
  """A directive's content without its ``:option:`` lines or ``---`` option block."""
  if lines and lines[0].strip() == "---":
    end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), 0)
    return lines[end + 1:]
  i = 0
  while i < len(lines) and _OPTION.match(lines[i].strip()):
    i += 1
  while 0 < i < len(lines) and not lines[i].strip():
    i += 1
  return lines[i:]


def python_blocks(text: str, first_line: int = 1) -> list[tuple[int, str]]:
  """(line of the block's first code line, code) for each python block of a markdown text, in order."""
  lines = text.splitlines()
  blocks: list[tuple[int, str]] = []
  i = 0
  while i < len(lines):
    m = _FENCE.match(lines[i])
    if not m or m.group("fence")[0] == ":" and not m.group("info"):
      i += 1
      continue
    fence, indent, info = m.group("fence"), len(m.group("indent")), m.group("info")
    close = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    end = i + 1
    while end < len(lines) and not close.match(lines[end]):
      end += 1
    content = [line[min(indent, len(line) - len(line.lstrip(" "))):] for line in lines[i + 1:end]]
    directive, lang = _language(info)
    if lang in PYTHON_LANGS and directive in (None, "code-block", "code", "sourcecode", "code-cell"):
      body = content if directive is None else _body(content)
      blocks.append((first_line + i + 1 + len(content) - len(body), "\n".join(body)))
    elif directive is not None and directive not in LITERAL_DIRECTIVES:
      blocks.extend(python_blocks("\n".join(content), first_line + i + 1))
    i = end + 1
  return blocks


def _script(blocks: list[tuple[int, str]]) -> tuple[str, list[tuple[int, int]]]:
  """The joined script and, per block, (its first script line, its first page line)."""
  parts, starts, line = [], [], 1
  for page_line, code in blocks:
    parts.append(f"# --- page line {page_line}")
    starts.append((line + 1, page_line))
    parts.append(code)
    line += 1 + len(code.split("\n"))
  return "\n".join(parts) + "\n", starts


def _page_line(stderr: str, script: pathlib.Path, starts: list[tuple[int, int]]) -> int | None:
  """The page line of the script's last frame in a traceback."""
  hits = re.findall(rf'File "{re.escape(str(script))}", line (\d+)', stderr)
  if not hits:
    return None
  n = int(hits[-1])
  script_start, page_start = max((s for s in starts if s[0] <= n), default=starts[0])
  return page_start + n - script_start


def _text(output: str | bytes | None) -> str:
  return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


PAGES = {str(p.relative_to(ROOT)): p for p in pages()}
WITH_BLOCKS = [name for name, path in PAGES.items() if python_blocks(path.read_text(encoding="utf-8"))]


def test_extraction_finds_the_pages_blocks():
  """README and at least five docs pages have python blocks, so the test below is not vacuous."""
  assert "README.md" in WITH_BLOCKS, "no ```python block found in README.md"
  docs_pages = [name for name in WITH_BLOCKS if name.startswith("docs")]
  assert len(docs_pages) >= 5, f"python blocks found on only {docs_pages}"


def test_extraction_reads_myst_forms():
  text = "\n".join([
      "```python", "a = 1", "```",
      "```bash", "python -c 'raise SystemExit(1)'", "```",
      "````{note}", "```python", "b = a", "```", "````",
      "  ```python", "  c = b", "  ```",
      "```{code-block} python", ":caption: x", "", "d = c", "```",
      "~~~py", "e = d", "~~~",
      "```{code-block} text", "not python", "```",
      "```text", "```python", "```",
  ])
  codes = [code.strip() for _, code in python_blocks(text)]
  assert codes == ["a = 1", "b = a", "c = b", "d = c", "e = d"]
  lines = text.splitlines()
  for line, code in python_blocks(text):
    assert lines[line - 1].strip() == code.splitlines()[0].strip()


@pytest.mark.parametrize("name", WITH_BLOCKS)
def test_page_python_blocks_run(name, tmp_path):
  """The page's python blocks, joined in order, run in a fresh interpreter without an error."""
  blocks = python_blocks(PAGES[name].read_text(encoding="utf-8"))
  code, starts = _script(blocks)
  script = tmp_path / "page_blocks.py"
  script.write_text(code, encoding="utf-8")
  env = dict(os.environ)
  # The interpreter imports the jaxopt_notes this test imports, installed or not; no figure window opens.
  package_root = str(pathlib.Path(jaxopt_notes.__file__).resolve().parent.parent)
  env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
  env["MPLBACKEND"] = "Agg"
  for variable in ("XLA_FLAGS", "JAX_ENABLE_X64", "JAX_PLATFORMS", "JAXOPT_NOTES_FUSED"):
    env.pop(variable, None)  # a page starts from a user's defaults and sets what it needs itself
  try:
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT_S, check=False)
  except subprocess.TimeoutExpired as e:
    pytest.fail(f"{name}: its {len(blocks)} python blocks did not finish within {TIMEOUT_S} s; stderr ends:\n"
                f"{_text(e.stderr)[-3000:]}", pytrace=False)
  line = _page_line(result.stderr, script, starts)
  where = f" (the error is raised from {name} line {line})" if line else ""
  if result.returncode != 0:
    pytest.fail(f"{name}: its {len(blocks)} python blocks failed{where}; stderr ends:\n{result.stderr[-3000:]}",
                pytrace=False)
