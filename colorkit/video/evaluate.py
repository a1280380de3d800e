"""The temporal modes compared on colour clips: made gray, colorized, scored.

Each colour clip is colorized from its own L by every method: ``gray`` (ab =
0: the floor to read every other row against, since a gray clip cannot
flicker), then ``none``, ``ema`` and ``flow``. Per frame: PSNR against the
colour original and colourfulness (``colorkit.metrics``; both left out for a
frame that has no colour), and the warping error to the previous frame
(Lai et al.). Per clip and method: their means and CDC, and how each mode's
warping error and PSNR compare with frame by frame (``none``).

The motion the warping error follows is estimated once per frame on the
original's L (the gray input every method sees), unless the clip's true
motion is given (``synthetic`` clips know theirs). Everything streams: the
clip is read once, all methods colorize it in step, and only per-frame
numbers and colour histograms are kept.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from colorkit import color, metrics, report
from colorkit.errors import ColorkitError
from colorkit.video import container, flow
from colorkit.video.colorize import DEFAULT_BATCH_SIZE, colorize_frames
from colorkit.video.temporal import TEMPORAL_MODES

METHODS = ("gray", *TEMPORAL_MODES)
#: a frame of the original whose colourfulness is below this has no colour to compare with
GRAY_COLORFULNESS = 1.0
FRAME_COLUMNS = ("psnr_db", "colorfulness", "warp_error")


def _float_frames(frames):
    for frame in frames:
        frame = np.asarray(frame)
        yield frame.astype(np.float32) / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float32)


def _method_outputs(colorizer, methods, streams, size, batch_size):
    for method, stream in zip(methods, streams):
        if method == "gray":
            yield (metrics.gray_baseline(frame) for frame in stream)
        elif method in TEMPORAL_MODES:
            yield colorize_frames(colorizer, stream, method, size, batch_size)
        else:
            raise ColorkitError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def evaluate_frames(colorizer, frames, methods=METHODS, size=None, flows=None, valid=None,
                    batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[list[dict], list[dict]]:
    """Score ``methods`` on the colour ``frames`` (an iterable of RGB frames,
    uint8 or float in [0, 1]). ``flows``/``valid``: the true backward motion
    (``[T - 1, H, W, 2]`` / ``[T - 1, H, W]``); estimated when not given.

    Returns ``(frame_rows, summary_rows)``: one row per method and frame
    (``method``, ``frame``, ``psnr_db``, ``colorfulness``, ``warp_error``; the
    first frame has no warping error), and one per method (``frames``, the
    means of those columns, ``cdc``, ``warp_error_vs_none``: its warping error
    as a share of frame by frame's, ``psnr_vs_none_db``: its PSNR minus frame
    by frame's)."""
    truth_stream, *streams = itertools.tee(_float_frames(frames), 1 + len(methods))
    outputs = list(_method_outputs(colorizer, methods, streams, size, batch_size))
    rows, histograms = [], {method: [] for method in methods}
    previous = None  # (L of the original, outputs) of the previous frame
    for index, (truth, *predictions) in enumerate(zip(truth_stream, *outputs)):
        lightness = color.rgb_to_lab(truth)[..., 0]
        if previous is not None:
            motion, trusted = (flows[index - 1], valid[index - 1]) if flows is not None else \
                flow.trusted_flow(lightness, previous[0])
        has_colour = metrics.colorfulness(truth) >= GRAY_COLORFULNESS
        for position, (method, prediction) in enumerate(zip(methods, predictions)):
            histograms[method].append(metrics.color_histograms(prediction[None])[0])
            warp = math.nan
            if previous is not None:
                pair = np.stack([previous[1][position], prediction])
                warp = float(metrics.warp_errors(pair, motion[None], np.asarray(trusted)[None])[0])
            rows.append({"method": method, "frame": index,
                         "psnr_db": metrics.psnr(prediction, truth) if has_colour else math.nan,
                         "colorfulness": metrics.colorfulness(prediction), "warp_error": warp})
        previous = (lightness, predictions)
    if previous is None:
        raise ColorkitError("there are no frames to evaluate")
    return rows, summarize_methods(rows, histograms)


def summarize_methods(frame_rows, histograms) -> list[dict]:
    """One row per method from the per-frame rows and each method's frame histograms."""
    frame = pd.DataFrame(frame_rows)
    summary = []
    for method, group in frame.groupby("method", sort=False):
        row = {"method": method, "frames": len(group)}
        row |= {column: float(group[column].mean()) for column in FRAME_COLUMNS}
        row["cdc"] = metrics.cdc_from_histograms(histograms[method]) if len(group) > 1 else math.nan
        summary.append(row)
    reference = next((row for row in summary if row["method"] == "none"), None)
    for row in summary:
        row["warp_error_vs_none"] = row["warp_error"] / reference["warp_error"] if reference else math.nan
        row["psnr_vs_none_db"] = row["psnr_db"] - reference["psnr_db"] if reference else math.nan
    return summary


def per_frame_plot(frame_rows, path, title: str) -> Path:
    """PSNR, colourfulness and warping error against the frame index, one line per method."""
    frame = pd.DataFrame(frame_rows)
    panels = (("psnr_db", "PSNR (dB)"), ("colorfulness", "colourfulness\n(Hasler-Suesstrunk, 8-bit)"),
              ("warp_error", "warping error\n(squared RGB distance, RGB in [0, 1])"))
    fig = Figure(figsize=(8, 8), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True)
    for ax, (column, label) in zip(axes, panels):
        for method, group in frame.groupby("method", sort=False):
            ax.plot(group["frame"], group[column], marker=".", label=method)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(ncols=len(frame["method"].unique()))
    axes[-1].set_xlabel("frame (index)")
    fig.suptitle(title)
    return report.save_figure(fig, path)


def _clip_source(clip) -> tuple[str, object, object, object]:
    """(name, frames, true flows, valid) of a clip path, a ``SyntheticClip`` given as
    ``(name, clip)``, or ``(name, frames)``."""
    if isinstance(clip, (str, Path)):
        info = container.probe(clip)
        return info.path.stem, container.read_frames(info.path), None, None
    name, content = clip
    if hasattr(content, "flows"):
        return name, content.frames, content.flows, content.valid
    return name, content, None, None


def evaluate_clips(colorizer, clips, out_dir, methods=METHODS, size=None,
                   batch_size: int = DEFAULT_BATCH_SIZE) -> list[dict]:
    """Evaluate each clip (a file path, or ``(name, frames_or_SyntheticClip)``)
    and write into ``out_dir``: ``summary.csv``/``summary.md`` (one row per
    clip and method), and per clip ``<name>_frames.csv`` and the plot
    ``<name>_per_frame.png``. Returns the summary rows."""
    out_dir = Path(out_dir)
    summary = []
    for clip in clips:
        name, frames, flows, valid = _clip_source(clip)
        if any(row["clip"] == name for row in summary):
            raise ColorkitError(f"two clips are named {name}: their tables would overwrite each other")
        frame_rows, clip_summary = evaluate_frames(colorizer, frames, methods, size, flows, valid, batch_size)
        summary += [{"clip": name, **row} for row in clip_summary]
        report.write_table([{"clip": name, **row} for row in frame_rows], out_dir / f"{name}_frames")
        per_frame_plot(frame_rows, out_dir / f"{name}_per_frame.png", f"{name}: per-frame quality and flicker")
    if not summary:
        raise ColorkitError("name at least one clip to evaluate")
    report.write_table(summary, out_dir / "summary")
    return summary


def evaluate_clip(colorizer, clip, out_dir, methods=METHODS, size=None,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> list[dict]:
    """``evaluate_clips`` for one clip."""
    return evaluate_clips(colorizer, [clip], out_dir, methods, size, batch_size)
