"""Colorize one image of any size, mode and format with a trained model.

The recipe of richzhang/colorization's util, in TF: convert to Lab, feed the
network L at its working size, resize the predicted ab back to the original
size, and join it with the *original full-resolution* L. The output therefore
has the input's size and exactly the input's lightness; only colour is invented.
A network can predict an ab that no sRGB colour has at that L; clipping the RGB
would change L, so ``color.shrink_into_gamut`` instead moves each such pixel's
ab towards gray just enough to be displayable.

Memory. The network runs at its small working size; everything at full
resolution is done a tile at a time (``tiles``: bands of whole rows), so the
float intermediates of the colour science (tens of bytes per pixel) exist for
one tile only. What lives at full size is the image as stored (uint8 or
uint16, see ``colorkit.data.decode.Stored``), its L (float32) and the output.
The per-pixel conversions run compiled (XLA) on chunks of one fixed size, so
one compiled program serves every image size.

Sections: loading a model, the working size, one image (prepare -> predict ->
join -> render). Files, folders and export are in ``colorkit.batch``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from colorkit import color, hints as hint_tools, runs
from colorkit.checks import check_whole
from colorkit.data.decode import load_rgb, load_stored
from colorkit.errors import ColorkitError
from colorkit.experiments import PRETRAINED
from colorkit.quantize import DEFAULT_TEMPERATURE

#: working size of a model that takes any size, when none is asked for
DEFAULT_SIZE = 256


# --- Loading a model ------------------------------------------------------------------------------


def _load(path: Path) -> keras.Model:
    import colorkit.models  # noqa: F401  (registers the custom layers)

    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as error:
        raise ColorkitError(f"{path} could not be loaded as a Keras model: {error}") from error


def load_model(source) -> keras.Model:
    """The trained model of a run folder (its best checkpoint) or a ``.keras`` file."""
    return _load(runs.find_model_file(source))


def load_colorizer(source) -> keras.Model:
    """The model of ``source``, ready for inference: a run folder, a ``.keras``
    file, or a released model (``pretrained:NAME``; fetched and converted once). A
    run's ``colorizer.keras`` holds its decode step (the temperature it was
    trained with), so no configuration needs to be read; anything else goes
    through ``as_colorizer``."""
    if str(source).startswith(PRETRAINED):  # pretrained:eccv16, pretrained:siggraph17, pretrained:FILE.pth
        from colorkit import pretrained

        return pretrained.load_spec(str(source)[len(PRETRAINED):])
    return as_colorizer(_load(runs.find_colorizer_file(source)))


def as_colorizer(model: keras.Model, temperature: float = DEFAULT_TEMPERATURE, bins=None) -> keras.Model:
    """A model that maps normalised L to normalised ab at full resolution.

    Regression models already do; a classification model (Zhang's head, which
    outputs bin logits at 1/4 resolution) is wrapped with the annealed-mean decode."""
    if model.outputs[0].shape[-1] == 2:
        return model
    from colorkit.models.zhang import zhang_inference_model

    return zhang_inference_model(model, temperature=temperature, bins=bins)


# --- The working size -----------------------------------------------------------------------------


def working_size(model: keras.Model, default: int = DEFAULT_SIZE) -> tuple[int, int]:
    """The (height, width) the network was built for, or ``default`` when it takes any size."""
    height, width = model.inputs[0].shape[1:3]
    return (height or default, width or default)


def fits_size(model: keras.Model, height: int, width: int) -> bool:
    """Whether ``model`` turns a ``height`` x ``width`` input into an output of
    the same size. Keras' shape inference answers it: no pixel is computed."""

    def spec(tensor):
        shape = (1, height, width, *tensor.shape[3:]) if len(tensor.shape) == 4 else (1, *tensor.shape[1:])
        return keras.KerasTensor(shape, dtype=tensor.dtype)

    try:
        output = model.compute_output_spec(keras.tree.map_structure(spec, model.input))
    except Exception:  # any size the graph cannot take (a skip connection that does not line up) is a no
        return False
    return tuple(output.shape[1:3]) == (height, width)


def required_multiple(model: keras.Model, largest: int = 1024) -> int:
    """Image sides fed to ``model`` must be multiples of this (8 for three
    stride-2 layers; 256 for a U-Net built for any size, which then has 8
    levels): the smallest power of two whose single and triple both fit."""
    multiple = 1
    while multiple <= largest:
        if fits_size(model, multiple, multiple) and fits_size(model, 3 * multiple, 3 * multiple):
            return multiple
        multiple *= 2
    raise ColorkitError(f"{model.name} does not give back an image of the size it is given at any side up to {largest}")


def resolve_size(model: keras.Model, size=None) -> tuple[int, int]:
    """The (height, width) to run ``model`` at: the size it was built for, or
    ``size`` (an int or a pair; default ``DEFAULT_SIZE``) for a model that takes
    any size, checked against its ``required_multiple``."""
    built = tuple(model.inputs[0].shape[1:3])
    asked = (size, size) if isinstance(size, (int, np.integer)) else (tuple(size) if size is not None else None)
    if None not in built:
        if asked is not None and asked != built:
            raise ColorkitError(f"{model.name} was built for {built[0]}x{built[1]} images; "
                                f"--size cannot change that (leave it out)")
        return built
    asked = asked or (DEFAULT_SIZE, DEFAULT_SIZE)
    multiple = required_multiple(model)
    for side in asked:
        check_whole(side, "--size", low=1)
        if side % multiple:
            nearest = sorted({max(multiple, side // multiple * multiple), (side // multiple + 1) * multiple})
            raise ColorkitError(f"--size {side} does not fit {model.name}, which needs a multiple of {multiple}; "
                                f"use {' or '.join(map(str, nearest))}")
    return tuple(int(side) for side in asked)


# --- Tiles and the per-pixel steps ---------------------------------------------------------------

#: The most memory, in bytes per pixel of the image, that colorizing one image
#: takes beyond the model's: the image as stored (3 for 8-bit RGB, up to 8 for
#: 16-bit RGBA), its L (4), the 8-bit output (4), the encoded bytes, with room to
#: spare. The pixel limits of ``colorize`` and ``serve`` are set from it, and
#: tests/test_colorize.py holds a JPEG, from a file and uploaded, well below it.
BYTES_PER_PIXEL = 24
#: pixels in one tile of the full-resolution work: its float intermediates
#: (the colour science's, tens of bytes per pixel) stay in the tens of MB
TILE_PIXELS = 1 << 18


def tiles(height: int, width: int, pixels: int = TILE_PIXELS):
    """``(rows, columns)`` slices that cover a ``height`` x ``width`` image in
    bands of whole rows of at most ``pixels``; a row longer than that is cut
    into pieces too."""
    rows, columns = max(1, pixels // width), min(width, pixels)
    for top in range(0, height, rows):
        for left in range(0, width, columns):
            yield slice(top, min(top + rows, height)), slice(left, min(left + columns, width))


@tf.function(jit_compile=True)
def _lightness_of(rgb):
    """L of sRGB pixels ``[N, 3]`` (uint8, or float32 in [0, 1])."""
    return color.rgb_to_lab(rgb)[:, 0]


@tf.function(jit_compile=True)
def _unit_rgb_of(lab):
    """sRGB in [0, 1] of Lab pixels ``[N, 3]`` (clipped), and which of them are
    surely inside the gamut: their linear RGB lies in [0, 1], stricter than
    the gamut fit's own test, so a pixel it passes is one the fit leaves alone."""
    linear = color.lab_to_linear_rgb(lab)
    surely_inside = tf.reduce_all((linear >= 0.0) & (linear <= 1.0), axis=-1)
    return tf.clip_by_value(color.lab_to_rgb(lab, clip=False), 0.0, 1.0), surely_inside


@tf.function(jit_compile=True)
def _rgb_8bit_of(lab):
    """``_unit_rgb_of`` with the colours rounded to 8-bit values, as ``color.to_8bit`` rounds."""
    rgb, surely_inside = _unit_rgb_of(lab)
    return tf.cast(tf.round(rgb * 255.0), tf.uint8), surely_inside


def _rgb_pixels(tile: np.ndarray) -> np.ndarray:
    """A tile of stored pixels (``[h, w, 1 or 3]``: uint8, uint16 or float in
    [0, 1]) as ``[N, 3]`` sRGB that ``_lightness_of`` takes: uint8 or float32."""
    pixels = tile.reshape(-1, tile.shape[-1])
    if pixels.dtype == np.uint16:
        pixels = pixels.astype(np.float32) / 65535.0
    elif pixels.dtype != np.uint8:
        pixels = pixels.astype(np.float32)
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def lightness(image: np.ndarray) -> np.ndarray:
    """L (``[H, W, 1]`` float32, in [0, 100]) of an image ``[H, W, 1 or 3]`` of
    uint8, uint16 or float values in [0, 1], worked out a tile at a time."""
    height, width = image.shape[:2]
    l_full = np.empty((height, width, 1), np.float32)
    for rows, columns in tiles(height, width):
        tile = image[rows, columns]
        l_full[rows, columns, 0] = color.per_pixel(_lightness_of, _rgb_pixels(tile)).reshape(tile.shape[:2])
    return l_full


# --- One image: prepare, predict, join, render --------------------------------------------------


class Prepared(NamedTuple):
    """One image ready for the network."""

    l_full: np.ndarray  # [H, W, 1] the image's own L, which the output keeps
    feed: object  # the network's inputs for it (normalised L, or a hint model's dict), batch of one


#: the pixel types an image array may hold: integers are read by their type, floats are in [0, 1]
PIXEL_TYPES = (np.uint8, np.uint16, np.float32, np.float64)


def _checked_pixels(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] not in (1, 3) or 0 in image.shape or image.dtype not in PIXEL_TYPES:
        raise ColorkitError(f"expected an image of shape [H, W, 1] or [H, W, 3] holding uint8, uint16 or float "
                            f"values, got {image.shape} {image.dtype}")
    return image


def prepare(colorizer: keras.Model, image, size, hints=None, reference=None) -> Prepared:
    """L of ``image`` (``[H, W, 3]`` RGB or ``[H, W, 1]`` gray: uint8, uint16, or
    floats in [0, 1]; a colour photo is made gray by this) at full size, and the
    network's inputs at ``size`` (height, width)."""
    image = _checked_pixels(image)
    l_full = lightness(image)
    l_small = working_lightness(l_full, size)
    feed = hint_feed(colorizer, color.normalize_l(l_small)[None], image.shape[:2], size, hints, reference)
    return Prepared(l_full, feed)


def working_lightness(l_full: np.ndarray, size) -> np.ndarray:
    """L (``[H, W, 1]``) averaged down to the working ``size`` (height, width),
    as ``tf.image.resize``'s "area" method does it, without handing TensorFlow
    the whole image (it would copy it). Area averaging is separable: one side
    is averaged first, a band at a time, then the other; the side that gives
    the smaller intermediate goes first (a tall, thin image's height)."""
    height, width = l_full.shape[:2]
    if height * size[1] <= size[0] * width:
        return _area_narrowed(_area_narrowed(l_full, size[1]).swapaxes(0, 1), size[0]).swapaxes(0, 1)
    return _area_narrowed(_area_narrowed(l_full.swapaxes(0, 1), size[0]).swapaxes(0, 1), size[1])


def _area_narrowed(values: np.ndarray, width: int) -> np.ndarray:
    """``values`` (``[R, C, 1]``) with each row area-averaged to ``width`` columns, a band of rows at a time."""
    rows, columns = values.shape[:2]
    band = max(1, TILE_PIXELS // columns)
    return np.concatenate([tf.image.resize(values[top : top + band], (min(band, rows - top), width), method="area")
                           .numpy() for top in range(0, rows, band)])


def hint_feed(colorizer, l_norm, image_size, size, hints=None, reference=None):
    """The model's inputs for one image: L alone, or L with its hints rasterised at
    the working ``size`` (``image_size`` is the hints' coordinate frame)."""
    hint_ab = hint_mask = hist = None
    if hints:
        hint_ab, hint_mask = hint_tools.hint_maps(hints, *image_size, *size)
        hint_ab, hint_mask = hint_ab[None], hint_mask[None]
    if reference is not None:
        if isinstance(reference, (str, Path)):
            reference = load_rgb(reference)
        hist = hint_tools.ab_histogram(reference)[None]
    return hint_tools.model_feed(colorizer, l_norm, hint_ab, hint_mask, hist)


def stack_feeds(feeds: list):
    """The inputs of several prepared images as one batch (they share the working size)."""
    if isinstance(feeds[0], dict):
        return {name: np.concatenate([feed[name] for feed in feeds]) for name in feeds[0]}
    return np.concatenate(feeds)


def predict_ab(colorizer: keras.Model, feed, batch_size: int = 16) -> np.ndarray:
    """Normalised ab for a batch of model inputs (normalised L, or the dict of a
    hint model's inputs), BatchNorm and dropout in inference mode. Keras'
    ``predict_on_batch`` runs the model as a TensorFlow graph, traced once per
    input shape, which lets TensorFlow fuse its layers (much faster than layer
    by layer)."""
    count = len(feed["l"] if isinstance(feed, dict) else feed)

    def part(start):
        if isinstance(feed, dict):
            return {name: value[start : start + batch_size] for name, value in feed.items()}
        return feed[start : start + batch_size]

    outputs = [np.asarray(colorizer.predict_on_batch(part(i)), np.float32) for i in range(0, count, batch_size)]
    return np.concatenate(outputs)


def lab_tile(l_full: np.ndarray, ab: np.ndarray, rows: slice, columns: slice) -> np.ndarray:
    """Lab of one tile of the image: its own L, and ``ab`` (Lab units, at the
    working size) resized to the whole image, this tile of it.

    The resize is antialiased bilinear (so a large shrink, a working size bigger
    than the image, does not alias) as ``tf.image.resize`` does it for the whole
    image: the same kernel and scale, translated so that the tile's first row
    and column land where they lie in the image."""
    height, width = l_full.shape[:2]
    scale = np.float32([height, width]) / np.float32(ab.shape[:2])
    resized = tf.raw_ops.ScaleAndTranslate(
        images=ab[None], size=[rows.stop - rows.start, columns.stop - columns.start], scale=scale,
        translation=np.float32([-rows.start, -columns.start]), kernel_type="triangle", antialias=True)
    return np.concatenate([l_full[rows, columns], resized[0].numpy()], axis=-1)


def join_ab(l_full: np.ndarray, ab_norm: np.ndarray) -> np.ndarray:
    """Lab at full size: the image's own L with the predicted ab (normalised, at
    the working size) resized to it (for small images: all of it at once)."""
    height, width = l_full.shape[:2]
    return lab_tile(l_full, color.denormalize_ab(np.asarray(ab_norm, np.float32)), slice(0, height), slice(0, width))


def colorized_tiles(l_full: np.ndarray, ab_norm: np.ndarray, dtype=np.uint8):
    """Yield ``(rows, columns, rgb)`` for each tile of the colorized image: its
    Lab (``lab_tile``) fitted into the sRGB gamut, as ``[h, w, 3]`` sRGB of
    ``dtype`` (see ``srgb_in_gamut``)."""
    ab = color.denormalize_ab(np.asarray(ab_norm, np.float32))
    for rows, columns in tiles(*l_full.shape[:2]):
        shape = (rows.stop - rows.start, columns.stop - columns.start, 3)
        yield rows, columns, srgb_in_gamut(lab_tile(l_full, ab, rows, columns).reshape(-1, 3), dtype).reshape(shape)


def srgb_in_gamut(lab: np.ndarray, dtype=np.float32) -> np.ndarray:
    """sRGB of Lab pixels ``[N, 3]``, each first fitted into the gamut
    (``color.shrink_into_gamut``), as ``dtype``: uint8 (as ``color.to_8bit``
    rounds), uint16 (rounded to 0-65535) or float32 in [0, 1].

    One compiled pass converts every pixel and finds those that are surely
    inside; only the others go through the fit and are converted again (the
    fit leaves a pixel that is inside as it is, so the result is the same)."""
    step = _rgb_8bit_of if dtype == np.uint8 else _unit_rgb_of
    rgb, surely_inside = color.per_pixel(step, lab)
    maybe_outside = ~surely_inside
    if maybe_outside.any():
        rgb[maybe_outside] = color.per_pixel(step, color.shrink_into_gamut(lab[maybe_outside]))[0]
    return np.round(rgb * 65535.0).astype(np.uint16) if dtype == np.uint16 else rgb


def render(l_full: np.ndarray, ab_norm: np.ndarray, dtype=np.float32) -> np.ndarray:
    """The colorized image, ``[H, W, 3]``: L joined with ab, fitted into the
    gamut, as sRGB of ``dtype`` (see ``srgb_in_gamut``)."""
    out = np.empty((*l_full.shape[:2], 3), dtype)
    for rows, columns, rgb in colorized_tiles(l_full, ab_norm, dtype):
        out[rows, columns] = rgb
    return out


def colorize_lab(colorizer: keras.Model, rgb, size=None, hints=None, reference=None) -> np.ndarray:
    """Lab of the colorized ``rgb`` ([H, W, 3] in [0, 1]; a colour photo is made gray first),
    before any gamut fitting (the out-of-gamut metric needs it).

    The network sees L resized to ``size`` (its working size by default); its ab
    is resized back to H x W and joined with the original L. ``hints`` (local
    hints in this image's pixel coordinates, see ``colorkit.hints``) and
    ``reference`` (an RGB image whose colour distribution is the global hint)
    need a model trained with hints."""
    item = prepare(colorizer, rgb, resolve_size(colorizer, size), hints, reference)
    return join_ab(item.l_full, predict_ab(colorizer, item.feed)[0])


def colorize(model: keras.Model, image, hints=None, reference=None, size=None) -> np.ndarray:
    """Colorize ``image`` -> an RGB array of the same size.

    ``image``: a file path, or an array as an image library gives it: uint8
    (0-255) or uint16 (0-65535) values, read by their type, or floats in
    [0, 1]; RGB ``[H, W, 3]``, gray ``[H, W]`` or ``[H, W, 1]``, or RGBA (the
    alpha is ignored). The result has the input's type: uint8 in, uint8 out;
    floats in, float32 out (a file path gives float32; its transparency is
    composited over white). ``hints``: local hints (a list of ``{"x", "y",
    "rgb" or "ab", "size"}`` or its JSON text; see ``colorkit.hints``);
    ``reference``: an RGB array or file whose colours are the global hint. Both
    need a model trained with hints. ``size``: the working size of a model that
    takes any size (default 256)."""
    if isinstance(image, (str, Path)):
        stored = load_stored(image)
        image, kind = (stored.pixels if stored.alpha is None else stored.rgb_over_white()), np.dtype(np.float32)
    else:
        image, kind = checked_image(image)
    colorizer = as_colorizer(model)
    item = prepare(colorizer, image, resolve_size(colorizer, size), hints, reference)
    return render(item.l_full, predict_ab(colorizer, item.feed)[0], kind)


#: How far outside [0, 1] a float image may stray (rounding) before it is taken for another scale.
FLOAT_RANGE_SLACK = 1e-3


def checked_image(image) -> tuple[np.ndarray, np.dtype]:
    """``image`` (see ``colorize``) as ``[H, W, 1 or 3]`` pixels that ``prepare``
    takes (integers as they are, floats as float32 in [0, 1]), and the type to
    give back (float32 for any float).

    A float array holding 0-255 values is refused rather than read as mostly
    white: the scale of floats cannot be told from their type."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or 0 in array.shape:
        raise ColorkitError(f"expected an image of shape [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got {array.shape}")
    array = array[..., :3]
    if array.dtype in (np.uint8, np.uint16):
        return array, array.dtype
    if not np.issubdtype(array.dtype, np.floating):
        raise ColorkitError(f"image arrays must be uint8, uint16 or float in [0, 1], got {array.dtype}")
    unit = array.astype(np.float32)
    if not np.isfinite(unit).all():
        raise ColorkitError("the image holds NaN or infinite values")
    low, high = float(unit.min()), float(unit.max())
    if not (-FLOAT_RANGE_SLACK <= low and high <= 1 + FLOAT_RANGE_SLACK):
        raise ColorkitError(f"a float image must hold values in [0, 1]; this one spans [{low:g}, {high:g}] "
                            "(pass 8-bit pixels as a uint8 array, or divide by 255)")
    return np.clip(unit, 0.0, 1.0), np.dtype(np.float32)
