"""The tf.data input pipeline: files -> square RGB batches -> (L, ab) batches.

Stages, in order::

    paths --shuffle--> decode + centre square + resize + flip (parallel) --skip unreadable-->
          --repeat--> batch --other augmentation (Keras layers)--> Lab --> prefetch

Why this shape:

* Only path strings are shuffled, so memory does not grow with the number of
  files; images exist only while they are in flight.
* Decoding runs in TensorFlow's C++ decoders with ``num_parallel_calls``; only
  files TensorFlow gets wrong go through Pillow (see ``colorkit.data.decode``).
  Every file is probed once before the pipeline starts, so unreadable files are
  named in one warning and never reach it, and each file's decoder and resize
  are chosen from its probe beforehand (no branching per image when all files
  agree), and so is a JPEG's crop window. A file damaged in a way the probe
  cannot see is dropped by ``ignore_errors`` instead of ending the epoch, and
  replaced by a mid-gray image so every epoch has a known length.
* Resize policy: the largest centred square is cut out, then resized to
  ``image_size`` x ``image_size`` (bilinear; antialiased when shrinking 2x or
  more). Nothing is stretched; the borders of non-square photos are lost.
  JPEGs are cropped while decoding, and large ones decoded at 1/2, 1/4 or 1/8
  scale by libjpeg itself, which is far cheaper than resizing afterwards.
* After the resize, images are rounded to 8 bits (``_to_8bit``), as any saved
  photo is: flips, batches and buffers move a quarter of the bytes, and the
  Lab step linearises 8-bit values by table lookup (see ``color.srgb_to_linear``).
  ``make_rgb_dataset`` hands out float32 in [0, 1] all the same.
* Augmentation runs on RGB, before the Lab split, so the input L and the target
  ab always come from the same augmented pixels. The default is a horizontal
  flip, done in the decoding map: it never changes a colour. Photometric
  augmentation (brightness, contrast, saturation) changes the colours the
  model must predict, so it is off unless asked for
  (``augmentation_layers(photometric=True)``).
* Lab conversion runs on whole 8-bit batches with ``colorkit.color`` (TF ops,
  XLA-compiled), not per image in Python.
* Every map function is instantiated anew each time an iterator starts (Keras
  starts one per epoch), and TensorFlow optimises its graph each time: tens of
  ms per epoch, more for every op in it. Hence few maps, with few ops each.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

from colorkit import color
from colorkit.data.decode import (
    DEFAULT_MAX_PIXELS,
    JPEG_SCALES,
    ROUTE_JPEG,
    ROUTE_PNG,
    centre_square,
    jpeg_halvings,
    jpeg_square_windows,
    load_image,
    load_rgb,
    pil_rgb,
    probe_all,
    scaled_side,
    scan_images,
    tf_decode_jpeg,
    tf_decode_jpeg_square,
    tf_decode_png,
    warn_skipped,
)
from colorkit.errors import ColorkitError

__all__ = [
    "augmentation_layers",
    "batch_images",
    "drop_grayscale",
    "load_image",
    "load_rgb",
    "make_dataset",
    "make_rgb_dataset",
    "scan_images",
    "to_model_io",
]

AUTOTUNE = tf.data.AUTOTUNE
#: The 8-bit gray nearest to L = 50 (a = b = 0): the stand-in for an image that fails to decode.
_MID_GRAY = round(255 * float(color.lab_to_rgb(np.array([50.0, 0.0, 0.0], np.float32))[0]))
_log = logging.getLogger(__name__)


# --- Decoding inside the graph ------------------------------------------------------

#: The square decoders, by index: a JPEG at 1/1, 1/2, 1/4, 1/8 (0-3), a PNG, Pillow.
_PNG_SQUARE, _PIL_SQUARE = len(JPEG_SCALES), len(JPEG_SCALES) + 1
#: How a decoded square reaches the model's size, by index.
_KEEP, _SHRINK_ANTIALIASED, _BILINEAR = 0, 1, 2


def _pil_in_graph(path):
    """Pillow decoding wrapped for tf.data (only for files routed to Pillow)."""
    rgb = tf.py_function(lambda p: pil_rgb(p.numpy().decode()), [path], tf.float32)
    rgb.set_shape([None, None, 3])
    return rgb


def _choose(index, branches, present):
    """``branches[index]()``, for a tensor ``index``.

    ``present``: the indices any element of the dataset takes, known before it
    starts. When that is one index (a folder of similar JPEGs, the usual case)
    its branch is called directly: a ``switch_case`` runs its branch as a
    separate function call, which costs about a tenth of decoding a 256 px
    JPEG, and more again each time an iterator starts (every epoch)."""
    if len(present) == 1:
        return branches[present[0]]()
    return tf.switch_case(index, branches)


def _decode_whole(path, route, routes_present):
    """One file -> float32 RGB in [0, 1], at full size; ``route`` picks the
    decoder (see ``colorkit.data.decode``)."""
    branches = [
        lambda: tf_decode_jpeg(tf.io.read_file(path)),
        lambda: tf_decode_png(tf.io.read_file(path), square=False),
        lambda: _pil_in_graph(path),
    ]
    return _choose(route, branches, routes_present)


def _decode_square(path, decoder, window, decoders_present):
    """One file -> the centred square of its pixels, as float32 levels in
    [0, 255] (a 16-bit PNG keeps its fractions). ``decoder`` indexes the square
    decoders (see ``_square_decoders``); ``window`` is a JPEG's crop window at
    its decoder's scale (``jpeg_square_windows``), unused for other files.

    Why levels and not [0, 1]: JPEGs, nearly every file, then take one cast
    here and one after the resize (``_to_8bit``), with no scaling pass either side."""
    branches = [
        lambda scale=scale: tf.cast(tf_decode_jpeg_square(tf.io.read_file(path), window, scale), tf.float32)
        for scale in JPEG_SCALES
    ]
    branches += [
        lambda: tf_decode_png(tf.io.read_file(path), square=True) * 255.0,
        lambda: centre_square(_pil_in_graph(path)) * 255.0,
    ]
    return _choose(decoder, branches, decoders_present)


def _square_decoders(routes, sides, image_size: int) -> np.ndarray:
    """The square decoder of every file, from its probe: JPEGs are cropped and
    decoded at the smallest DCT scale that keeps the square at least
    ``image_size`` wide (``jpeg_halvings``); PNGs and Pillow's files whole."""
    routes = np.asarray(routes)
    halvings = jpeg_halvings(sides, image_size).numpy()
    others = np.where(routes == ROUTE_PNG, _PNG_SQUARE, _PIL_SQUARE)
    return np.where(routes == ROUTE_JPEG, halvings, others)


def _decoding_scales(decoders) -> np.ndarray:
    """How much each file shrinks while decoding: a JPEG's DCT scale (1, 2, 4
    or 8), 1 for every other file."""
    return (2 ** np.where(np.asarray(decoders) < _PNG_SQUARE, decoders, 0)).astype(np.int32)


def _resize_mode(side, image_size: int):
    """How a decoded square of ``side`` px reaches ``image_size``: kept as it is,
    shrunk with antialiasing (2x or more), or resized bilinearly. ``side`` may
    be a tensor inside the graph or a vector of every file's side beforehand.

    Antialiasing costs about 2.5x a plain bilinear resize and only matters
    when shrinking by 2x or more; JPEGs arrive pre-scaled below that."""
    side = tf.convert_to_tensor(side, tf.int32)
    return tf.where(side == image_size, _KEEP, tf.where(side >= 2 * image_size, _SHRINK_ANTIALIASED, _BILINEAR))


def _resize(square_levels, image_size: int, mode, modes_present=(_KEEP, _SHRINK_ANTIALIASED, _BILINEAR)):
    """A square image of float levels in [0, 255] -> ``image_size`` x ``image_size``,
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

    Images travel the pipeline as 8-bit values from here on, as the reports'
    Pillow pipelines had them: a quarter of the bytes to flip, batch and buffer,
    and ``color.rgb_to_lab`` linearises 8-bit values with an exact table instead
    of a pow (the Lab step's largest cost). The rounding moves L by at most
    ~0.2, finer than anything a colorization network resolves."""
    return tf.cast(levels + 0.5, tf.uint8)


def _as_float(rgb_batches):
    """8-bit RGB batches -> float32 in [0, 1], what ``make_rgb_dataset`` gives and
    Keras augmentation layers take (float batches pass as they are)."""
    if rgb_batches.element_spec.dtype != tf.uint8:
        return rgb_batches
    return rgb_batches.map(lambda rgb: tf.image.convert_image_dtype(rgb, tf.float32), num_parallel_calls=AUTOTUNE)


def _readable(paths, max_pixels: int):
    """Probe every file; warn about the unreadable ones; ``(paths, probes)`` of
    the readable ones (each ``Probe`` has the file's route and size)."""
    probed = probe_all(paths, max_pixels)
    skipped = [(path, found.reason) for path, found in probed if found.route is None]
    warn_skipped(skipped, len(probed))
    readable = [(path, found) for path, found in probed if found.route is not None]
    if not readable:
        raise ColorkitError(f"none of the {len(probed)} files is a readable image; see the warning above for why")
    return [p for p, _ in readable], [f for _, f in readable]


# --- Augmentation ---------------------------------------------------------------


def augmentation_layers(flip: bool = True, photometric: bool = False, seed: int = 0) -> keras.Sequential:
    """Keras augmentation layers applied to RGB batches in [0, 1].

    ``flip``: random horizontal flip (colours unchanged: safe for colorization).
    ``photometric``: random brightness, contrast and saturation. These change
    the target colours themselves (a desaturated photo teaches "this is gray"),
    which is why they are off by default."""
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if photometric:
        layers += [
            keras.layers.RandomBrightness(0.1, value_range=(0.0, 1.0), seed=seed + 1),
            keras.layers.RandomContrast(0.1, value_range=(0.0, 1.0), seed=seed + 2),
            keras.layers.RandomSaturation((0.4, 0.6), value_range=(0.0, 1.0), seed=seed + 3),
        ]
    if not layers:
        raise ColorkitError("augmentation_layers needs flip=True or photometric=True; use augment=False for none")
    return keras.Sequential(layers, name="augment")


def _loaded(items, load, flip: bool, seed: int):
    """``items.map(load)``, in parallel; with ``flip`` (the default augmentation)
    each image is then mirrored left-right with probability 1/2, in the same map.

    The coin tosses are a seeded random stream zipped with the items, so they
    follow the items' order, not which thread runs first: the same seed gives
    the same batches. The stream is drawn anew each time the dataset is
    iterated (every epoch, every pass of a repeat), so every epoch flips
    differently. Keras' ``RandomFlip`` keeps a random state instead, so it has
    to run in order on one core; it cost as much CPU as decoding the images."""
    if not flip:
        return items.map(load, num_parallel_calls=AUTOTUNE)
    tosses = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(items, tosses).map(
        lambda item, toss: _mirrored_if_odd(load(item), toss), num_parallel_calls=AUTOTUNE
    )


def _mirrored_if_odd(image, toss):
    """``image`` (``[H, W, C]``) mirrored left-right when the integer ``toss`` is odd.

    Without a branch: ``tf.reverse`` over the axes ``[1]``, or over none, which
    hands the image on as it is. A ``tf.cond`` would add two branch functions
    to instantiate every time an iterator starts."""
    return tf.reverse(image, tf.range(1, 1 + tf.cast(toss % 2, tf.int32)))


def _augmented(batches, augmenter):
    """Apply a Keras augmentation layer (e.g. ``augmentation_layers(photometric=True)``)
    to 8-bit RGB batches; float batches in [0, 1] come out. The map is
    sequential so the layers' random draws happen in the same order on every
    run: the same seed gives the same batches."""
    return _as_float(batches).map(lambda rgb: tf.clip_by_value(augmenter(rgb, training=True), 0.0, 1.0))


# --- Datasets -----------------------------------------------------------------------


def _finished(batches):
    """The last stage of every dataset here: prefetch, and tf.data's autotuner off.

    Why off: with it on, deleting an iterator (Keras does, after every epoch)
    took 0.15 to 0.6 s now and then, ~1 ms with it off (measured; it waits for
    the autotuner's sleeping thread, we believe). On one core that stall was a
    third of a 320-image epoch. Without the autotuner each ``AUTOTUNE`` map runs
    one call per CPU core, as fast here as what it chose (bench/ item 2)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.prefetch(AUTOTUNE).with_options(options)


def _check_sizes(image_size, batch_size) -> None:
    for name, value in (("image_size", image_size), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ColorkitError(f"{name} must be a positive whole number, got {value!r}")


def batch_images(images, image_size: int, batch_size: int, augment=False, seed: int = 0, drop_remainder: bool = False):
    """A ``tf.data.Dataset`` of single images (any size, uint8 or float in
    [0, 1], e.g. from TFDS) -> RGB batches ``[B, S, S, 3]`` with the same resize
    policy and augmentation as ``make_rgb_dataset``."""
    _check_sizes(image_size, batch_size)

    def prepare(image):
        square = centre_square(tf.image.convert_image_dtype(image, tf.float32)[..., :3]) * 255.0
        return _resize(square, image_size, _resize_mode(tf.shape(square)[0], image_size))

    images = _loaded(images, prepare, augment is True, seed)
    return _finished(_as_float(_batched(images, batch_size, drop_remainder, augment)))


def _decoded_epoch(paths, probes, image_size: int, shuffle: bool, flip: bool, seed: int):
    """One epoch of decoded, resized (and with ``flip``, randomly mirrored)
    images, exactly ``len(paths)`` long.

    How each file is decoded and resized is settled beforehand from its probe
    (route and size), so a folder of similar photos runs one straight line of
    ops per image, without branches. ``ignore_errors`` drops an image whose
    decoding fails despite the probe (damage deep inside the compressed data);
    the epoch is then topped up with mid-gray images (L = 50, ab = 0) so it
    keeps its length. A known length is what lets Keras show progress and
    count steps from the first epoch."""
    heights, widths = np.array([p.height for p in probes]), np.array([p.width for p in probes])
    sides = np.minimum(heights, widths)
    decoders = _square_decoders([p.route for p in probes], sides, image_size)
    scales = _decoding_scales(decoders)
    modes = _resize_mode(scaled_side(sides, scales), image_size).numpy()
    decoders_present, modes_present = tuple(np.unique(decoders)), tuple(np.unique(modes))

    def load(file):
        square = _decode_square(file["path"], file["decoder"], file["window"], decoders_present)
        return _resize(square, image_size, file["mode"], modes_present)

    files = tf.data.Dataset.from_tensor_slices({
        "path": paths,
        "decoder": decoders.astype(np.int32),
        "mode": modes.astype(np.int32),
        "window": jpeg_square_windows(heights, widths, scales),
    })
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    images = _loaded(files, load, flip, seed).ignore_errors()
    gray = tf.data.Dataset.from_tensors(tf.fill([image_size, image_size, 3], tf.constant(_MID_GRAY, tf.uint8))).repeat()
    return images.concatenate(gray).take(len(paths))


def _rgb_batches(paths, image_size, batch_size, augment, shuffle, seed, repeat, drop_remainder, max_pixels):
    """The pipeline up to RGB batches, without the final prefetch."""
    _check_sizes(image_size, batch_size)
    paths, probes = _readable(paths, max_pixels)
    images = _decoded_epoch(paths, probes, image_size, shuffle, augment is True, seed)
    if repeat:
        images = images.repeat()  # each pass re-runs the shuffle and the flips: a new draw per epoch
    return _batched(images, batch_size, drop_remainder, augment)


def _batched(images, batch_size, drop_remainder, augment):
    """Single RGB images -> RGB batches. The default flip (``augment`` True)
    happened per image while loading (``_loaded``); a Keras layer runs on whole
    batches, in order (see ``_augmented``)."""
    batches = images.batch(batch_size, drop_remainder=drop_remainder)
    return _augmented(batches, augment) if augment and augment is not True else batches


def make_rgb_dataset(
    paths,
    image_size: int,
    batch_size: int,
    augment=False,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tf.data.Dataset:
    """Image files (a list of paths or a folder) -> batches of RGB float32
    ``[B, image_size, image_size, 3]`` in [0, 1].

    ``augment``: False, True (horizontal flip) or a Keras layer such as
    ``augmentation_layers(photometric=True)``. ``shuffle`` reshuffles every
    epoch, seeded by ``seed``. Unreadable files are skipped with one warning."""
    batches = _rgb_batches(paths, image_size, batch_size, augment, shuffle, seed, repeat, drop_remainder, max_pixels)
    return _finished(_as_float(batches))


def to_model_io(rgb_batches) -> tf.data.Dataset:
    """RGB batches -> ``(L / 50 - 1 [B,S,S,1], ab / 110 [B,S,S,2])`` batches,
    converted by ``color.rgb_to_model_io_xla`` (compiled; on 8-bit batches the
    linearising pow is a table lookup)."""
    return _finished(rgb_batches.map(color.rgb_to_model_io_xla, num_parallel_calls=AUTOTUNE))


def make_dataset(
    paths,
    image_size: int,
    batch_size: int,
    augment=False,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tf.data.Dataset:
    """Like ``make_rgb_dataset``, but yields what a colorization network trains
    on: ``(l_norm [B,S,S,1] in [-1, 1], ab_norm [B,S,S,2] in about [-1, 1])``."""
    batches = _rgb_batches(paths, image_size, batch_size, augment, shuffle, seed, repeat, drop_remainder, max_pixels)
    return to_model_io(batches)


# --- The grayscale filter ------------------------------------------------------------


def drop_grayscale(paths, threshold: float = 5.0, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Split images into ``(kept, dropped)``: an image is dropped as grayscale
    when no pixel has ``|a|`` or ``|b|`` above ``threshold`` (Zhang et al.
    removed such images from their training set: a gray photo teaches the
    model to predict no colour). Images are checked at full resolution;
    unreadable files are in neither list (they are named in a warning).
    The count is logged on the ``colorkit.data.pipeline`` logger."""
    readable, probes = _readable(paths, max_pixels)
    routes = [p.route for p in probes]
    routes_present = tuple(sorted(set(routes)))

    def chroma(path, route):
        ab = color.rgb_to_lab(_decode_whole(path, route, routes_present))[..., 1:]
        return path, tf.reduce_max(tf.abs(ab))

    files = tf.data.Dataset.from_tensor_slices((readable, tf.constant(routes, tf.int32)))
    checked = files.map(chroma, num_parallel_calls=AUTOTUNE).ignore_errors()
    kept, dropped = [], []
    for path, largest in checked.as_numpy_iterator():
        (kept if largest > threshold else dropped).append(path.decode())
    _log.info("dropped %d of %d images as grayscale (no pixel with |a| or |b| above %g)", len(dropped), len(readable), threshold)
    return kept, dropped

