"""Colorize a sequence of frames, or a clip file into another.

Each frame goes the way one image does in ``colorkit.colorize`` (its L at the
network's working size in, ab out, ab resized back and joined with the
frame's own full-resolution L, then fitted into the sRGB gamut), with two
differences: frames go through the network ``batch_size`` at a time, and
between the network and the join a ``Stabilizer`` (``colorkit.video.temporal``)
steadies ab against the previous frames. It works at the working size, where
the network's ab lives: the flow is cheaper there, and the join then keeps
every frame's L exactly as it was.
"""

from __future__ import annotations

import collections
import itertools
from pathlib import Path

import keras
import numpy as np

from colorkit import color
from colorkit.colorize import join_ab, predict_ab, prepare, resolve_size, stack_feeds
from colorkit.errors import ColorkitError
from colorkit.video import container, temporal as temporal_modes

#: frames sent through the network together
DEFAULT_BATCH_SIZE = 8


def _as_float_rgb(frame) -> np.ndarray:
    frame = np.asarray(frame)
    return frame.astype(np.float32) / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float32)


def _working_l(feed) -> np.ndarray:
    """L (Lab units, ``[h, w]``) at the working size, from a prepared frame's network input."""
    l_norm = feed["l"] if isinstance(feed, dict) else feed
    return color.denormalize_l(np.asarray(l_norm)[0, ..., 0])


def colorize_frames(colorizer: keras.Model, frames, temporal="flow", size=None,
                    batch_size: int = DEFAULT_BATCH_SIZE):
    """Yield each of ``frames`` colorized: float32 RGB ``[H, W, 3]`` in [0, 1].

    ``frames``: any iterable of RGB frames (uint8, or float in [0, 1]); a colour
    frame is made gray by taking its L. ``temporal``: ``"none"``, ``"ema"``,
    ``"flow"`` or a ``Stabilizer`` with settings of its own. ``size``: the
    working size of a model that takes any size (default 256). Frames are read
    ``batch_size`` at a time, so the iterable can be a stream of any length."""
    if batch_size < 1:
        raise ColorkitError(f"the batch size must be at least 1, got {batch_size}")
    size = resolve_size(colorizer, size)
    stabilizer = temporal_modes.make_stabilizer(temporal)
    frames = iter(frames)
    while batch := [prepare(colorizer, _as_float_rgb(frame), size) for frame in itertools.islice(frames, batch_size)]:
        predicted = predict_ab(colorizer, stack_feeds([item.feed for item in batch]), batch_size)
        for item, ab_norm in zip(batch, predicted):
            steady = stabilizer.step(_working_l(item.feed), ab_norm)
            yield color.lab_to_rgb_in_gamut(join_ab(item.l_full, steady)).astype(np.float32)


def colorize_clip(colorizer: keras.Model, source, target, temporal="flow", size=None,
                  batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False,
                  max_pixels: int = container.MAX_FRAME_PIXELS) -> Path:
    """Colorize the clip ``source`` into ``target`` (same container; see
    ``colorkit.video.container`` for codecs, audio and timing) and return ``target``.

    The clip is checked before any frame is colorized, decoded, colorized and
    encoded a batch at a time (memory does not grow with its length), and
    written under a temporary name that replaces ``target`` only when complete."""
    info = container.probe(source, max_pixels)
    target = Path(target)
    if target.suffix.lower() != info.path.suffix.lower():
        raise ColorkitError(f"{target} must keep the clip's own format ({info.path.suffix})")
    bar = keras.utils.Progbar(info.frames, unit_name="frame") if progress else None
    stamps = collections.deque()  # timestamps of the frames read but not yet written

    def frames():
        for stamp, rgb in container.read_timed_frames(info.path):
            stamps.append(stamp)
            yield rgb

    with container.clip_writer(target, info) as writer:
        for rgb in colorize_frames(colorizer, frames(), temporal, size, batch_size):
            writer.write(color.to_8bit(rgb), stamps.popleft())
            if bar:
                bar.update(writer.written)
    return target
