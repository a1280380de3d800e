"""The decode plan: how each file becomes a square image cheaply, settled from its probe.

``pipeline.py`` says what happens to a file: its centred square is decoded,
then resized to the model's size. This module says how, choosing for every
file before anything is decoded, from what ``decode.probe`` read in its header
(format, size):

* The decoder. A JPEG goes to libjpeg with its crop window (the centred square
  only) and at the smallest of its DCT scales (1/1, 1/2, 1/4, 1/8) that keeps
  the square at least ``image_size`` wide: a large photo is mostly shrunk
  while it is decoded, with much less work than a resize afterwards. A PNG is
  decoded whole by TensorFlow, then cropped; any other file by Pillow.
* The resize: none when the square already has the size; antialiased when it
  is 2x or more too large (where plain bilinear would alias); bilinear otherwise.
* The branches. Each choice is an index per file. Where every file takes the
  same one (a folder of similar photos, the usual case), that branch alone is
  built into the graph, without a ``tf.switch_case``: a branch is a separate
  function, called per image and instantiated anew every epoch.
* The result is rounded to 8 bits, as any saved photo is.

What each choice gains is measured in bench/ (item 2,
``reports/benchmarks/results.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from colorkit.data.decode import (
    JPEG_SCALES,
    ROUTE_JPEG,
    ROUTE_PNG,
    centre_square,
    jpeg_halvings,
    jpeg_square_windows,
    pil_rgb,
    scaled_side,
    tf_decode_jpeg,
    tf_decode_jpeg_square,
    tf_decode_png,
)

#: The square decoders, by index: a JPEG at 1/1, 1/2, 1/4, 1/8 (0-3), a PNG, Pillow.
_PNG_SQUARE, _PIL_SQUARE = len(JPEG_SCALES), len(JPEG_SCALES) + 1
#: How a decoded square reaches the model's size, by index.
_KEEP, _SHRINK_ANTIALIASED, _BILINEAR = 0, 1, 2


@dataclass(frozen=True)
class SquarePlan:
    """How each file of a list becomes an ``image_size`` square.

    ``columns``: one row per file, to travel with its path through the dataset
    (``{"path": paths, **columns}``): ``decoder`` and ``mode`` (indices) and
    ``window`` (a JPEG's crop window at its decoding scale). ``*_present``: the
    indices any file takes, so branches no file takes are never built."""

    image_size: int
    columns: dict
    decoders_present: tuple
    modes_present: tuple

    def decode(self, file):
        """A file's record -> its centred square, as float32 levels in [0, 255]."""
        return _decode_square(file["path"], file["decoder"], file["window"], self.decoders_present)

    def resize(self, square_levels, file):
        """A decoded square -> ``image_size`` x ``image_size``, 8-bit, as planned for its file."""
        return _resize(square_levels, self.image_size, file["mode"], self.modes_present)


def square_plan(probes, image_size: int) -> SquarePlan:
    """The plan for files with these probes (``decode.Probe``, readable ones only)."""
    heights, widths = np.array([p.height for p in probes]), np.array([p.width for p in probes])
    sides = np.minimum(heights, widths)
    decoders = _square_decoders([p.route for p in probes], sides, image_size)
    scales = _decoding_scales(decoders)
    modes = _resize_mode(scaled_side(sides, scales), image_size).numpy()
    columns = {
        "decoder": decoders.astype(np.int32),
        "mode": modes.astype(np.int32),
        "window": jpeg_square_windows(heights, widths, scales),
    }
    return SquarePlan(image_size, columns, tuple(np.unique(decoders)), tuple(np.unique(modes)))


def resize_square(square_levels, image_size: int):
    """A square of float levels in [0, 255], of a size known only in the graph
    (an image from another dataset) -> ``image_size`` x ``image_size``, 8-bit,
    by the same rule as a planned file."""
    mode = _resize_mode(tf.shape(square_levels)[0], image_size)
    return _resize(square_levels, image_size, mode, (_KEEP, _SHRINK_ANTIALIASED, _BILINEAR))


def whole_decoder(routes):
    """A function ``(path, route) -> float32 RGB in [0, 1]`` at full size, for
    files whose routes (``decode.ROUTE_*``) are among ``routes``."""
    routes_present = tuple(sorted(set(routes)))

    def decode_whole(path, route):
        branches = [
            lambda: tf_decode_jpeg(tf.io.read_file(path)),
            lambda: tf_decode_png(tf.io.read_file(path), square=False),
            lambda: _pil_in_graph(path),
        ]
        return _choose(route, branches, routes_present)

    return decode_whole


# --- Choosing, per file, before the pipeline starts ---------------------------------


def _square_decoders(routes, sides, image_size: int) -> np.ndarray:
    """The square decoder of every file: JPEGs at the smallest DCT scale that
    keeps the square at least ``image_size`` wide (``decode.jpeg_halvings``);
    PNGs and Pillow's files whole."""
    routes = np.asarray(routes)
    halvings = jpeg_halvings(sides, image_size).numpy()
    others = np.where(routes == ROUTE_PNG, _PNG_SQUARE, _PIL_SQUARE)
    return np.where(routes == ROUTE_JPEG, halvings, others)


def _decoding_scales(decoders) -> np.ndarray:
    """How much each file shrinks while decoding: a JPEG's DCT scale (1, 2, 4
    or 8), 1 for every other file."""
    return (2 ** np.where(np.asarray(decoders) < _PNG_SQUARE, decoders, 0)).astype(np.int32)


def _resize_mode(side, image_size: int):
    """How a decoded square of ``side`` px reaches ``image_size``: kept, shrunk
    with antialiasing (2x or more), or resized bilinearly. ``side`` may be a
    tensor inside the graph or a vector of every file's side beforehand."""
    side = tf.convert_to_tensor(side, tf.int32)
    return tf.where(side == image_size, _KEEP, tf.where(side >= 2 * image_size, _SHRINK_ANTIALIASED, _BILINEAR))


# --- Running the plan inside the graph ------------------------------------------------


def _choose(index, branches, present):
    """``branches[index]()`` for a tensor ``index``; ``present`` lists the
    indices any element takes. When that is one, its branch is called directly
    instead of through a ``tf.switch_case``."""
    if len(present) == 1:
        return branches[present[0]]()
    return tf.switch_case(index, branches)


def _pil_in_graph(path):
    """Pillow decoding wrapped for tf.data (only for files routed to Pillow)."""
    rgb = tf.py_function(lambda p: pil_rgb(p.numpy().decode()), [path], tf.float32)
    rgb.set_shape([None, None, 3])
    return rgb


def _decode_square(path, decoder, window, decoders_present):
    """One file -> its centred square as float32 levels in [0, 255] (a 16-bit
    PNG keeps its fractions). ``window``: a JPEG's crop window at its
    decoder's scale, unused for other files.

    Levels rather than [0, 1]: a JPEG, nearly every file, then needs one cast
    here and one after the resize (``_to_8bit``), with no scaling pass."""
    branches = [
        lambda scale=scale: tf.cast(tf_decode_jpeg_square(tf.io.read_file(path), window, scale), tf.float32)
        for scale in JPEG_SCALES
    ]
    branches += [
        lambda: tf_decode_png(tf.io.read_file(path), square=True) * 255.0,
        lambda: centre_square(_pil_in_graph(path)) * 255.0,
    ]
    return _choose(decoder, branches, decoders_present)


def _resize(square_levels, image_size: int, mode, modes_present):
    """A square of float levels in [0, 255] -> ``image_size`` x ``image_size``,
    8-bit; ``mode`` from ``_resize_mode``."""
    size = [image_size, image_size]
    branches = [
        lambda: square_levels,
        lambda: tf.image.resize(square_levels, size, antialias=True),
        lambda: tf.image.resize(square_levels, size),
    ]
    resized = _to_8bit(_choose(mode, branches, modes_present))
    resized.set_shape([image_size, image_size, 3])
    return resized


def _to_8bit(levels):
    """Float levels in [0, 255] -> uint8, rounded to the nearest.

    No clamping pass: both resizes here (bilinear, and antialiasing's triangle
    filter) weigh pixels with non-negative weights that sum to one, so they
    never leave the range of their input, and float rounding past 255 (1e-5
    at most) still truncates to 255 after adding the 0.5.

    From here on images are 8-bit, as the reports' Pillow pipelines had them:
    a quarter of the bytes to flip, batch and buffer, and ``color.srgb_to_linear``
    reads 8-bit values from a table. The rounding moves L by at most ~0.2,
    finer than anything a colorization network resolves."""
    return tf.cast(levels + 0.5, tf.uint8)
