"""Reproduce the course reports: run the notebooks, then index what they wrote.

Each notebook in ``notebooks/`` reproduces one report and writes its figures and
tables to ``reports/<notebook name>/``. ``reproduce`` executes notebooks
top to bottom with nbclient, as a student running every cell would, after
injecting parameters the way papermill does: a cell tagged ``parameters``
holds the defaults (``SCALE = "quick"`` ...), and a new cell right after it,
tagged ``injected-parameters``, overrides them. The executed copies are not
written back: the notebooks stay output-free in git, and ``reports/`` holds the
results. ``reports/README.md`` is then rewritten as an index of every report
folder's tables and figures.

Environment variables the notebooks honour (the tests set them to temporary
folders): ``COLORKIT_REPORTS_DIR`` (where reports go), ``COLORKIT_RUNS_DIR``
(where training runs go), ``COLORKIT_DATA_ROOT`` (where the sample set lives),
``COLORKIT_SMOKE=1`` (every notebook at the tiny ``smoke`` scale).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from pathlib import Path

from colorkit.errors import ColorkitError
from colorkit.experiments import SCALES
from colorkit.io import atomic_write_text
from colorkit.report import REPORTS_ENV, reports_root

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"
#: The longest a single notebook may run before nbclient gives up (a full-scale run can take days).
CELL_TIMEOUT_S = 7 * 24 * 3600
INDEX_TITLE = "# colorkit reports"
#: Terminal colour codes IPython puts in tracebacks.
_ANSI_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


def notebook_names() -> list[str]:
    """Every notebook's name (file stem), in run order (their numbers)."""
    return sorted(path.stem for path in NOTEBOOKS_DIR.glob("*.ipynb"))


def _checked_names(names) -> list[str]:
    known = notebook_names()
    if not names:
        return known
    chosen = []
    for name in names:
        matches = [k for k in known if k == name or k.startswith(f"{name}_") or k.split("_", 1)[-1] == name]
        if len(matches) != 1:
            raise ColorkitError(f"no single notebook matches {name!r}; the notebooks are: {', '.join(known)}")
        chosen.append(matches[0])
    return chosen


def parameter_cell_source(parameters: dict) -> str:
    """Python assignments of ``parameters`` (literal values, as papermill writes them)."""
    return "# Parameters injected by `python -m colorkit reproduce`\n" + "".join(
        f"{name} = {value!r}\n" for name, value in parameters.items()
    )


def inject_parameters(notebook, parameters: dict):
    """Insert an ``injected-parameters`` cell after the cell tagged ``parameters``."""
    import nbformat

    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ColorkitError("a notebook needs exactly one cell tagged 'parameters' to take parameters")
    cell = nbformat.v4.new_code_cell(parameter_cell_source(parameters), metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(tagged[0] + 1, cell)
    return notebook


@contextlib.contextmanager
def _environment(**values):
    """Set environment variables for the kernel (it inherits them), then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update({name: str(value) for name, value in values.items() if value is not None})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_notebook(name: str, parameters: dict | None = None, timeout: int = CELL_TIMEOUT_S):
    """Execute ``notebooks/<name>.ipynb`` in a fresh kernel (working folder: notebooks/);
    returns the executed notebook. A failing cell raises ``ColorkitError`` naming it."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    if parameters:
        inject_parameters(notebook, parameters)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    try:
        # the kernel's own stderr carries only ipykernel's start-up notices (cell errors come back
        # through the client), so it is dropped to keep `make demo` quiet
        client.execute(stderr=subprocess.DEVNULL)
    except CellExecutionError as error:
        message = _ANSI_COLOURS.sub("", str(error)).strip()
        raise ColorkitError(f"notebook {name} failed: {message.splitlines()[-1] if message else 'a cell raised'}") from error
    return notebook


def _links(folder: Path, pattern: str, root: Path) -> list[str]:
    return [f"[{path.name}]({path.relative_to(root).as_posix()})" for path in sorted(folder.glob(pattern))]


def write_index(root: Path | None = None) -> Path:
    """``reports/README.md``: one section per report folder, linking its tables and figures."""
    root = root or reports_root()
    lines = [INDEX_TITLE, "", "Written by `python -m colorkit reproduce` (`make demo`); one folder per notebook.", ""]
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        tables, figures = _links(folder, "*.md", root), _links(folder, "*.png", root)
        if not tables and not figures:
            continue
        lines += [f"## {folder.name}", ""]
        lines += [f"- tables: {', '.join(tables)}"] if tables else []
        lines += [f"- figures: {', '.join(figures)}"] if figures else []
        lines += [""]
    return atomic_write_text(root / "README.md", "\n".join(lines))


def reproduce(names=None, scale: str = "quick", data_root=None) -> Path:
    """Run the chosen notebooks (default: all) at ``scale``, then write the index.

    ``data_root``: the folder holding the reports' datasets (for ``full``); each
    notebook says which sub-folders it expects. Prints one line per notebook."""
    if scale not in SCALES:
        raise ColorkitError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    if data_root is not None and not Path(data_root).is_dir():
        raise ColorkitError(f"--data-root {data_root} is not a folder")
    chosen = _checked_names(names)
    if not chosen:
        raise ColorkitError(f"no notebooks found in {NOTEBOOKS_DIR}")
    parameters = {"SCALE": scale, "DATA_ROOT": None if data_root is None else str(Path(data_root).resolve())}
    with _environment(**{REPORTS_ENV: str(reports_root().resolve())}):
        for name in chosen:
            started = time.perf_counter()
            print(f"running {name} ({scale}) ...", flush=True)
            run_notebook(name, parameters)
            print(f"  {name} done in {time.perf_counter() - started:.0f} s; reports in {reports_root() / name}", flush=True)
    return write_index()
