"""Evaluate a run folder on a split: the model against the two baselines every
report should show (gray: ab = 0; random colours), per image and summarised.

Writes ``per_image.csv`` (one row per method and image) and ``summary.csv`` /
``summary.md`` (one row per method: mean and 95% confidence interval of each
metric) into the output folder. The rebalanced AuC weighs pixels by the inverse
of the *training* split's colour prior, as Zhang et al. do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from colorkit import color, colorize, metrics, quantize, report, train
from colorkit.data import pipeline
from colorkit.errors import ColorkitError


def load_split_images(config, split_name: str, split: dict) -> tuple[list[str], np.ndarray]:
    """The RGB images of one split, at the run's training size."""
    if split_name not in split:
        raise ColorkitError(f"unknown split {split_name!r}; use one of {sorted(split)}")
    paths = split[split_name]
    if not paths:
        raise ColorkitError(f"the {split_name} split of {config.dataset} is empty")
    batches = pipeline.make_rgb_dataset(paths, image_size=config.image_size, batch_size=32)
    return paths, np.concatenate([b.numpy() for b in batches])


def method_predictions(run_dir, config, truth: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(RGB, raw ab) predicted by the model and by the baselines, all from the true L."""
    colorizer = colorize.as_colorizer(colorize.load_model(run_dir), temperature=config.temperature)
    model_lab = np.stack([colorize.colorize_lab(colorizer, image) for image in truth])
    gray = metrics.gray_baseline(truth)
    random = metrics.random_baseline(truth, seed=config.seed)
    return {
        "model": (color.lab_to_rgb(model_lab), model_lab[..., 1:]),
        "gray": (gray, np.zeros(truth.shape[:-1] + (2,), np.float32)),
        "random": (random, color.rgb_to_lab(random)[..., 1:]),
    }


def evaluate_run(run_dir, split_name: str = "test", data_root=None, out=None) -> Path:
    """Evaluate the run's best model on a split (of its own data, or of the folder
    ``data_root``); returns the output folder."""
    run_dir = Path(run_dir)
    config = train.load_run_config(run_dir)
    split = train.load_data_split(config)
    prior = train.training_prior(run_dir, config, split, quantize.ab_bins())
    if data_root:
        split = train.load_data_split(config.replace(dataset="folder", root=str(data_root), dataset_options={}))
    paths, truth = load_split_images(config, split_name, split)
    out = Path(out) if out else run_dir / "eval" / split_name
    rows = []
    for method, (pred_rgb, pred_ab) in method_predictions(run_dir, config, truth).items():
        for path, row in zip(paths, metrics.evaluate_images(pred_rgb, truth, prior=prior, pred_ab=pred_ab)):
            rows.append({"method": method, "image": path, **row})
    report.write_table(rows, out / "per_image")
    report.write_table(metrics.summarize(rows, by="method"), out / "summary")
    return out
