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

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.colors
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from colorkit import color, metrics
from colorkit.errors import ColorkitError
from colorkit.io import atomic_path, atomic_write_text

GRID_TITLES = ("gray input", "prediction", "ground truth")
#: The PNG text entry in which ``colorization_grid`` records where each panel lies and its caption.
PANELS_KEY = "colorkit:panels"
#: Pixels trimmed from each side of a panel read back from a grid (the axes' frame).
PANEL_INSET = 3
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


def save_figure(fig: Figure, path, metadata: dict | None = None) -> Path:
    """Save ``fig`` atomically; the format comes from the file extension (``.png``, ``.pdf``, ``.svg``).
    ``metadata``: text entries stored in the file (a PNG's text chunks)."""
    path = Path(path)
    image_format = path.suffix.lstrip(".").lower()
    if image_format not in fig.canvas.get_supported_filetypes():
        raise ColorkitError(f"cannot save a figure as {path.name}: use a .png, .pdf or .svg file name")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=image_format, metadata=metadata)
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


def colorization_grid(gray, pred, truth, path, captions=None, title: str | None = None) -> Path:
    """One row per image: gray input | prediction | ground truth, under ``title``.

    Each prediction is captioned with its PSNR (standard convention) unless
    ``captions`` (one string per image) says otherwise. ``pred`` and ``truth``
    are RGB in [0, 1]; ``gray`` may be RGB or single-channel. The PNG records
    where each image lies (``grid_panels`` reads them back).
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
    for ax, heading in zip(axes[0], GRID_TITLES):
        ax.set_title(heading)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, metadata={PANELS_KEY: _panel_record(fig, axes, captions)})


def _panel_record(fig: Figure, axes, captions) -> str:
    """Where each image of a grid lies (fractions of the figure, after layout) and the captions,
    as JSON: what ``grid_panels`` needs to read the images back from the PNG."""
    fig.draw_without_rendering()  # runs the layout: the axes sit where the saved file shows them
    boxes = [[list(map(float, ax.get_position().bounds)) for ax in row] for row in axes]
    return json.dumps({"columns": list(GRID_TITLES), "boxes": boxes, "captions": list(captions)})


def grid_panels(path) -> dict:
    """The images of a grid that ``colorization_grid`` wrote, read back from its PNG:
    ``{"columns": the three titles, "images": one [gray, prediction, truth] list per row
    (RGB in [0, 1] at the size drawn), "captions": one per row}``. A training run's
    sample grids (``samples/epoch_*.png``) are such grids: figures can then show one
    column of several epochs side by side instead of nesting whole grids."""
    path = Path(path)
    if not path.is_file():
        raise ColorkitError(f"no sample grid at {path}")
    with Image.open(path) as image:
        record = getattr(image, "text", {}).get(PANELS_KEY)
        pixels = np.asarray(image.convert("RGB"), np.float32) / 255.0
    if record is None:
        raise ColorkitError(f"{path} records no panels: it was not written by colorkit.report.colorization_grid "
                            "(a run trained before grids recorded them); train the run again to read its grids")
    record = json.loads(record)
    height, width = pixels.shape[:2]

    def crop(box):
        """The pixels inside one axes box (left, bottom, width, height as fractions; y up), its frame trimmed."""
        left, bottom, box_width, box_height = box
        top, low = round((1 - bottom - box_height) * height), round((1 - bottom) * height)
        start, stop = round(left * width), round((left + box_width) * width)
        return pixels[top + PANEL_INSET : low - PANEL_INSET, start + PANEL_INSET : stop - PANEL_INSET]

    images = [[crop(box) for box in row] for row in record["boxes"]]
    return {"columns": record["columns"], "images": images, "captions": record["captions"]}


def grids_side_by_side(columns, path, title: str, rows=None) -> Path:
    """The predictions of several sample grids side by side (``columns``: pairs of a
    heading and a grid PNG written by ``colorization_grid``, such as a run's grids
    of several epochs, or two runs' grids of one epoch), between the gray inputs
    and the ground truth of the first grid. One row per image (``rows``: which,
    default all); each prediction keeps its grid's caption (its PSNR)."""
    grids = [(heading, grid_panels(grid)) for heading, grid in columns]
    first = grids[0][1]
    chosen = list(range(len(first["images"]))) if rows is None else list(rows)
    headings = [first["columns"][0], *(heading for heading, _ in grids), first["columns"][-1]]
    fig = Figure(figsize=(2.0 * len(headings), 2.25 * len(chosen) + 0.6), layout="constrained")
    axes = fig.subplots(len(chosen), len(headings), squeeze=False)
    for row, index in enumerate(chosen):
        panels = [first["images"][index][0], *(grid["images"][index][1] for _, grid in grids), first["images"][index][-1]]
        for column, image in enumerate(panels):
            _show(axes[row, column], image)
        for column, (_, grid) in enumerate(grids, start=1):
            axes[row, column].set_xlabel(grid["captions"][index], fontsize=9)
    for ax, heading in zip(axes[0], headings):
        ax.set_title(heading, fontsize=10)
    fig.suptitle(title)
    return save_figure(fig, path)


def image_row(panels: dict, path, title: str) -> Path:
    """Images side by side, each under its heading (``panels``: heading -> an RGB
    ``[H, W, 3]`` or gray ``[H, W]`` / ``[H, W, 1]`` image in [0, 1]), drawn at
    their own aspect ratio, with a title above."""
    images = [np.asarray(image, np.float32) for image in panels.values()]
    images = [image[..., None] if image.ndim == 2 else image for image in images]
    height, width = images[0].shape[:2]
    panel_height = 3.6
    fig = Figure(figsize=(len(images) * panel_height * width / height + 0.3, panel_height + 0.55), layout="constrained")
    for ax, heading, image in zip(fig.subplots(1, len(images), squeeze=False)[0], panels, images):
        _show(ax, image)
        ax.set_title(heading, fontsize=10)
    fig.suptitle(title)
    return save_figure(fig, path)


def example_photo(folder=None) -> Path:
    """A colour photo bundled with scikit-image (Chelsea the cat, 451 x 300 px)
    written as PNG into ``folder`` (default: the system's temporary folder): the
    photo a "colorize your own photo" cell uses when it is given no path. The
    sample set holds crops of it only among its held-out test images."""
    from skimage import data

    path = Path(folder or tempfile.gettempdir()) / "colorkit_example_chelsea.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Image.fromarray(data.chelsea()).save(tmp, format="PNG")
    return path


def draw_model(model, path, title: str | None = None, **options) -> Path | None:
    """``model`` drawn layer by layer with its input and output shapes into ``path``
    (PNG), titled ``title`` (default: its name and parameter count): the graph of
    ``keras.utils.plot_model``, from its ``model_to_dot`` (``options`` go there),
    with curved edges, since Graphviz 2.42's orthogonal edge router, which
    ``plot_model`` asks for, aborts on some of these graphs. The drawing needs
    pydot and Graphviz's ``dot`` program (``make demo`` and ``make test`` install
    Graphviz); without them it prints a one-line note and returns None."""
    missing = _missing_drawing_tools()
    if missing:
        print(f"note: {missing}, so {Path(path).name} is not drawn")
        return None
    import keras

    graph = keras.utils.model_to_dot(model, **{"show_shapes": True, "dpi": 64, **options})
    graph.set("splines", "spline")
    graph.set("label", title or f"{model.name}: {model.count_params():,} parameters")
    graph.set("labelloc", "t")
    graph.set("fontsize", "22")
    graph.set("fontname", "Helvetica")
    path = Path(path)
    with atomic_path(path) as tmp:
        graph.write(str(tmp), format="png")
    return path


def _missing_drawing_tools() -> str | None:
    """What ``plot_model`` lacks on this machine, in words, or None."""
    try:
        import pydot  # noqa: F401
    except ImportError:
        return "pydot is not installed (pip install -r requirements.txt)"
    if shutil.which("dot") is None:
        return "Graphviz is not installed (Debian: apt-get install graphviz; `make demo` does it as root)"
    return None


def _read_history(history_csv) -> pd.DataFrame:
    path = Path(history_csv)
    if not path.is_file():
        raise ColorkitError(f"training history {path} does not exist; a run writes history.csv in its folder")
    return pd.read_csv(path)


def loss_curves(history_csv, path, title: str | None = None, ylabel: str = "loss (unitless)", kept=None,
                panels: dict | None = None, reference=None, reference_label=None) -> Path:
    """Plot a run's history: every numeric column against its epoch or step.

    Works on the fit trainer's files (epoch, loss, val_loss; epochs drawn from 1,
    as tables count them) and on the GAN trainer's per-step files (step, phase,
    d_loss, g_loss, g_l1, g_total; the L1 warm-up steps shaded). A resumed run
    can log an epoch twice; the last entry wins. ``panels`` ({y-axis label:
    columns}) puts columns of different scales on axes side by side; by default
    one axis labelled ``ylabel`` shows them all. ``kept`` (``runs.kept``) marks
    the checkpoint that evaluation uses. ``reference`` draws a dashed horizontal
    line on the first axis, e.g. ``math.log(2)``: a GAN discriminator that cannot
    tell real from fake sits at log 2 per binary cross-entropy term.
    """
    history = _read_history(history_csv)
    x_column = next((name for name in ("epoch", "step") if name in history), None)
    if x_column is not None:
        history = history.drop_duplicates(subset=x_column, keep="last")
    x = history[x_column] + (1 if x_column == "epoch" else 0) if x_column else history.index
    values = [name for name in history.columns if name != x_column and pd.api.types.is_numeric_dtype(history[name])]
    if not values:
        raise ColorkitError(f"{history_csv} has no loss column; expected columns such as loss, val_loss, d_loss, g_l1")
    panels = panels or {ylabel: values}
    unknown = sorted({name for names in panels.values() for name in names} - set(values))
    if unknown:
        raise ColorkitError(f"{history_csv} has no column {', '.join(unknown)}; it has {', '.join(values)}")
    fig = Figure(figsize=(7 if len(panels) == 1 else 5.2 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    kept_x = _kept_position(kept, x_column, x)
    for index, (ax, (label, names)) in enumerate(zip(axes, panels.items())):
        if "phase" in history and (history["phase"] == "pretrain").any():
            warm_up = x[history["phase"] == "pretrain"]
            ax.axvspan(warm_up.min() - 0.5, warm_up.max() + 0.5, color="gray", alpha=0.15,
                       label="L1 warm-up (generator alone)")
        for name in names:
            ax.plot(x, history[name], label=name)
        if reference is not None and index == 0:
            ax.axhline(reference, color="gray", linestyle="--", label=reference_label or f"reference {reference:.3g}")
        if kept_x is not None:
            ax.axvline(kept_x, color="black", linestyle=":",
                       label=f"kept: {Path(kept['checkpoint']).name}, epoch {kept['epoch']} of {kept['epochs']}")
        ax.set_xlabel({"epoch": "epoch (passes over the training images)",
                       "step": "step (training batches)"}.get(x_column, "row"))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or f"Training curves of {Path(history_csv).parent.name}")
    return save_figure(fig, path)


def _kept_position(kept, x_column, x):
    """Where on the x axis the kept checkpoint lies: its epoch, or its last step (a GAN's)."""
    if kept is None or kept.get("epoch") is None:
        return None
    if x_column == "epoch":
        return kept["epoch"]
    return kept["epoch"] * float(np.max(x)) / kept["epochs"]


def metric_curve(rows, x: str, y: str, path, xlabel=None, ylabel=None, title=None, reference=None,
                 reference_label=None, by: str | None = None) -> Path:
    """A metric ``y`` against a setting ``x`` from table rows (dicts or a DataFrame),
    with the 95% confidence band of column ``<y>_ci95`` when the rows have it; with
    ``by``, one line (and band) per value of that column (e.g. each kind of image).

    The x axis is linear up to 1 and logarithmic beyond (matplotlib's symlog),
    so settings such as 0, 1, 2, 5, ..., 100 hints are evenly readable.
    ``reference`` draws a dashed horizontal line (another method's value of
    ``y``, e.g. an automatic colorizer's PSNR next to a hint curve), kept well
    inside the plot even when it lies beyond every row's value."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    missing = [name for name in (x, y, *([by] if by else [])) if name not in frame]
    if missing:
        raise ColorkitError(f"metric_curve needs columns {missing}; the rows have {list(frame.columns)}")
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    groups = frame.groupby(by, sort=False) if by else [(None, frame)]
    for value, group in groups:
        label = f"{ylabel or y}" if value is None else f"{by} {value}"
        line, = ax.plot(group[x], group[y], marker="o", label=label)
        if f"{y}_ci95" in group:
            band = "95% confidence interval" if value is None else None
            ax.fill_between(group[x], group[y] - group[f"{y}_ci95"], group[y] + group[f"{y}_ci95"], alpha=0.2,
                            color=line.get_color(), label=band)
    if reference is not None:
        ax.axhline(reference, color="black", linestyle="--", linewidth=1.5,
                   label=reference_label or f"reference {reference:.3g}")
        low, high = ax.get_ylim()
        margin = 0.08 * (max(high, reference) - min(low, reference))
        ax.set_ylim(min(low, reference - margin), max(high, reference + margin))
    if by or f"{y}_ci95" in frame or reference is not None:
        ax.legend(fontsize=9)
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


# --- Evaluation tables in words ---------------------------------------------------------------


def summary_by_kind(eval_dir) -> pd.DataFrame:
    """An evaluation folder's summary split by kind of image (``summary_by_kind.csv``:
    "all", then "shapes" and "photos" on the sample set), or, when its images were
    all of one kind (a report's dataset), its ``summary.csv`` as the kind "all"."""
    folder = Path(eval_dir)
    if (folder / "summary_by_kind.csv").exists():
        frame = pd.read_csv(folder / "summary_by_kind.csv")
    else:
        summary = pd.read_csv(folder / "summary.csv")
        frame = summary.assign(kind="all")[["kind", *summary.columns]]
    if "checkpoint" in frame:  # named in the model's rows only
        frame["checkpoint"] = frame["checkpoint"].fillna("")
    return frame


#: Kinds of image in the order sentences name them, and how they are named.
KIND_NAMES = {"shapes": "held-out shapes", "photos": "held-out photos", "all": "all held-out images"}


def against_gray(by_kind: pd.DataFrame, name: str = "the model") -> str:
    """Markdown sentences, one per kind of image, comparing the model's row of a
    ``summary_by_kind`` table with the gray baseline's (PSNR, raw AuC and
    colourfulness, with the differences), after the checkpoint that was evaluated."""
    lines = []
    checkpoints = by_kind.loc[by_kind["method"] == "model"].get("checkpoint")
    if checkpoints is not None and (checkpoints.fillna("") != "").any():
        lines.append(f"Evaluated checkpoint of {name}: {checkpoints[checkpoints.fillna('') != ''].iloc[0]}.")
    kinds = [kind for kind in KIND_NAMES if kind in set(by_kind["kind"])]
    if len(kinds) > 1:
        kinds.remove("all")  # each kind on its own says more than their mix
    for kind in kinds:
        rows = by_kind[by_kind["kind"] == kind].set_index("method")
        model, gray = rows.loc["model"], rows.loc["gray"]
        lines.append(
            f"- On the {KIND_NAMES[kind]} ({int(model['n'])} images), {name} reaches a PSNR of "
            f"{model['psnr_db']:.2f} dB against gray's {gray['psnr_db']:.2f} ({model['psnr_db'] - gray['psnr_db']:+.2f} dB), "
            f"a raw AuC of {model['auc_raw']:.3f} against {gray['auc_raw']:.3f} ({model['auc_raw'] - gray['auc_raw']:+.3f}) "
            f"and a colourfulness of {model['colorfulness']:.1f} (gray: 0)."
        )
    return "\n".join(lines) + "\n"


def hue_name(a: float, b: float) -> str:
    """A rough colour name for a direction of the ab plane (its hue angle)."""
    angle = math.degrees(math.atan2(b, a)) % 360
    names = ((20, "magenta-red"), (70, "red"), (100, "yellow"), (200, "green"), (300, "blue"), (340, "purple"))
    return next((name for limit, name in names if angle < limit), "magenta-red")


def sample_set_lesson(root=None) -> str:
    """What the sample set can teach in minutes, in Markdown, its counts read from its manifest."""
    from colorkit.data import sample

    files = sample.read_sample_manifest(root)["files"]

    def sources(split):
        return sorted({entry["source"].split(".")[1] for path, entry in files.items()
                       if path.startswith(f"{split}/") and entry["kind"] == "photo"})

    textures = ", ".join(f"{kind} {hue_name(a, b)}" for kind, (a, b) in sample.TEXTURE_AB.items())
    return (
        f"The held-out images are of two kinds, and the tables report them apart. Most **shapes** take their colour "
        f"from their texture ({textures}), so a small network learns them in minutes: there every model should "
        f"beat gray clearly. The speckled ones take a random hue that nothing in L tells: an automatic model can "
        f"only guess it, a user's hint gives it. The **photos** cannot be learned from {len(sources('train'))} photos in minutes: the "
        f"training crops come from {len(sources('train'))} pictures and the test crops from others never seen "
        f"({', '.join(sources('test'))}), so on them expect every model to stay near gray. The reports' own data "
        f"sets are what `SCALE = \"full\"` is for."
    )
