"""User-guided colorization (Zhang, Zhu, Isola et al., SIGGRAPH 2017): local and global hints.

A hint network sees more than L. *Local hints* are points a person clicked and
coloured: the network gets an ab map holding those colours (``hint_ab``,
normalised like every ab in the kit, zero elsewhere) and a mask saying where
they are (``hint_mask``: 1 on a hint, 0 elsewhere), concatenated with L as
input channels. With an empty mask the network has only L, so the same model
is also an automatic colorizer. *Global hints* are a colour distribution, the
ab histogram over the Q bins of ``colorkit.quantize`` (``hint_hist``), taken
from a reference image a user likes; all zeros means "no global hint".

The hint format, the same for Python, the CLI (``--hints FILE``) and the HTTP
API (the ``hints`` form field), is a JSON list of objects::

    [{"x": 120, "y": 64, "rgb": [200, 30, 40], "size": 5},
     {"x": 10.5, "y": 200, "ab": [-20, 35]}]

``x`` (column) and ``y`` (row) are pixel coordinates in the image being
colorized, from its top-left corner; ``rgb`` is a colour in 0-255 values
(only its chroma is used: the image keeps its own lightness) or ``ab`` its a
and b directly (Lab units, -128..127); ``size`` is the side of the square
patch the colour covers, in the image's pixels (default 1, at most
``MAX_HINT_SIZE``). A later hint overrides an earlier one where they overlap.
At most ``MAX_HINTS`` hints are taken; the text must be UTF-8.

Training simulates users, as the paper does: per image a geometric number of
points (p = 1/8 by default, so one image in eight gets none and the mean is 7;
a recipe may ask for denser users with a smaller p), each a
square of 1-9 pixels revealing the *mean* true ab of that patch, placed
uniformly or around the centre (a Gaussian of sigma = a quarter of the side).
``simulate_hints`` does it for whole batches in TensorFlow ops, so it runs in
the ``tf.data`` pipeline.
"""

from __future__ import annotations

import json
import math
import reprlib
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from colorkit import color, quantize
from colorkit.errors import ColorkitError

#: Model input names of a hint-conditioned network (after "l").
HINT_AB, HINT_MASK, HINT_HIST = "hint_ab", "hint_mask", "hint_hist"
#: Largest patch side a hint may cover, in the image's pixels.
MAX_HINT_SIZE = 64
#: Most hints one list may carry (the CLI's and the API's bound on work per image).
MAX_HINTS = 1000
#: Simulated users: the number of points is geometric with this success probability.
GEOMETRIC_P = 1.0 / 8.0
#: Simulated users: at most this many points per image (P(more) is about 1%).
MAX_SIMULATED_POINTS = 32
#: Simulated users: patch sides are drawn from 1..this.
MAX_SIMULATED_PATCH = 9
LOCATIONS = ("uniform", "gaussian")
#: Largest |a| or |b| a hint may carry (Lab's usual 8-bit range).
AB_LIMIT = 128.0

_HINT_KEYS = {"x", "y", "ab", "rgb", "size"}


class Hint(NamedTuple):
    """One validated local hint: position (pixels), colour (Lab a, b) and patch side (pixels)."""

    x: float
    y: float
    ab: tuple[float, float]
    size: int


# --- Reading hints ------------------------------------------------------------------------

#: How values are quoted in error messages: short, however long or deeply nested they are.
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxdict, _QUOTE.maxstring, _QUOTE.maxother = 2, 4, 4, 40, 40
_EXAMPLE = '{"x": 10, "y": 20, "rgb": [255, 0, 0]}'


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ColorkitError(f"{what} must be a finite number, got {_QUOTE.repr(value)}")
    return float(value)


def _numbers(value, count: int, low: float, high: float, what: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise ColorkitError(f"{what} must be a list of {count} numbers, got {_QUOTE.repr(value)}")
    numbers = tuple(_number(v, what) for v in value)
    if not all(low <= v <= high for v in numbers):
        raise ColorkitError(f"{what} must hold numbers between {low:g} and {high:g}, got {list(value)}")
    return numbers


def _hint_colour(entry: dict, where: str) -> tuple[str, tuple[float, ...]]:
    """``("ab", (a, b))`` or ``("rgb", (r, g, b))`` (0-255), as the hint gives its colour."""
    if ("ab" in entry) == ("rgb" in entry):
        raise ColorkitError(f"{where} needs exactly one colour: \"rgb\": [r, g, b] (0-255) or \"ab\": [a, b]")
    if "ab" in entry:
        return "ab", _numbers(entry["ab"], 2, -AB_LIMIT, AB_LIMIT, f"{where}: ab")
    return "rgb", _numbers(entry["rgb"], 3, 0.0, 255.0, f"{where}: rgb")


def _one_hint(entry, index: int, height: int, width: int) -> tuple[Hint, tuple[float, ...] | None]:
    """The checked hint, and its RGB colour when it gave one (its ``ab`` is then
    still to be computed: ``_with_rgb_chroma`` converts every such colour at once)."""
    where = f"hint {index}"
    if not isinstance(entry, dict):
        raise ColorkitError(f"{where} must be an object like {_EXAMPLE}, got {_QUOTE.repr(entry)}")
    unknown = sorted(set(entry) - _HINT_KEYS)
    if unknown:
        raise ColorkitError(f"{where} has unknown keys {_QUOTE.repr(unknown)}; a hint takes {sorted(_HINT_KEYS)}")
    if "x" not in entry or "y" not in entry:
        raise ColorkitError(f"{where} needs its position: \"x\" (column) and \"y\" (row) in pixels")
    x, y = _number(entry["x"], f"{where}: x"), _number(entry["y"], f"{where}: y")
    if not (0 <= x < width and 0 <= y < height):
        raise ColorkitError(f"{where} at x={x:g}, y={y:g} lies outside the {width}x{height} image")
    size = entry.get("size", 1)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_HINT_SIZE:
        raise ColorkitError(f"{where}: size must be a whole number of pixels from 1 to {MAX_HINT_SIZE}, got {_QUOTE.repr(size)}")
    kind, values = _hint_colour(entry, where)
    return (Hint(x, y, values, size), None) if kind == "ab" else (Hint(x, y, (0.0, 0.0), size), values)


def _with_rgb_chroma(checked) -> list[Hint]:
    """The hints with the (a, b) of every RGB colour, converted in one call (one
    TensorFlow call per hint would cost milliseconds each)."""
    rgb = [values for _, values in checked if values is not None]
    if not rgb:
        return [hint for hint, _ in checked]
    chroma = iter(np.asarray(color.rgb_to_lab(np.array(rgb, np.float32) / 255.0))[:, 1:].tolist())
    return [hint if values is None else hint._replace(ab=tuple(next(chroma))) for hint, values in checked]


def read_hint_list(hints) -> list:
    """The list of hint objects in ``hints`` (None, a list, or JSON text or UTF-8
    bytes), its length checked but not its hints: cheap, so that a caller can
    refuse hints (a model that takes none) before any costly check or decoding.
    Raises ``ColorkitError`` for text that is not UTF-8, not JSON, nested beyond
    any hint list, not a list, or longer than ``MAX_HINTS``."""
    if hints is None:
        return []
    if isinstance(hints, (bytes, bytearray)):
        try:
            hints = bytes(hints).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ColorkitError(f"the hints are not UTF-8 text (byte {error.start} is {hints[error.start]:#04x}); save them as UTF-8 JSON") from None
    if isinstance(hints, str):
        try:
            hints = json.loads(hints)
        except json.JSONDecodeError as error:
            raise ColorkitError(f"the hints are not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None
        except RecursionError:
            raise ColorkitError(f"the hints are JSON nested far too deep; expected a list of objects like {_EXAMPLE}") from None
    if isinstance(hints, dict) and set(hints) == {"hints"}:
        hints = hints["hints"]
    if not isinstance(hints, list):
        raise ColorkitError(f"hints must be a JSON list of objects like {_EXAMPLE}, got {type(hints).__name__}")
    if len(hints) > MAX_HINTS:
        raise ColorkitError(f"at most {MAX_HINTS} hints are accepted, got {len(hints)}")
    return hints


def parse_hints(hints, height: int, width: int) -> list[Hint]:
    """Validate hints for an image of ``height`` x ``width`` pixels.

    ``hints``: None, a list of hint objects (see the module docstring), or the
    same as JSON text or UTF-8 bytes. Anything malformed (text that is not
    UTF-8 or not JSON, a point outside the image, a colour out of range, an
    unknown key) raises ``ColorkitError`` with one sentence naming the hint
    and what is wrong."""
    entries = read_hint_list(hints)
    return _with_rgb_chroma([_one_hint(entry, index, height, width) for index, entry in enumerate(entries)])


def load_hints_file(path, height: int, width: int) -> list[Hint]:
    """``parse_hints`` on the JSON file at ``path``."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise ColorkitError(f"cannot read the hints file {path}: {error.strerror}") from None
    try:
        return parse_hints(data, height, width)
    except ColorkitError as error:
        raise ColorkitError(f"{path}: {error}") from None


# --- Hints as network inputs ---------------------------------------------------------------------


def hint_maps(hints, height: int, width: int, out_height: int | None = None, out_width: int | None = None):
    """Rasterise hints given for a ``height`` x ``width`` image onto the network's
    ``out_height`` x ``out_width`` grid (default: the same size).

    Returns ``(hint_ab, hint_mask)``: float32 ``[out_h, out_w, 2]`` holding
    ``ab / 110`` on each hint's square and 0 elsewhere, and ``[out_h, out_w, 1]``
    holding 1 on the hints. Positions and patch sides are scaled to the grid; a
    patch never shrinks below one cell."""
    out_height, out_width = out_height or height, out_width or width
    hint_ab = np.zeros((out_height, out_width, 2), np.float32)
    mask = np.zeros((out_height, out_width, 1), np.float32)
    scale_y, scale_x = out_height / height, out_width / width
    parsed = hints if _are_parsed(hints) else parse_hints(hints, height, width)
    for hint in parsed:
        rows = _patch_span(hint.y * scale_y, hint.size * scale_y, out_height)
        cols = _patch_span(hint.x * scale_x, hint.size * scale_x, out_width)
        hint_ab[rows, cols] = color.normalize_ab(np.asarray(hint.ab, np.float32))
        mask[rows, cols] = 1.0
    return hint_ab, mask


def _are_parsed(hints) -> bool:
    return isinstance(hints, list) and all(isinstance(hint, Hint) for hint in hints)


def _patch_span(centre: float, side: float, limit: int) -> slice:
    """The cells a patch of ``side`` cells centred on ``centre`` covers along one axis."""
    side = max(1, round(side))
    start = min(max(0, int(math.floor(centre)) - (side - 1) // 2), limit - 1)
    return slice(start, min(limit, start + side))


def ab_histogram(rgb, bins=None) -> np.ndarray:
    """The global hint: how often each ab bin is the nearest bin of a pixel of ``rgb``
    (an RGB image in [0, 1], any size), as float32 [Q] summing to 1."""
    image = np.asarray(rgb, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ColorkitError(f"a reference image must be RGB of shape [H, W, 3], got {image.shape}")
    num_bins = len(quantize.ab_bins() if bins is None else quantize.check_bins(bins))
    indices = quantize.nearest_bins(color.rgb_to_lab(image)[..., 1:], bins)
    counts = np.bincount(np.asarray(indices).ravel(), minlength=num_bins).astype(np.float32)
    return counts / counts.sum()


def takes_hints(model) -> bool:
    """Whether ``model`` is a hint-conditioned network (it has a ``hint_ab`` input)."""
    return HINT_AB in _input_names(model)


def takes_global_hints(model) -> bool:
    """Whether ``model`` also takes a global hint (a ``hint_hist`` input)."""
    return HINT_HIST in _input_names(model)


def _input_names(model) -> list[str]:
    return [tensor.name.split(":")[0] for tensor in model.inputs]


def model_feed(model, l_norm, hint_ab=None, hint_mask=None, hist=None) -> dict | np.ndarray:
    """What to call ``model`` with: the L batch alone for an automatic model, or a
    dict of every input a hint model takes (absent hints are zeros: no hint)."""
    if not takes_hints(model):
        if hint_mask is not None and np.any(hint_mask) or hist is not None:
            raise ColorkitError(f"{model.name} takes no hints; train one with --hints to colorize with hints")
        return l_norm
    batch, height, width = np.shape(l_norm)[:3]
    feed = {
        "l": l_norm,
        HINT_AB: np.zeros((batch, height, width, 2), np.float32) if hint_ab is None else hint_ab,
        HINT_MASK: np.zeros((batch, height, width, 1), np.float32) if hint_mask is None else hint_mask,
    }
    if takes_global_hints(model):
        num_bins = model.get_layer(HINT_HIST).output.shape[-1]
        feed[HINT_HIST] = np.zeros((batch, num_bins), np.float32) if hist is None else hist
    elif hist is not None:
        raise ColorkitError(f"{model.name} takes local hints only; a reference image needs a model built with global_hints=True")
    return feed


# --- Simulated users, for training and evaluation ------------------------------------------------


def _geometric_counts(size, seed, p: float, max_points: int):
    """Points per image: the number of failures before the first success of a
    coin of probability ``p`` (P(0) = p, mean (1 - p) / p), capped at ``max_points``."""
    uniform = tf.random.stateless_uniform([size], seed, minval=1e-7, maxval=1.0)
    return tf.minimum(tf.cast(tf.floor(tf.math.log(uniform) / math.log(1.0 - p)), tf.int32), max_points)


def _positions(shape, side, seed, location: str):
    """Patch centres along one axis of length ``side``: uniform, or a Gaussian
    around the middle with sigma = side / 4 (clipped to the image)."""
    if location == "uniform":
        return tf.random.stateless_uniform(shape, seed, minval=0, maxval=side, dtype=tf.int32)
    centre = tf.cast(side, tf.float32) / 2.0
    drawn = centre + tf.random.stateless_normal(shape, seed) * centre / 2.0
    return tf.clip_by_value(tf.cast(tf.round(drawn), tf.int32), 0, side - 1)


def simulate_hints(ab_norm, seed, counts=None, location: str = "uniform", p: float = GEOMETRIC_P,
                   max_points: int = MAX_SIMULATED_POINTS, max_patch: int = MAX_SIMULATED_PATCH):
    """Hints a simulated user would give for a batch of true colours ``ab_norm`` [B, H, W, 2].

    Each image gets ``counts[i]`` points (default: geometric, see the module
    docstring), each a square of 1..``max_patch`` pixels at a uniform or
    Gaussian position, revealing the mean true ab over that square; a later
    point overrides an earlier one where they overlap. ``seed``: a pair of
    integers for TensorFlow's stateless random ops (the same seed gives the
    same hints). Returns ``(hint_ab [B, H, W, 2], hint_mask [B, H, W, 1])``."""
    if location not in LOCATIONS:
        raise ColorkitError(f"hint locations are drawn {' or '.join(LOCATIONS)}, got {location!r}")
    ab_norm = tf.convert_to_tensor(ab_norm, tf.float32)
    batch, height, width = tf.unstack(tf.shape(ab_norm)[:3])
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    if counts is None:
        counts = _geometric_counts(batch, seeds[0], p, max_points)
    counts = tf.broadcast_to(tf.cast(counts, tf.int32), [batch])
    slots = [batch, max_points]
    sides = tf.random.stateless_uniform(slots, seeds[1], minval=1, maxval=max_patch + 1, dtype=tf.int32)
    top = _positions(slots, height, seeds[2], location) - (sides - 1) // 2
    left = _positions(slots, width, tf.reverse(seeds[3], [0]), location) - (sides - 1) // 2
    active = tf.range(max_points)[None, :] < counts[:, None]  # [B, K]
    pixels, covered = _patch_pixels(top, left, sides, active, height, width, max_patch)
    weight = tf.cast(covered, tf.float32)  # [B, K, P]: which of its patch's P cells each point covers
    area = tf.maximum(tf.reduce_sum(weight, axis=2), 1.0)
    patch_mean = tf.einsum("bkp,bkpc->bkc", weight, tf.gather_nd(ab_norm, pixels)) / area[..., None]  # [B, K, 2]
    # each pixel keeps the latest point covering it: the highest number 1..K painted there (0: none)
    numbers = tf.broadcast_to(tf.range(1, max_points + 1)[None, :, None], tf.shape(covered)) * tf.cast(covered, tf.int32)
    latest = tf.tensor_scatter_nd_max(tf.zeros([batch, height, width], tf.int32), pixels, numbers)
    mask = tf.cast(latest > 0, tf.float32)[..., None]  # [B, H, W, 1]
    hint_ab = tf.gather(patch_mean, tf.maximum(latest - 1, 0), batch_dims=1) * mask
    return hint_ab, mask


def _patch_pixels(top, left, sides, active, height, width, max_patch: int):
    """The pixels of every point's square patch, as ``[B, K, P, 3]`` indices
    (image, row, column) into a ``[B, H, W]`` grid, P = ``max_patch`` squared,
    and ``[B, K, P]`` saying which of them the patch covers: within its side,
    inside the image, of an active point. Uncovered cells index a valid pixel
    (clipped) so that gathers and scatters need no branch; they carry weight 0.

    Painting patches cell by cell costs B x K x P, where a dense ``[B, K, H, W]``
    coverage map would cost B x K x H x W (at 256 px and 267 points, 280 M cells a batch)."""
    offsets = tf.range(max_patch)
    step_row = tf.repeat(offsets, max_patch)[None, None, :]  # [1, 1, P]
    step_col = tf.tile(offsets, [max_patch])[None, None, :]
    rows, cols = top[..., None] + step_row, left[..., None] + step_col  # [B, K, P]
    sides = sides[..., None]
    covered = ((step_row < sides) & (step_col < sides) & (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
               & active[..., None])
    images = tf.broadcast_to(tf.range(tf.shape(top)[0])[:, None, None], tf.shape(rows))
    pixels = tf.stack([images, tf.clip_by_value(rows, 0, height - 1), tf.clip_by_value(cols, 0, width - 1)], axis=-1)
    return pixels, covered


def ab_histograms(ab_norm, bins=None):
    """The global hint of each image of a batch (TensorFlow): ``[B, H, W, 2]`` ->
    ``[B, Q]``, the share of its pixels whose nearest bin is each bin."""
    num_bins = len(quantize.ab_bins() if bins is None else quantize.check_bins(bins))
    indices = quantize.nearest_bins(color.denormalize_ab(tf.convert_to_tensor(ab_norm, tf.float32)), bins)
    batch = tf.shape(indices)[0]
    flat = tf.reshape(indices + num_bins * tf.range(batch)[:, None, None], [-1])
    counts = tf.reshape(tf.math.bincount(flat, minlength=batch * num_bins, maxlength=batch * num_bins), [batch, num_bins])
    counts = tf.cast(counts, tf.float32)
    return counts / tf.reduce_sum(counts, axis=-1, keepdims=True)


#: Share of training images that get their own histogram as a global hint (the rest get none).
GLOBAL_HINT_SHARE = 0.5


def max_points_for(p: float) -> int:
    """The cap on a simulated user's points when their number is geometric with
    probability ``p``: it grows with the mean number of points, so about as few
    counts are capped as at the default (MAX_SIMULATED_POINTS at GEOMETRIC_P)."""
    return max(1, round(MAX_SIMULATED_POINTS * GEOMETRIC_P / p))


def with_simulated_hints(batches, seed: int = 0, global_hints: bool = False, location: str = "uniform",
                         new_each_epoch: bool = True, p: float = GEOMETRIC_P):
    """``(l_norm, ab_norm)`` batches -> ``(inputs, ab_norm)`` batches for a hint model,
    ``inputs`` being the dict of its named inputs with simulated local hints (and,
    with ``global_hints``, the true histogram for ``GLOBAL_HINT_SHARE`` of the
    images, zeros for the others). Seeded; ``new_each_epoch`` draws new hints on
    every pass (training), else the same ones (validation, comparable epochs).
    ``p``: the geometric distribution of the number of points (mean (1 - p) / p)."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=new_each_epoch).batch(2)

    def add(pair, seed_pair):
        l_norm, ab_norm = pair
        hint_ab, hint_mask = simulate_hints(ab_norm, seed_pair, location=location, p=p, max_points=max_points_for(p))
        inputs = {"l": l_norm, HINT_AB: hint_ab, HINT_MASK: hint_mask}
        if global_hints:
            given = tf.random.stateless_uniform([tf.shape(ab_norm)[0], 1], seed_pair + 1) < GLOBAL_HINT_SHARE
            inputs[HINT_HIST] = ab_histograms(ab_norm) * tf.cast(given, tf.float32)
        return inputs, ab_norm

    return tf.data.Dataset.zip((batches, seeds)).map(add, num_parallel_calls=tf.data.AUTOTUNE)


def feed_with_true_hints(model, l_norm, ab_norm, count: int, seed: int = 0):
    """A model's inputs for images whose true colours are known: ``count`` points per
    image drawn by a simulated user from the truth (0: no hint, the automatic
    path). This is how a sample grid shows a hint model and how the evaluation
    draws its "PSNR against the number of hints" curve."""
    hint_ab, hint_mask = simulate_hints(ab_norm, [seed, count], counts=count, max_points=max(count, 1))
    return model_feed(model, l_norm, hint_ab.numpy(), hint_mask.numpy())
