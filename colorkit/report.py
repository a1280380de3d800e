"""Figures and tables a report shows, written under ``reports/<experiment>/``.

Figures are built on ``matplotlib.figure.Figure`` directly, never through
pyplot: a PNG is then rendered by the Agg backend whatever backend a notebook
has selected, and no figure is left open in pyplot's global list (a training
callback writing a grid every epoch would otherwise leak memory).

Every file is written atomically (``colorkit.io``): a figure is saved to a
hidden temporary file in the same folder with an explicit ``format=`` and then
renamed, so a crash mid-write never leaves a half-written PNG or CSV behind.
Tables need no ``tabulate``: ``markdown_table`` is a few lines of its own.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib.colors
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from colorkit import color, metrics
from colorkit.errors import ColorkitError
from colorkit.io import atomic_path, atomic_write_text

GRID_TITLES = ("gray input", "prediction", "ground truth")
#: Environment variable naming the folder reports go to (the tests point it at a temporary folder).
REPORTS_ENV = "COLORKIT_REPORTS_DIR"

#: a runs from green (negative) to red (positive), b from blue to yellow; both
#: pass through gray at 0, because ab = 0 *is* gray.
A_CHANNEL_CMAP = matplotlib.colors.LinearSegmentedColormap.from_list("a_channel", ["#1a9850", "#808080", "#d73027"])
B_CHANNEL_CMAP = matplotlib.colors.LinearSegmentedColormap.from_list("b_channel", ["#2166ac", "#808080", "#f1c40f"])


def reports_root() -> Path:
    """Where reports go: ``$COLORKIT_REPORTS_DIR`` or the repository's ``reports/``."""
    return Path(os.environ.get(REPORTS_ENV) or Path(__file__).resolve().parents[1] / "reports")


def report_dir(experiment: str) -> Path:
    """``reports/<experiment>/``, created: where one notebook writes its figures and tables."""
    folder = reports_root() / experiment
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(fig: Figure, path) -> Path:
    """Save ``fig`` atomically; the format comes from the file extension (``.png``, ``.pdf``, ``.svg``)."""
    path = Path(path)
    image_format = path.suffix.lstrip(".").lower()
    if image_format not in fig.canvas.get_supported_filetypes():
        raise ColorkitError(f"cannot save a figure as {path.name}: use a .png, .pdf or .svg file name")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=image_format)
    return path


def _image_batch(images, name: str) -> np.ndarray:
    """``[H, W, C]`` or ``[N, H, W, C]`` with C = 1 (gray) or 3 (RGB) -> ``[N, H, W, C]``."""
    array = np.asarray(images, np.float32)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise ColorkitError(f"{name} must be images of shape [N, H, W, 1 or 3] in [0, 1]; got {np.shape(images)}")
    return array


def _show(ax, image: np.ndarray) -> None:
    """One image on an axis without ticks; a single channel is shown as gray."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(np.clip(image, 0.0, 1.0))
    ax.set_xticks([])
    ax.set_yticks([])


def colorization_grid(gray, pred, truth, path, captions=None) -> Path:
    """One row per image: gray input | prediction | ground truth.

    Each prediction is captioned with its PSNR (standard convention) unless
    ``captions`` (one string per image) says otherwise. ``pred`` and ``truth``
    are RGB in [0, 1]; ``gray`` may be RGB or single-channel.
    """
    gray, pred, truth = _image_batch(gray, "gray"), _image_batch(pred, "pred"), _image_batch(truth, "truth")
    if not len(gray) == len(pred) == len(truth):
        counts = f"{len(gray)}, {len(pred)}, {len(truth)}"
        raise ColorkitError(f"the grid needs as many gray, predicted and true images; got {counts}")
    if captions is None:
        captions = [f"PSNR {value:.2f} dB" for value in metrics.psnr_per_image(pred, truth)]
    if len(captions) != len(pred):
        raise ColorkitError(f"captions must have one entry per image ({len(pred)}); got {len(captions)}")
    fig = Figure(figsize=(3 * len(GRID_TITLES), 3 * len(pred)), layout="constrained")
    axes = fig.subplots(len(pred), len(GRID_TITLES), squeeze=False)
    for row, images in enumerate(zip(gray, pred, truth)):
        for ax, image in zip(axes[row], images):
            _show(ax, image)
        axes[row, 1].set_xlabel(captions[row])
    for ax, title in zip(axes[0], GRID_TITLES):
        ax.set_title(title)
    return save_figure(fig, path)


def _read_history(history_csv) -> pd.DataFrame:
    path = Path(history_csv)
    if not path.is_file():
        raise ColorkitError(f"training history {path} does not exist; a run writes history.csv in its folder")
    return pd.read_csv(path)


def loss_curves(history_csv, path, reference=None, reference_label=None) -> Path:
    """Plot every ``*loss*`` column of a history CSV against its epoch or step.

    Works on Keras' ``CSVLogger`` files (epoch, loss, val_loss, ...) and on the
    GAN trainer's per-step files (step, d_loss, g_loss, ...). A resumed run can
    log an epoch twice; the last entry wins. ``reference`` draws a dashed
    horizontal line, e.g. ``math.log(2)``: a GAN discriminator that cannot tell
    real from fake sits at log 2 per binary cross-entropy term.
    """
    history = _read_history(history_csv)
    x_column = next((name for name in ("epoch", "step") if name in history), None)
    if x_column is not None:
        history = history.drop_duplicates(subset=x_column, keep="last")
    x = history[x_column] if x_column is not None else history.index
    loss_columns = [name for name in history.columns if "loss" in name]
    if not loss_columns:
        expected = "loss, val_loss, d_loss, g_loss"
        raise ColorkitError(f"{history_csv} has no loss column; expected columns such as {expected}")
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for name in loss_columns:
        ax.plot(x, history[name], label=name)
    if reference is not None:
        label = reference_label or f"reference {reference:.3g}"
        ax.axhline(reference, color="gray", linestyle="--", label=label)
    ax.set_xlabel(x_column or "row")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def metric_curve(rows, x: str, y: str, path, xlabel=None, ylabel=None, title=None, reference=None,
                 reference_label=None) -> Path:
    """A metric ``y`` against a setting ``x`` from table rows (dicts or a DataFrame),
    with the 95% confidence band of column ``<y>_ci95`` when the rows have it.

    The x axis is linear up to 1 and logarithmic beyond (matplotlib's symlog),
    so settings such as 0, 1, 2, 5, ..., 100 hints are evenly readable.
    ``reference`` draws a dashed horizontal line (another method's value of
    ``y``, e.g. an automatic colorizer's PSNR next to a hint curve)."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    missing = [name for name in (x, y) if name not in frame]
    if missing:
        raise ColorkitError(f"metric_curve needs columns {missing}; the rows have {list(frame.columns)}")
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(frame[x], frame[y], marker="o", label=ylabel or y)
    if f"{y}_ci95" in frame:
        ax.fill_between(frame[x], frame[y] - frame[f"{y}_ci95"], frame[y] + frame[f"{y}_ci95"], alpha=0.2,
                        label="95% confidence interval")
    if reference is not None:
        ax.axhline(reference, color="gray", linestyle="--", label=reference_label or f"reference {reference:.3g}")
    if f"{y}_ci95" in frame or reference is not None:
        ax.legend()
    ax.set_xscale("symlog", linthresh=1.0)
    low, high = float(frame[x].min()), float(frame[x].max())
    # symlog's automatic margins can reach into negative settings no row has: pad by hand instead
    pad = lambda value: 0.3 if abs(value) <= 1 else 0.15 * abs(value)  # noqa: E731
    ax.set_xlim(low - pad(low), high + pad(high))
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def lab_channels(rgb, path) -> Path:
    """An RGB image ([H, W, 3] in [0, 1]) next to its L, a and b channels, each with a colour bar.

    L is drawn on [0, 100]; a and b share the symmetric range of the model's
    ab normalisation, so channels and images can be compared by eye.
    """
    image = np.asarray(rgb, np.float32)
    if image.shape[-1:] != (3,) or image.ndim != 3:
        raise ColorkitError(f"lab_channels needs one RGB image of shape [H, W, 3]; got {image.shape}")
    lab = color.rgb_to_lab(image)
    ab_limit = color.AB_RANGE
    channels = (
        ("L (lightness)", lab[..., 0], "gray", 0.0, 100.0),
        ("a (green - red)", lab[..., 1], A_CHANNEL_CMAP, -ab_limit, ab_limit),
        ("b (blue - yellow)", lab[..., 2], B_CHANNEL_CMAP, -ab_limit, ab_limit),
    )
    fig = Figure(figsize=(16, 4), layout="constrained")
    axes = fig.subplots(1, 1 + len(channels))
    _show(axes[0], image)
    axes[0].set_title("RGB")
    for ax, (title, channel, cmap, low, high) in zip(axes[1:], channels):
        shown = ax.imshow(channel, cmap=cmap, vmin=low, vmax=high)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(shown, ax=ax, shrink=0.8)
    return save_figure(fig, path)


# --- Tables -----------------------------------------------------------------------------------


def _markdown_cell(value) -> str:
    """Floats to four significant digits (NaN as n/a); pipes escaped so they do not split cells."""
    if isinstance(value, (float, np.floating)):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _markdown_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; numeric columns are right-aligned."""
    header = [_markdown_cell(name) for name in frame.columns]
    rule = ["---:" if pd.api.types.is_numeric_dtype(frame[name]) else "---" for name in frame.columns]
    body = [_markdown_row([_markdown_cell(value) for value in row]) for row in frame.itertuples(index=False)]
    return "\n".join([_markdown_row(header), _markdown_row(rule), *body]) + "\n"


def write_table(rows, path_stem) -> tuple[Path, Path]:
    """Write rows (a list of dicts or a DataFrame) as ``<path_stem>.csv`` and ``<path_stem>.md``.

    The CSV keeps full precision for further analysis; the Markdown rounds for
    reading. Both are written atomically. Returns the two paths.
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.columns.empty:
        raise ColorkitError(f"there is nothing to write to {path_stem}: the table has no rows or columns")
    csv_path, markdown_path = Path(f"{path_stem}.csv"), Path(f"{path_stem}.md")
    atomic_write_text(csv_path, frame.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(markdown_path, markdown_table(frame))
    return csv_path, markdown_path
