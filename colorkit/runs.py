"""The run folder: what one training run leaves on disk, and how to read it back.

    RUN/config.json        every hyper-parameter, package versions, git commit, data counts, the model's fingerprint
    RUN/split.json         the split manifest (which file went where)
    RUN/prior.npy          the training pixels' colour prior over the ab bins (rebalancing, rebalanced AuC)
    RUN/checkpoints/       best.keras and last.keras (fit) or tf.train checkpoints and generator.keras (GAN);
                           colorizer.keras: the model with its decode step, ready for inference
    RUN/backup/            the state a killed fit run resumes from
    RUN/history.csv        one row per epoch (fit) or per step (GAN)
    RUN/logs/              TensorBoard
    RUN/samples/           colorizations of a fixed validation batch, every few epochs

Training writes these (``colorkit.training``); inference and evaluation read
them through this module, so they never import the training code.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from colorkit.errors import ColorkitError
from colorkit.experiments import TrainConfig
from colorkit.io import atomic_path, atomic_write_text

#: Environment variable naming the folder that holds run folders (default: the repository's runs/).
RUNS_ENV = "COLORKIT_RUNS_DIR"
#: The trained model of a run, best first (a GAN keeps its generator).
MODEL_FILES = ("checkpoints/best.keras", "checkpoints/generator.keras", "checkpoints/last.keras")
#: The trained model with its decode step (written when the two differ: Zhang's classification head).
COLORIZER_FILE = "checkpoints/colorizer.keras"
SUBFOLDERS = ("checkpoints", "samples", "logs")


# --- Where runs go ------------------------------------------------------------------------------


def runs_root() -> Path:
    """Where runs go when no ``out`` is given: ``$COLORKIT_RUNS_DIR`` or the repository's ``runs/``."""
    return Path(os.environ.get(RUNS_ENV) or Path(__file__).resolve().parents[1] / "runs")


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return runs_root() / f"{config.model}-{stamp}"


def experiment_run_dir(name: str, scale: str, variant: str | None = None) -> Path:
    """``runs/<scale>/<name>[-<variant>]``: where a report experiment's run lives, so
    every notebook (and 06_compare) finds the same one."""
    return runs_root() / scale / (f"{name}-{variant}" if variant else name)


# --- Starting or continuing a run ---------------------------------------------------------------


def resolve(config: TrainConfig, resume: bool) -> tuple[Path, TrainConfig]:
    """The run folder and the config to train with; touches nothing on disk.

    A folder holding a run is only reused with ``resume``; its saved config then
    wins over ``config`` except for ``epochs`` (so a finished run can be extended)."""
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    if (run_dir / "config.json").exists():
        if not resume:
            raise ColorkitError(f"{run_dir} already holds a run: pass --resume to continue it or choose another --out")
        config = read_config(run_dir).replace(epochs=config.epochs)
    elif resume:
        raise ColorkitError(f"nothing to resume: {run_dir / 'config.json'} does not exist")
    return run_dir, config.replace(out=str(run_dir))


def create(run_dir: Path) -> None:
    """The run folder and its sub-folders."""
    for sub in SUBFOLDERS:
        (Path(run_dir) / sub).mkdir(parents=True, exist_ok=True)


def environment_info() -> dict:
    """Package versions and the git commit, so a result can be traced to its code."""
    import keras
    import matplotlib
    import pandas
    import PIL
    import skimage
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scikit-image": skimage.__version__,
        "matplotlib": matplotlib.__version__,
        "pandas": pandas.__version__,
        "pillow": PIL.__version__,
        "git_commit": _git_commit(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_config(run_dir: Path, config: TrainConfig, split: dict, model=None) -> None:
    """``config.json``: the configuration, the environment, the data's counts and,
    given the model, its fingerprint (see ``fingerprint``) and parameter count."""
    record = {
        "config": config.to_dict(),
        "environment": environment_info(),
        "data": {"dataset": config.dataset, "root": config.root, "counts": {k: len(v) for k, v in split.items()}},
        "split_manifest": "split.json",
    }
    if model is not None:
        record["model"] = {"fingerprint": fingerprint(model), "parameters": int(model.count_params())}
    atomic_write_text(Path(run_dir) / "config.json", json.dumps(record, indent=2))


def read_record(run_dir) -> dict:
    """Everything ``config.json`` holds."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise ColorkitError(f"{run_dir} is not a run folder: {path} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ColorkitError(f"{path} is not a readable run configuration: {error}") from None


def read_config(run_dir) -> TrainConfig:
    """The ``TrainConfig`` saved in a run folder."""
    return TrainConfig.from_dict(read_record(run_dir)["config"])


# --- Is the run on disk the one asked for? -------------------------------------------------------


def fingerprint(model) -> str:
    """A hash of the model's architecture: every layer's class and configuration
    in order, without names and random seeds (which differ between two builds of
    the same architecture). An edited architecture gets a different fingerprint."""

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in sorted(value.items()) if k not in ("name", "seed")}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    layers = [[type(layer).__name__, plain(layer.get_config())] for layer in model.layers]
    text = json.dumps(layers, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(run_dir, config: TrainConfig, model=None) -> list[str]:
    """How the run in ``run_dir`` differs from ``config`` (and ``model``'s architecture):
    one short phrase per difference; empty when it is the run asked for. ``out`` does
    not count, nor more ``epochs`` than the run's (a shorter run is continued), but
    fewer do: a run trained further than asked is not the run asked for."""
    record = read_record(run_dir)
    saved = TrainConfig.from_dict(record["config"]).to_dict()
    asked = config.to_dict()
    found = [f"{key} {saved[key]!r} -> {asked[key]!r}" for key in asked
             if key not in ("epochs", "out") and saved.get(key) != asked[key]]
    if saved["epochs"] > asked["epochs"]:
        found.append(f"epochs {saved['epochs']} -> {asked['epochs']}")
    if model is not None and record.get("model", {}).get("fingerprint") != fingerprint(model):
        found.append("the model's architecture")
    return found


# --- The data a run was trained on -------------------------------------------------------------


def load_split(config: TrainConfig) -> dict:
    """The run's train/val/test file lists (the sample set is built if missing)."""
    from colorkit.data import sources

    return sources.load_split(config.dataset, config.root, seed=config.seed, **config.dataset_options)


def prior(run_dir: Path, config: TrainConfig, split: dict, bins) -> np.ndarray:
    """The empirical prior over the ab bins from the training pixels (``split["train"]``:
    paths or probed files), computed once and kept in the run folder for resuming,
    evaluating (rebalanced AuC) and notebooks."""
    from colorkit import quantize

    own_bins = len(bins) == len(quantize.ab_bins())  # a released model's 313 bins get a file of their own
    path = Path(run_dir) / ("prior.npy" if own_bins else f"prior_{len(bins)}.npy")
    if path.exists():
        return np.load(path)
    values = colour_prior(split["train"], config.image_size, bins)
    with atomic_path(path) as tmp:
        np.save(tmp, values)
    return values


def colour_prior(files, image_size: int, bins) -> np.ndarray:
    """The empirical prior over ``bins`` of the pixels of ``files`` (paths or probed
    files) at ``image_size``: how often each colour class occurs."""
    from colorkit import color, quantize
    from colorkit.data import pipeline

    pixels = pipeline.make_dataset(files, image_size=image_size, batch_size=32)
    return quantize.empirical_prior((color.denormalize_ab(ab) for _, ab in pixels), bins=bins)


# --- The trained model ------------------------------------------------------------------------


def find_model_file(source) -> Path:
    """A ``.keras`` file, or the trained model of a run folder: the checkpoint its
    recipe keeps (``kept``), else the first of ``MODEL_FILES`` there is."""
    path = Path(source)
    if path.is_dir():
        kept_file = path / kept(path)["checkpoint"] if (path / "config.json").exists() else None
        for candidate in ([kept_file] if kept_file else []) + [path / name for name in MODEL_FILES]:
            if candidate.exists():
                return candidate
        raise ColorkitError(f"no trained model in {path}: expected one of {', '.join(MODEL_FILES)}")
    if path.suffix != ".keras":
        raise ColorkitError(f"{path} is not a .keras model file or a run folder")
    if not path.exists():
        raise ColorkitError(f"model file {path} does not exist")
    return path


def kept(run_dir) -> dict:
    """Which checkpoint of a run evaluation and inference use, the epoch it holds
    (counted from 1) and why: ``{"checkpoint", "epoch", "epochs", "why"}``, so a
    table can name what it evaluated."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if config.trainer == "gan":
        epochs = config.pretrain_epochs + config.epochs
        return {"checkpoint": "checkpoints/generator.keras", "epoch": epochs, "epochs": epochs,
                "why": "the generator after the last step (the GAN loop has no validation loss to choose by)"}
    state_file = run_dir / "backup" / "state.json"
    state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.exists() else {}
    done = state.get("epochs_done", 0)
    if config.keep == "last":
        return {"checkpoint": "checkpoints/last.keras", "epoch": done, "epochs": done,
                "why": "the last epoch (the recipe keeps the last)"}
    best = state.get("best_epoch")
    return {"checkpoint": "checkpoints/best.keras", "epoch": None if best is None else best + 1, "epochs": done,
            "why": f"the lowest validation loss ({state.get('best', math.nan):.4g})"}


def find_colorizer_file(source) -> Path:
    """The file to colorize with: a run's ``colorizer.keras`` when it has one, else its trained model."""
    path = Path(source)
    if path.is_dir() and (path / COLORIZER_FILE).exists():
        return path / COLORIZER_FILE
    return find_model_file(source)
