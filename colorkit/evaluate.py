"""Evaluate a run folder on a split: the model against the two baselines every
report should show (gray: ab = 0; random colours), per image and summarised.

Writes ``per_image.csv`` (one row per method and image) and ``summary.csv`` /
``summary.md`` (one row per method: mean and 95% confidence interval of each
metric, and which checkpoint was evaluated) into the output folder, split by
kind of image in ``summary_by_kind`` (the sample set's shapes and photos); for a user-guided model also ``hints_curve``
(PSNR against the number of hints a simulated user gives). The rebalanced AuC weighs pixels by the inverse
of the *training* split's colour prior, as Zhang et al. do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from colorkit import color, colorize, hints, metrics, quantize, report, runs
from colorkit.data import pipeline
from colorkit.errors import ColorkitError
from colorkit.experiments import TrainConfig


def load_split_images(config, split_name: str, split: dict) -> tuple[list[str], np.ndarray]:
    """The RGB images of one split, at the run's training size."""
    if split_name not in split:
        raise ColorkitError(f"unknown split {split_name!r}; use one of {sorted(split)}")
    paths = split[split_name]
    if not paths:
        raise ColorkitError(f"the {split_name} split of {config.dataset} is empty")
    batches = pipeline.make_rgb_dataset(paths, image_size=config.image_size, batch_size=32)
    return paths, np.concatenate([b.numpy() for b in batches])


def predicted_lab(colorizer, truth: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Lab of the model's colorization (no hints, before gamut fitting) of a batch of
    images already at the model's working size: L from the truth, ab from the
    network, in batches (one call per batch, not per image)."""
    l_norm, _ = color.rgb_to_model_io(truth)
    ab_norm = colorize.predict_ab(colorizer, hints.model_feed(colorizer, l_norm.numpy()), batch_size)
    return np.concatenate([color.denormalize_l(l_norm.numpy()), color.denormalize_ab(ab_norm)], axis=-1)


def method_predictions(colorizer, truth: np.ndarray, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(RGB, raw ab) predicted by the model (without hints) and by the baselines, all from the true L."""
    model_lab = predicted_lab(colorizer, truth)
    gray = metrics.gray_baseline(truth)
    random = metrics.random_baseline(truth, seed=seed)
    return {
        "model": (color.lab_to_rgb(model_lab), model_lab[..., 1:]),
        "gray": (gray, np.zeros(truth.shape[:-1] + (2,), np.float32)),
        "random": (random, color.rgb_to_lab(random)[..., 1:]),
    }


#: The numbers of points of the user-guided curve (as in Zhang et al. 2017's figure).
HINT_COUNTS = (0, 1, 2, 5, 10, 20, 50, 100)


def psnr_by_hint_count(colorizer, truth: np.ndarray, counts=HINT_COUNTS, seed: int = 0) -> list[dict]:
    """Mean PSNR and its 95% interval when a simulated user gives ``n`` points drawn
    from the true colours, for each n in ``counts``: how much a hint model
    listens to its hints. The same seed draws the same points for every run."""
    l_norm, ab_true = color.rgb_to_model_io(truth)
    rows = []
    for count in counts:
        feed = hints.feed_with_true_hints(colorizer, l_norm.numpy(), ab_true, count, seed)
        pred = color.model_io_to_rgb(l_norm, colorize.predict_ab(colorizer, feed))
        mean, half_width = metrics.mean_and_ci95(metrics.psnr_per_image(pred, truth))
        rows.append({"hints": count, "psnr_db": mean, "psnr_db_ci95": half_width})
    return rows


def write_hint_curve(colorizer, truth: np.ndarray, out: Path, seed: int = 0) -> list[dict]:
    """``hints_curve.csv``/``.md``/``.png`` in ``out``: PSNR against the number of hints."""
    rows = psnr_by_hint_count(colorizer, truth, seed=seed)
    report.write_table(rows, out / "hints_curve")
    report.metric_curve(rows, "hints", "psnr_db", out / "hints_curve.png", xlabel="points given by the user",
                        ylabel="PSNR (dB)", title="User-guided colorization: PSNR against hints")
    return rows


#: Kinds of image an evaluation reports apart, told by a folder of that name in the path (the sample set's).
KINDS = ("shapes", "photos")


def image_kind(path) -> str | None:
    """"shapes" or "photos" when a folder of the path says so, else None."""
    parts = Path(path).parts
    return next((kind for kind in KINDS if kind in parts), None)


def evaluate_colorizer(colorizer, paths, truth: np.ndarray, prior, out, seed: int = 0, kept: dict | None = None) -> Path:
    """Score ``colorizer`` and the baselines on ``truth`` (the RGB images of ``paths``,
    at the working size) and write into ``out``: ``per_image``, ``summary`` (one
    row per method over all images) and, when the images are of several kinds,
    ``summary_by_kind`` (one row per kind and method, "all" first), plus a hint
    model's curve. ``kept`` (``runs.kept``) names the checkpoint in the model's rows."""
    out = Path(out)
    rows = []
    for method, (pred_rgb, pred_ab) in method_predictions(colorizer, truth, seed).items():
        for path, row in zip(paths, metrics.evaluate_images(pred_rgb, truth, prior=prior, pred_ab=pred_ab)):
            rows.append({"method": method, "kind": image_kind(path) or "all", "image": path, **row})
    report.write_table(rows, out / "per_image")
    report.write_table(_named(metrics.summarize(rows, by="method"), kept), out / "summary")
    kinds = sorted({row["kind"] for row in rows} - {"all"})
    if kinds:
        by_kind = [{"kind": "all", **row} for row in metrics.summarize(rows, by="method")]
        for kind in kinds:
            chosen = [row for row in rows if row["kind"] == kind]
            by_kind += [{"kind": kind, **row} for row in metrics.summarize(chosen, by="method")]
        report.write_table(_named(by_kind, kept), out / "summary_by_kind")
    if hints.takes_hints(colorizer):
        write_hint_curve(colorizer, truth, out, seed=seed)
    return out


def _named(summary: list[dict], kept: dict | None) -> list[dict]:
    """The summary rows with the evaluated checkpoint named in the model's rows."""
    if kept is None:
        return summary
    name = f"{Path(kept['checkpoint']).name}, epoch {kept['epoch']} of {kept['epochs']}: {kept['why']}"
    return [{**row, "checkpoint": name if row["method"] == "model" else ""} for row in summary]


def evaluate_run(run_dir, split_name: str = "test", data_root=None, out=None) -> Path:
    """Evaluate the run's model on a split (of its own data, or of the folder
    ``data_root``); returns the output folder. The rebalanced AuC uses the run's training prior."""
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    split = runs.load_split(config)
    prior = runs.prior(run_dir, config, split, quantize.ab_bins())
    if data_root:
        split = runs.load_split(config.replace(dataset="folder", root=str(data_root), dataset_options={}))
    paths, truth = load_split_images(config, split_name, split)
    out = Path(out) if out else run_dir / "eval" / split_name
    return evaluate_colorizer(colorize.load_colorizer(run_dir), paths, truth, prior, out, seed=config.seed,
                              kept=runs.kept(run_dir))


def evaluate_on_folder(colorizer, data_root, out, split_name: str = "test", image_size: int = 256,
                       seed: int = 0) -> Path:
    """Evaluate a model that has no run folder (a released model, a ``.keras`` file)
    on a split of the folder ``data_root`` (its train/ val/ test/, else a seeded
    70/10/20) at ``image_size``; the rebalanced AuC uses that folder's training prior."""
    config = TrainConfig(dataset="folder", root=str(data_root), image_size=image_size, seed=seed)
    split = runs.load_split(config)
    paths, truth = load_split_images(config, split_name, split)
    prior = runs.colour_prior(split["train"] or paths, image_size, quantize.ab_bins())
    return evaluate_colorizer(colorizer, paths, truth, prior, out, seed=seed)
