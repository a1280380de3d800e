"""The notebooks: each runs top to bottom in smoke mode and writes its report; outputs stay out of git."""

import subprocess
import sys

import nbformat
import numpy as np
import pytest

from colorkit import experiments, reproduce, runs
from colorkit.report import REPORTS_ENV
from colorkit.runs import RUNS_ENV
from colorkit.training.setup import build_model

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


# --- The architecture cells a student edits ---------------------------------------------------------

#: notebook -> (its experiment, the variants it trains with its architecture function: overrides of the recipe)
ARCHITECTURES = {
    "01_strided_cnn": ("strided_cnn_dogs", [{}, {"model_options": {"output_activation": "relu"}}]),
    "02_resnet18_basset_hound": ("resnet18_basset_hound", [{}, {"model_options": {"upsample": "transposed"}}]),
    "03_zhang_classification": ("zhang_classification", [{}, {"loss": "mse", "model_options": {"head": "regression"}}]),
    "04_user_guided": ("user_guided", [{}]),
    "05_unet_gan": ("unet_gan", [{}, {"model_options": {"fusion": True}}]),
}


def architecture_function(name):
    """``build_architecture`` as the notebook's cell tagged "architecture" defines it, run on its own."""
    notebook = nbformat.read(reproduce.NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    tagged = [cell for cell in notebook.cells if "architecture" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name} needs exactly one cell tagged 'architecture'"
    namespace = {}
    exec(compile(tagged[0].source, f"{name}: architecture cell", "exec"), namespace)
    return namespace["build_architecture"]


def quick_config(experiment, overrides):
    config = experiments.experiment_config(experiment, "quick")
    if "model_options" in overrides:
        overrides = {**overrides, "model_options": {**config.model_options, **overrides["model_options"]}}
    return config.replace(**overrides)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_the_architecture_cell_builds_the_packages_model(name):
    """The cell a student edits is, unedited, the package's builder at the notebook's quick
    configuration: the same layers in order with the same output shapes and parameter count,
    the same fingerprint (so notebook 06, which builds with the package, reuses the notebook's
    runs) and the same initial weights (so whichever trains a run first, it is the same run)."""
    experiment, variants = ARCHITECTURES[name]
    build_architecture = architecture_function(name)
    for overrides in variants:
        config = quick_config(experiment, overrides)
        ours, package = build_architecture(config), build_model(config)
        assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in package.layers]
        assert [tuple(layer.output.shape) for layer in ours.layers] == [tuple(layer.output.shape) for layer in package.layers]
        assert [tensor.name for tensor in ours.inputs] == [tensor.name for tensor in package.inputs]
        assert ours.count_params() == package.count_params()
        assert runs.fingerprint(ours) == runs.fingerprint(package)
        ours_weights, package_weights = ours.get_weights(), package.get_weights()
        assert len(ours_weights) == len(package_weights)
        for mine, theirs in zip(ours_weights, package_weights):
            np.testing.assert_array_equal(mine, theirs)


def test_an_edited_architecture_cell_builds_another_model():
    """The test above could not tell a copy of the package's builder from a cell that ignores its
    edits: an edit of the cell's code must change the model."""
    notebook = nbformat.read(reproduce.NOTEBOOKS_DIR / "01_strided_cnn.ipynb", as_version=4)
    (cell,) = [cell for cell in notebook.cells if "architecture" in cell.metadata.get("tags", [])]
    edited = cell.source.replace('x = conv(x, n(64), "conv9", init)', 'x = conv(x, n(96), "conv9", init)')
    assert edited != cell.source
    namespace = {}
    exec(edited, namespace)
    config = quick_config("strided_cnn_dogs", {})
    changed = namespace["build_architecture"](config)
    assert runs.fingerprint(changed) != runs.fingerprint(build_model(config))
    assert changed.get_layer("conv9").filters == round(96 * config.model_options.get("width", 1.0))


# --- Zhang et al.'s released models in notebooks 03 and 04, when their weights are present --------------


@pytest.fixture(scope="session")
def released_weights(tmp_path_factory):
    """Random-weight files in the released models' format (the reference PyTorch networks with
    ``pretrained=False``, saved by ``torch.save``): the weights cannot be downloaded here, but the
    notebooks' path that uses them can run."""
    torch = pytest.importorskip("torch")
    colorizers = pytest.importorskip("colorizers")
    folder = tmp_path_factory.mktemp("released")
    paths = {}
    for name, build in (("ECCV16_WEIGHTS", colorizers.eccv16), ("SIGGRAPH17_WEIGHTS", colorizers.siggraph17)):
        torch.manual_seed(0)
        paths[name] = str(folder / f"{name.lower()}.pth")
        torch.save(build(pretrained=False).state_dict(), paths[name])
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("name, figure", [("03_zhang_classification", "released_temperature_strip.png"),
                                          ("04_user_guided", "released_poster_comparison.png")])
def test_notebooks_use_the_released_models_when_their_weights_are_given(name, figure, released_weights,
                                                                        kit_environment):
    parameters = {key: value for key, value in released_weights.items()
                  if key != "SIGGRAPH17_WEIGHTS" or name.startswith("04")}
    executed = reproduce.run_notebook(name, parameters)
    assert (kit_environment / "reports" / name / figure).exists()
    said = "".join(output.get("data", {}).get("text/markdown", "") for cell in executed.cells
                   for output in cell.get("outputs", []))
    assert "is not on this machine" not in said and "are not on this machine" not in said
