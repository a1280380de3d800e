"""The tf.data input pipeline: image files -> (L, ab) batches for a colorization network.

The chain, as keras-io builds one::

    list files -> decode -> resize -> flip -> batch -> Lab -> prefetch

* List files: every file is probed once (``probe_files``): unreadable ones are
  named in one warning and never enter the pipeline. Only the list of paths is
  shuffled, so memory does not grow with the number of files.
* Decode and resize: the largest centred square is cut out and resized to
  ``image_size`` x ``image_size``; nothing is stretched, the borders of
  non-square photos are lost. Images are rounded to 8 bits, as any saved photo.
  How each file is decoded and resized is chosen beforehand from its probe
  (``colorkit.data.plan``: that is where the speed comes from).
* Flip: the default augmentation, a random left-right mirror. It never changes
  a colour. Photometric augmentation (brightness, contrast, saturation) does
  change the colours the model must predict, so it is off unless asked for
  (``augmentation_layers(photometric=True)``). Augmentation runs on RGB, before
  the Lab split, so input L and target ab come from the same pixels.
* Lab: whole batches at once with ``colorkit.color.rgb_to_model_io_xla`` (TF
  ops, XLA-compiled). ``make_rgb_dataset(as_8bit=True)`` stops before it and
  yields the 8-bit RGB batches, for a consumer that converts them itself.
* Shard (distributed training, ``Shard``): every global batch is split among
  the replicas in order, and each input pipeline keeps only the files of its
  replicas' shares, before decoding: a worker decodes its own files only.
  The shuffle and the flips are drawn before the split, so the replicas of one
  step hold the very images (and flips) of a single process's batch.
* Decoding, resizing and flipping run in one parallel map, in TensorFlow's
  C++ decoders (Pillow only for files TensorFlow gets wrong, see
  ``colorkit.data.decode``): every map is rebuilt each epoch, so the chain has
  few maps, with few ops each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from colorkit import color
from colorkit.checks import check_whole
from colorkit.data import plan
from colorkit.data.decode import (
    DEFAULT_MAX_PIXELS,
    Probe,
    centre_square,
    load_image,
    load_rgb,
    probe_all,
    scan_images,
    warn_skipped,
)
from colorkit.errors import ColorkitError

__all__ = [
    "ProbedFiles",
    "Shard",
    "augmentation_layers",
    "batch_images",
    "drop_grayscale",
    "epoch_batch_sizes",
    "load_image",
    "load_rgb",
    "make_dataset",
    "make_rgb_dataset",
    "probe_files",
    "scan_images",
    "to_model_io",
]

AUTOTUNE = tf.data.AUTOTUNE
#: The 8-bit gray nearest to L = 50 (a = b = 0): the stand-in for an image that fails to decode.
_MID_GRAY = round(255 * float(color.lab_to_rgb(np.array([50.0, 0.0, 0.0], np.float32))[0]))
_log = logging.getLogger(__name__)


# --- List files ---------------------------------------------------------------------


@dataclass(frozen=True)
class ProbedFiles:
    """The readable files of a list or folder, each with its ``Probe`` (route
    and size), from ``probe_files``. Give it to ``make_dataset``,
    ``make_rgb_dataset`` or ``drop_grayscale`` in place of paths so that a
    split is probed once however many datasets are made from it."""

    paths: tuple[str, ...]
    probes: tuple[Probe, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: slice) -> "ProbedFiles":
        """Some of the files (a slice), with their probes."""
        return ProbedFiles(self.paths[index], self.probes[index])


def probe_files(paths_or_folder, max_pixels: int = DEFAULT_MAX_PIXELS) -> ProbedFiles:
    """Probe every file (a list of paths, or a folder listed recursively) once.

    Unreadable files are named in one warning and left out; a ``ColorkitError``
    when none is readable. ``max_pixels``: the largest image accepted (above it,
    a file is treated as a decompression bomb)."""
    probed = probe_all(paths_or_folder, max_pixels)
    skipped = [(path, found.reason) for path, found in probed if found.route is None]
    warn_skipped(skipped, len(probed))
    readable = [(path, found) for path, found in probed if found.route is not None]
    if not readable:
        raise ColorkitError(f"none of the {len(probed)} files is a readable image; see the warning above for why")
    return ProbedFiles(tuple(path for path, _ in readable), tuple(found for _, found in readable))


def _probed(files, max_pixels: int) -> ProbedFiles:
    """``files`` as ``ProbedFiles``: probed now, unless that was done already."""
    return files if isinstance(files, ProbedFiles) else probe_files(files, max_pixels)


def _list_files(files: ProbedFiles, squares: plan.SquarePlan, shuffle: bool, seed: int):
    """One small record per file: its path and its row of the decode plan.
    Shuffling these records (anew every epoch, seeded), not images, keeps
    memory flat however many files there are."""
    records = tf.data.Dataset.from_tensor_slices({"path": list(files.paths), **squares.columns})
    if shuffle:
        records = records.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return records


# --- Shard: one input pipeline's part of a distributed epoch --------------------------


@dataclass(frozen=True)
class Shard:
    """Which part of each epoch one input pipeline of a distributed run makes.

    Every global batch (``batch_size`` images) is split among ``replicas`` in
    order, in shares differing by one image at most. With ``count`` None the
    pipeline yields whole global batches, which a one-machine strategy splits
    itself; otherwise it yields the shares of replicas ``first`` to
    ``first + count - 1`` only, one batch per replica per step, and reads only
    their files (how each worker of a multi-worker run reads its own files)."""

    replicas: int
    first: int = 0
    count: int | None = None


def epoch_batch_sizes(files: int, batch_size: int, replicas: int = 1) -> list[int]:
    """The global batches of one epoch over ``files`` images: ``batch_size`` each
    and the rest in a last one, unless the rest is too small to give every
    replica an image (an empty share turns a replica's loss and BatchNorm
    statistics into NaN): it then joins the batch before."""
    if files < replicas:
        raise ColorkitError(f"{files} images cannot feed {replicas} replicas: each needs at least one image per step")
    sizes = [batch_size] * (files // batch_size)
    rest = files % batch_size
    if rest and (rest >= replicas or not sizes):
        sizes.append(rest)
    elif rest:
        sizes[-1] += rest
    return sizes


def _replica_shares(size: int, replicas: int) -> list[int]:
    """One global batch split among the replicas in order (the first ones get the odd images)."""
    base, extra = divmod(size, replicas)
    return [base + (replica < extra) for replica in range(replicas)]


def _shard_plan(files: int, batch_size: int, shard: Shard) -> tuple[np.ndarray, list[int]]:
    """(kept, sizes): whether each position of the epoch's (shuffled) order is
    this pipeline's, and the sizes of the batches it makes of its images."""
    global_sizes = epoch_batch_sizes(files, batch_size, shard.replicas)
    if shard.count is None:
        return np.ones(files, bool), global_sizes
    mine = range(shard.first, shard.first + shard.count)
    kept, sizes, start = np.zeros(files, bool), [], 0
    for size in global_sizes:
        for replica, share in enumerate(_replica_shares(size, shard.replicas)):
            if replica in mine:
                kept[start:start + share] = True
                sizes.append(share)
            start += share
    return kept, sizes


def _kept(items, kept: np.ndarray):
    """The items whose position is marked in ``kept`` (a filter on small records, before any decoding)."""
    marks = tf.data.Dataset.from_tensor_slices(kept)
    return tf.data.Dataset.zip(items, marks).filter(lambda item, mine: mine).map(lambda item, mine: item)


def _batch_by_sizes(images, sizes: list[int]):
    """Consecutive batches of the given sizes, in one pass: each image's batch
    number comes from a table, and ``group_by_window`` closes a batch as soon
    as it holds its number of images."""
    batch_of = tf.constant(np.repeat(np.arange(len(sizes)), sizes), tf.int64)
    size_of = tf.constant(sizes, tf.int64)
    numbered = tf.data.Dataset.zip(tf.data.Dataset.range(len(batch_of)), images)
    batches = numbered.group_by_window(
        key_func=lambda index, image: batch_of[index],
        reduce_func=lambda key, window: window.map(lambda index, image: image).batch(max(sizes)),
        window_size_func=lambda key: size_of[key],
    )
    return batches.apply(tf.data.experimental.assert_cardinality(len(sizes)))


# --- Decode, resize, flip: one image at a time ---------------------------------------


def _decode_and_resize(file, squares: plan.SquarePlan):
    """One file's record -> its centred square at the model's size, 8-bit RGB.
    ``squares`` has chosen the file's decoder and resize from its probe."""
    return squares.resize(squares.decode(file), file)


def _flip(image, toss):
    """``image`` (``[H, W, C]``) mirrored left-right when the integer ``toss`` is
    odd: a reverse over axis 1, or over no axis (no branch to build)."""
    return tf.reverse(image, tf.range(1, 1 + tf.cast(toss % 2, tf.int32)))


def _map_and_flip(items, load, flip: bool, seed: int, kept: np.ndarray | None = None):
    """``items.map(load)`` in parallel; with ``flip``, each image is then
    mirrored with probability 1/2 in the same map. ``kept``: only the items
    marked there are loaded (a ``Shard``), each with the toss of its position.

    The coin tosses are a seeded random stream zipped with the items, so they
    follow the items' order, not which thread runs first: the same seed gives
    the same batches. The stream is drawn anew each time the dataset is
    iterated (every epoch, every pass of a repeat), so every epoch flips
    differently. Keras' ``RandomFlip`` would keep a random state instead, and
    so run in order on one core."""
    load_one = load
    if flip:
        tosses = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        items = tf.data.Dataset.zip(items, tosses)
        load_one = lambda item, toss: _flip(load(item), toss)  # noqa: E731
    if kept is not None:
        items = _kept(items, kept)
    return items.map(load_one, num_parallel_calls=AUTOTUNE)


def _one_per_file(images, count: int, image_size: int):
    """Exactly ``count`` images. A file damaged in a way its probe cannot see
    fails to decode: ``ignore_errors`` drops it instead of ending the epoch,
    and a mid-gray image (L = 50, ab = 0) takes its place. A known length lets
    Keras show progress and count steps from the first epoch."""
    gray = tf.fill([image_size, image_size, 3], tf.constant(_MID_GRAY, tf.uint8))
    return images.ignore_errors().concatenate(tf.data.Dataset.from_tensors(gray).repeat()).take(count)


# --- Batch, augment, Lab, prefetch ------------------------------------------------------


def _batch(images, batch_size: int, drop_remainder: bool, augment):
    """Single RGB images -> RGB batches. The default flip (``augment`` True)
    happened per image; a Keras augmentation layer runs on whole batches."""
    batches = images.batch(batch_size, drop_remainder=drop_remainder)
    return _augmented(batches, augment) if augment and augment is not True else batches


def _augmented(batches, augmenter):
    """Apply a Keras augmentation layer (e.g. ``augmentation_layers(photometric=True)``)
    to RGB batches; float batches in [0, 1] come out. The map is sequential so
    the layers' random draws happen in the same order on every run: the same
    seed gives the same batches."""
    return _as_float(batches).map(lambda rgb: tf.clip_by_value(augmenter(rgb, training=True), 0.0, 1.0))


def _as_float(rgb_batches):
    """8-bit RGB batches -> float32 in [0, 1], what ``make_rgb_dataset`` gives and
    Keras augmentation layers take (float batches pass as they are)."""
    if rgb_batches.element_spec.dtype != tf.uint8:
        return rgb_batches
    return rgb_batches.map(lambda rgb: tf.image.convert_image_dtype(rgb, tf.float32), num_parallel_calls=AUTOTUNE)


def to_model_io(rgb_batches) -> tf.data.Dataset:
    """RGB batches -> ``(L / 50 - 1 [B,S,S,1], ab / 110 [B,S,S,2])`` batches,
    converted by ``color.rgb_to_model_io_xla`` (whole batches, compiled)."""
    return _prefetched(rgb_batches.map(color.rgb_to_model_io_xla, num_parallel_calls=AUTOTUNE))


def _prefetched(batches):
    """The last stage of every dataset here: prefetch, with tf.data's autotuner off.

    With the autotuner on, deleting an iterator (Keras does, after every epoch)
    can stall; without it each ``AUTOTUNE`` map runs one call per CPU core,
    which bench/ item 2 shows to be as fast here."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.prefetch(AUTOTUNE).with_options(options)


# --- The datasets ---------------------------------------------------------------------


def _rgb_batches(files, image_size, batch_size, augment, shuffle, seed, repeat, drop_remainder, max_pixels,
                 shard=None):
    """The chain up to RGB batches: list files -> decode -> resize -> flip -> batch
    (with a ``shard``: list -> shard -> decode -> ... -> batch by the shard's sizes)."""
    check_whole(image_size, "image_size", low=1)
    check_whole(batch_size, "batch_size", low=1)
    files = _probed(files, max_pixels)
    squares = plan.square_plan(files.probes, image_size)
    records = _list_files(files, squares, shuffle, seed)
    kept, sizes = _shard_plan(len(files), batch_size, shard) if shard else (None, None)
    images = _map_and_flip(records, lambda file: _decode_and_resize(file, squares), augment is True, seed, kept)
    images = _one_per_file(images, len(files) if kept is None else int(kept.sum()), image_size)
    if shard:
        batches = _batch_by_sizes(images, sizes)
        batches = _augmented(batches, augment) if augment and augment is not True else batches
        return batches.repeat() if repeat else batches  # each pass re-runs the shuffle and the flips
    if repeat:
        images = images.repeat()  # each pass re-runs the shuffle and the flips: a new draw per epoch
    return _batch(images, batch_size, drop_remainder, augment)


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
    as_8bit: bool = False,
) -> tf.data.Dataset:
    """Image files (a list of paths, a folder, or ``ProbedFiles``) -> batches of
    RGB float32 ``[B, image_size, image_size, 3]`` in [0, 1].

    ``augment``: False, True (horizontal flip) or a Keras layer such as
    ``augmentation_layers(photometric=True)``. ``shuffle`` reshuffles every
    epoch, seeded by ``seed``. Unreadable files are skipped with one warning.
    ``max_pixels`` applies when the files are probed here (``ProbedFiles``
    keep the limit they were probed with).

    ``as_8bit``: the same pixels as uint8 levels in [0, 255], the pipeline's
    own values before the float conversion (a quarter of the bytes, for a
    consumer that converts them itself, e.g. ``color.rgb_to_model_io_xla``
    on an accelerator). A Keras augmentation layer makes floats, so it cannot
    be combined with it."""
    if as_8bit and augment and augment is not True:
        raise ColorkitError("as_8bit=True keeps 8-bit pixels; a Keras augmentation layer makes floats: "
                            "use augment=True (flips) or as_8bit=False")
    batches = _rgb_batches(paths, image_size, batch_size, augment, shuffle, seed, repeat, drop_remainder, max_pixels)
    return _prefetched(batches if as_8bit else _as_float(batches))


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
    shard: Shard | None = None,
) -> tf.data.Dataset:
    """Like ``make_rgb_dataset``, but yields what a colorization network trains
    on: ``(l_norm [B,S,S,1] in [-1, 1], ab_norm [B,S,S,2] in about [-1, 1])``.
    ``shard``: this input pipeline's part of a distributed run (see ``Shard``;
    ``drop_remainder`` does not apply: no image is left out of an epoch)."""
    batches = _rgb_batches(paths, image_size, batch_size, augment, shuffle, seed, repeat, drop_remainder, max_pixels,
                           shard)
    return to_model_io(batches)


def batch_images(images, image_size: int, batch_size: int, augment=False, seed: int = 0, drop_remainder: bool = False):
    """A ``tf.data.Dataset`` of single images (any size, uint8 or float in
    [0, 1], e.g. from TFDS) -> RGB batches ``[B, S, S, 3]`` with the same resize
    policy and augmentation as ``make_rgb_dataset``."""
    check_whole(image_size, "image_size", low=1)
    check_whole(batch_size, "batch_size", low=1)

    def decode_and_resize(image):
        square = centre_square(tf.image.convert_image_dtype(image, tf.float32)[..., :3]) * 255.0
        return plan.resize_square(square, image_size)

    images = _map_and_flip(images, decode_and_resize, augment is True, seed)
    return _prefetched(_as_float(_batch(images, batch_size, drop_remainder, augment)))


# --- Augmentation -----------------------------------------------------------------------


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


# --- The grayscale filter ------------------------------------------------------------


def drop_grayscale(paths, threshold: float = 5.0, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Split images (paths, a folder, or ``ProbedFiles``) into ``(kept, dropped)``:
    an image is dropped as grayscale when no pixel has ``|a|`` or ``|b|`` above
    ``threshold`` (Zhang et al. removed such images from their training set: a
    gray photo teaches the model to predict no colour). Images are checked at
    full resolution; unreadable files are in neither list (they are named in a
    warning). The count is logged on the ``colorkit.data.pipeline`` logger."""
    files = _probed(paths, max_pixels)
    routes = [found.route for found in files.probes]
    decode_whole = plan.whole_decoder(routes)

    def chroma(path, route):
        ab = color.rgb_to_lab(decode_whole(path, route))[..., 1:]
        return path, tf.reduce_max(tf.abs(ab))

    records = tf.data.Dataset.from_tensor_slices((list(files.paths), tf.constant(routes, tf.int32)))
    checked = records.map(chroma, num_parallel_calls=AUTOTUNE).ignore_errors()
    kept, dropped = [], []
    for path, largest in checked.as_numpy_iterator():
        (kept if largest > threshold else dropped).append(path.decode())
    _log.info("dropped %d of %d images as grayscale (no pixel with |a| or |b| above %g)", len(dropped), len(files), threshold)
    return kept, dropped
