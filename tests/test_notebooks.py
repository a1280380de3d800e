"""The notebooks: each runs top to bottom in smoke mode and writes its report; outputs stay out of git."""

import json
import subprocess
import sys

import nbformat
import pytest

from colorkit import reproduce
from colorkit.report import REPORTS_ENV
from colorkit.runs import RUNS_ENV

NOTEBOOKS = reproduce.notebook_names()
EXPECTED = ["00_lab_color_space", "01_strided_cnn", "02_resnet18_basset_hound", "03_zhang_classification",
            "04_user_guided", "05_unet_gan", "06_compare"]


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory):
    """One runs folder for every notebook of the session: 06_compare then reuses the
    smoke runs the earlier notebooks trained, as it reuses their quick runs in `make demo`."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture
def kit_environment(monkeypatch, tmp_path, data_root, shared_runs):
    """Reports in a temporary folder, runs shared, data from the session's sample set, smoke scale."""
    monkeypatch.setenv(REPORTS_ENV, str(tmp_path / "reports"))
    monkeypatch.setenv(RUNS_ENV, str(shared_runs))
    monkeypatch.setenv("COLORKIT_DATA_ROOT", str(data_root))
    monkeypatch.setenv("COLORKIT_SMOKE", "1")
    return tmp_path


def test_every_report_has_its_notebook():
    assert [name for name in EXPECTED if name in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs_and_takes_parameters(name):
    notebook = nbformat.read(reproduce.NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert 'SCALE = "quick"' in notebook.cells[tagged[0]].source
    assert "experiments.notebook_scale(SCALE)" in notebook.cells[tagged[0] + 1].source
    assert notebook.cells[0].cell_type == "markdown"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_smoke_mode_and_writes_its_report(name, kit_environment):
    reproduce.run_notebook(name)
    folder = kit_environment / "reports" / name
    assert list(folder.glob("*.png")), f"{name} wrote no figure"
    assert list(folder.glob("*.md")) and list(folder.glob("*.csv")), f"{name} wrote no table"


def test_parameters_are_injected_after_the_parameters_cell():
    notebook = nbformat.read(reproduce.NOTEBOOKS_DIR / f"{NOTEBOOKS[0]}.ipynb", as_version=4)
    reproduce.inject_parameters(notebook, {"SCALE": "full", "DATA_ROOT": "/data"})
    tagged = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    injected = notebook.cells[tagged + 1]
    assert injected.metadata["tags"] == ["injected-parameters"]
    namespace = {}
    exec(notebook.cells[tagged].source + injected.source, namespace)
    assert namespace["SCALE"] == "full" and namespace["DATA_ROOT"] == "/data"


@pytest.mark.slow
def test_reproduce_command_runs_one_notebook_and_writes_the_index(kit_environment):
    result = subprocess.run([sys.executable, "-m", "colorkit", "reproduce", "lab_color_space", "--scale", "smoke"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    index = (kit_environment / "reports" / "README.md").read_text()
    assert "## 00_lab_color_space" in index and "(00_lab_color_space/lab_channels.png)" in index
    assert (kit_environment / "reports" / "00_lab_color_space" / "bins.md").exists()


def test_reproduce_refuses_unknown_notebooks_and_scales():
    for args, message in ((["no_such_notebook"], "no single notebook"), (["--scale", "huge"], "invalid choice")):
        result = subprocess.run([sys.executable, "-m", "colorkit", "reproduce", *args], capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
