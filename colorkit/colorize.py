"""Colorize one image of any size, mode and format with a trained model.

The recipe of richzhang/colorization's util, in TF: convert to Lab, feed the
network L at its working size, resize the predicted ab back to the original
size, and join it with the *original full-resolution* L. The output therefore
has the input's size and exactly the input's lightness; only colour is invented.
A network can predict an ab that no sRGB colour has at that L; clipping the RGB
would change L, so ``color.shrink_into_gamut`` instead moves each such pixel's
ab towards gray just enough to be displayable.

Sections: loading a model, the working size, one image (prepare -> predict ->
join). Files, folders and export are in ``colorkit.batch``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from colorkit import color, hints as hint_tools, runs
from colorkit.checks import check_whole
from colorkit.data.decode import load_rgb
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


# --- One image: prepare, predict, join ----------------------------------------------------------


class Prepared(NamedTuple):
    """One image ready for the network."""

    l_full: np.ndarray  # [H, W, 1] the image's own L, which the output keeps
    feed: object  # the network's inputs for it (normalised L, or a hint model's dict), batch of one


def _checked_rgb(rgb) -> np.ndarray:
    rgb = np.asarray(rgb, np.float32)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or 0 in rgb.shape:
        raise ColorkitError(f"expected an RGB image of shape [H, W, 3], got {rgb.shape}")
    return rgb


def prepare(colorizer: keras.Model, rgb, size, hints=None, reference=None) -> Prepared:
    """L of ``rgb`` ([H, W, 3] in [0, 1]; a colour photo is made gray by this) at
    full size, and the network's inputs at ``size`` (height, width)."""
    rgb = _checked_rgb(rgb)
    l_full = color.rgb_to_lab(tf.constant(rgb))[..., :1]
    l_small = tf.image.resize(l_full, size, method="area", antialias=True)
    feed = hint_feed(colorizer, color.normalize_l(l_small).numpy()[None], rgb.shape[:2], size, hints, reference)
    return Prepared(l_full.numpy(), feed)


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
    hint model's inputs), BatchNorm and dropout in inference mode."""
    count = len(feed["l"] if isinstance(feed, dict) else feed)

    def part(start):
        if isinstance(feed, dict):
            return {name: value[start : start + batch_size] for name, value in feed.items()}
        return feed[start : start + batch_size]

    outputs = [np.asarray(colorizer(part(i), training=False), np.float32) for i in range(0, count, batch_size)]
    return np.concatenate(outputs)


def join_ab(l_full: np.ndarray, ab_norm: np.ndarray) -> np.ndarray:
    """Lab at full size: the image's own L with the predicted ab (normalised, at
    the working size) resized to it. Antialiased, so a large shrink (a working
    size bigger than the image) does not alias."""
    height, width = l_full.shape[:2]
    ab = tf.image.resize(color.denormalize_ab(ab_norm), (height, width), method="bilinear", antialias=True)
    return np.concatenate([l_full, ab.numpy()], axis=-1)


def colorize_lab(colorizer: keras.Model, rgb: np.ndarray, size=None, hints=None, reference=None) -> np.ndarray:
    """Lab of the colorized ``rgb`` ([H, W, 3] in [0, 1]; a colour photo is made gray first),
    before any gamut fitting (the out-of-gamut metric needs it).

    The network sees L resized to ``size`` (its working size by default); its ab
    is resized back to H x W and joined with the original L. ``hints`` (local
    hints in this image's pixel coordinates, see ``colorkit.hints``) and
    ``reference`` (an RGB image whose colour distribution is the global hint)
    need a model trained with hints."""
    item = prepare(colorizer, rgb, resolve_size(colorizer, size), hints, reference)
    return join_ab(item.l_full, predict_ab(colorizer, item.feed)[0])


def colorize_rgb(colorizer: keras.Model, rgb: np.ndarray, size=None, hints=None, reference=None) -> np.ndarray:
    """Colorize one RGB image: same size, same L, ab shrunk into the sRGB gamut."""
    return color.lab_to_rgb_in_gamut(colorize_lab(colorizer, rgb, size, hints, reference))


def colorize(model: keras.Model, image, hints=None, reference=None, size=None) -> np.ndarray:
    """Colorize ``image`` -> an RGB array of the same size.

    ``image``: a file path, or an array as an image library gives it: uint8
    (0-255) or uint16 (0-65535) values, read by their type, or floats in
    [0, 1]; RGB ``[H, W, 3]``, gray ``[H, W]`` or ``[H, W, 1]``, or RGBA (the
    alpha is ignored). The result has the input's type: uint8 in, uint8 out;
    floats in, float32 out (a file path gives float32). ``hints``: local hints
    (a list of ``{"x", "y", "rgb" or "ab", "size"}`` or its JSON text; see
    ``colorkit.hints``); ``reference``: an RGB array or file whose colours are
    the global hint. Both need a model trained with hints. ``size``: the
    working size of a model that takes any size (default 256)."""
    if isinstance(image, (str, Path)):
        image = load_rgb(image)
    rgb, kind = unit_rgb(image)
    result = colorize_rgb(as_colorizer(model), rgb, size=size, hints=hints, reference=reference)
    return _as_kind(result, kind)


#: How far outside [0, 1] a float image may stray (rounding) before it is taken for another scale.
FLOAT_RANGE_SLACK = 1e-3


def unit_rgb(image) -> tuple[np.ndarray, np.dtype]:
    """``image`` (see ``colorize``) as RGB float32 in [0, 1], and the type to give back.

    A float array holding 0-255 values is refused rather than read as mostly
    white: the scale of floats cannot be told from their type."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or 0 in array.shape:
        raise ColorkitError(f"expected an image of shape [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got {array.shape}")
    if array.dtype in (np.uint8, np.uint16):
        unit = array.astype(np.float32) / np.iinfo(array.dtype).max
    elif np.issubdtype(array.dtype, np.floating):
        unit = array.astype(np.float32)
        if not np.isfinite(unit).all():
            raise ColorkitError("the image holds NaN or infinite values")
        low, high = float(unit.min()), float(unit.max())
        if not (-FLOAT_RANGE_SLACK <= low and high <= 1 + FLOAT_RANGE_SLACK):
            raise ColorkitError(f"a float image must hold values in [0, 1]; this one spans [{low:g}, {high:g}] "
                                "(pass 8-bit pixels as a uint8 array, or divide by 255)")
        unit = np.clip(unit, 0.0, 1.0)
    else:
        raise ColorkitError(f"image arrays must be uint8, uint16 or float in [0, 1], got {array.dtype}")
    rgb = np.repeat(unit, 3, axis=-1) if unit.shape[-1] == 1 else unit[..., :3]
    return np.ascontiguousarray(rgb), array.dtype


def _as_kind(rgb: np.ndarray, kind: np.dtype) -> np.ndarray:
    """``rgb`` in [0, 1] as the caller's type: integers rounded to their full scale, floats as float32."""
    if kind in (np.uint8, np.uint16):
        return np.round(rgb * np.iinfo(kind).max).astype(kind)
    return rgb.astype(np.float32)
