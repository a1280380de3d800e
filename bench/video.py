"""Item 7: colorizing clips, in frames per second, and the memory a long clip takes.

Speed: ``colorkit.video.colorize_frames`` over a synthetic pan (colour frames,
made gray by the kit) at 256 x 256 and at 1280 x 720 (720p), once per
temporal mode. The network is a strided CNN of width 0.25 with random
weights at a working size of 256 px (its time does not depend on its
weights). Each frame's time covers the whole path: Lab conversion, the
network (batches of 8), the stabiliser (for ``flow``: two DIS flows and a
warp at the working size), resizing ab back, the join and the gamut fit;
decoding and encoding are not in it. Baseline: ``none`` (frame by frame), so
the ratios of ``ema`` and ``flow`` are what their steadiness costs.

Memory: ``colorize_clip`` (decode, colorize with ``flow``, encode) of a short
and a 10x longer clip of small frames, each in a fresh process so its peak
resident memory belongs to that clip alone (``python -m bench.video CLIP SIZE``
prints one JSON line). Baseline: the short clip; a ratio near 1 means memory
does not grow with the clip's length.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Comparison, json_from_child, peak_rss_mib, rate, reset_peak_rss, rss_mib, time_repeats

ITEM = "7 video"
#: 10x the frames may cost at most this much more peak memory and still count as flat
FLAT = 0.9


def random_colorizer(scale):
    from colorkit import colorize, models

    size = scale.video_working_size
    model = models.build("strided_cnn", input_shape=(size, size, 1), width=scale.video_width, seed=0)
    return colorize.as_colorizer(model)


def speed_rows(scale) -> list[dict]:
    """Frames per second per temporal mode, at each frame size."""
    from colorkit.video import TEMPORAL_MODES, colorize_frames, synthetic

    colorizer = random_colorizer(scale)
    rows = []
    for height, width in scale.video_sizes:
        frames = synthetic.pan_zoom_clip(frames=scale.video_frames, size=(height, width)).frames
        comparison = Comparison(ITEM, f"{width}x{height} frames, strided_cnn (width {scale.video_width:g}, random) "
                                      f"at {scale.video_working_size} px, {len(frames)} frames")
        for mode in TEMPORAL_MODES:
            timing = time_repeats(lambda mode=mode: list(colorize_frames(colorizer, frames, mode)), scale.repeats)
            add = comparison.baseline if mode == "none" else comparison.kit
            add(f"temporal={mode}", rate(len(frames), timing), "frames/s", timing)
        rows += comparison.rows
    return rows


def measure_clip(path, size: int) -> dict:
    """In this process: colorize the clip at ``path`` (frames of ``size`` px) with ``flow``.

    The peak-memory window opens after a one-frame warm-up (TensorFlow, the
    network, the codecs), so it holds the clip's own work."""
    from colorkit.video import colorize_clip, probe, synthetic, write_clip

    colorizer = synthetic.flickering_colorizer()
    folder = Path(path).parent
    warm = write_clip(synthetic.pan_zoom_clip(frames=2, size=(size, size)).frames, folder / "warm.mp4", fps=25)
    colorize_clip(colorizer, warm, folder / "out" / "warm.mp4", size=size)
    reset_peak_rss()
    start_rss = rss_mib()
    start = time.perf_counter()
    target = colorize_clip(colorizer, path, folder / "out" / Path(path).name, size=size)
    seconds = time.perf_counter() - start
    return {"frames": probe(target).frames, "seconds": seconds, "peak_mib": peak_rss_mib(), "start_mib": start_rss}


def looping_pan(count: int, size: int):
    """``count`` frames of a pan over a photo, back and forth (a long clip without holding it)."""
    from colorkit.video import synthetic

    cycle = synthetic.pan_zoom_clip(frames=50, size=(size, size)).frames
    for index in range(count):
        step = index % (2 * len(cycle) - 2)
        yield cycle[step if step < len(cycle) else 2 * len(cycle) - 2 - step]


def memory_rows(scale) -> list[dict]:
    from colorkit.video import write_clip

    short, long = scale.video_memory_counts
    size = scale.video_memory_size
    found = {}
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-") as tmp:
        for count in (short, long):
            folder = Path(tmp) / f"clip_{count}"
            folder.mkdir()
            clip = write_clip(looping_pan(count, size), folder / "pan.mp4", fps=25)
            found[count] = json_from_child("bench.video", clip, size)
    for count, result in found.items():
        if result["frames"] != count:
            raise RuntimeError(f"a clip of {count} frames came out with {result['frames']}")
    comparison = Comparison(ITEM, f"colorize_clip (flow), {short:,} vs {long:,} frames of {size}x{size} H.264: "
                                  f"peak memory", target=FLAT)
    for count, add in ((short, comparison.baseline), (long, comparison.kit)):
        result = found[count]
        add(f"{count:,} frames: peak memory", result["peak_mib"], "MiB",
            notes=f"{result['peak_mib'] - result['start_mib']:+.0f} MiB over the warmed-up process; "
                  f"{count / result['seconds']:.0f} frames/s with decoding and encoding")
    return comparison.rows


def run(scale) -> list[dict]:
    return speed_rows(scale) + memory_rows(scale)


if __name__ == "__main__":
    print(json.dumps(measure_clip(sys.argv[1], int(sys.argv[2]))))
