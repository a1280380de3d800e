"""Inference: colorize images of any size, mode and format with a trained model.

The recipe of richzhang/colorization's util, in TF: convert to Lab, feed the
network L at its working size, resize the predicted ab back to the original
size, and join it with the *original full-resolution* L. The output therefore
has the input's size and exactly the input's lightness; only colour is invented.

Two details make that promise hold on real files:

* The gamut. A network can predict an ab that no sRGB colour has at that L;
  clipping the RGB afterwards would change L. ``shrink_into_gamut`` instead
  scales each pixel's ab towards gray (always displayable) just enough to fit,
  so the saved 8-bit image's L differs from the input's by rounding only.
* The files. ``colorkit.data.decode`` reads every format (16-bit, palette,
  CMYK, EXIF-rotated, alpha); a colour photo is made gray by taking its L; an
  alpha channel is carried through untouched.

Sections: loading a model, the working size, one image (prepare -> predict ->
join), the gamut, files and folders (the ``colorize`` command), export.
"""

from __future__ import annotations

import io
import math
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from colorkit import color
from colorkit.errors import ColorkitError

#: checkpoint files looked for in a run folder, best first
RUN_MODEL_FILES = ("checkpoints/best.keras", "checkpoints/generator.keras", "checkpoints/last.keras")
#: working size of a model that takes any size, when none is asked for
DEFAULT_SIZE = 256
#: images of a folder sent through the network together
DEFAULT_BATCH_SIZE = 8
#: bisection steps of the gamut fit: the scale of ab is found to 2**-12, i.e. chroma to
#: within 0.04 of 150 (an 8-bit sRGB step is about 10 times that)
GAMUT_STEPS = 12
#: how far outside [0, 1] an RGB channel may stray (float32 rounding) and still count as inside
GAMUT_TOLERANCE = 1e-4
#: JPEG output: high quality, no chroma subsampling (the colour is the point)
JPEG_QUALITY = 95
JPEG_SUFFIXES = (".jpg", ".jpeg")
EXPORT_FORMATS = ("keras", "saved_model")


# --- Loading a model ------------------------------------------------------------------------------


def find_model_file(source) -> Path:
    """A ``.keras`` file, or the best checkpoint of a run folder."""
    path = Path(source)
    if path.is_dir():
        for name in RUN_MODEL_FILES:
            if (path / name).exists():
                return path / name
        raise ColorkitError(f"no trained model in {path}: expected one of {', '.join(RUN_MODEL_FILES)}")
    if path.suffix != ".keras":
        raise ColorkitError(f"{path} is not a .keras model file or a run folder")
    if not path.exists():
        raise ColorkitError(f"model file {path} does not exist")
    return path


def load_model(source) -> keras.Model:
    """Load a model saved by colorkit (custom layers are registered on import)."""
    import colorkit.models  # noqa: F401  (registers the custom layers)

    path = find_model_file(source)
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as error:
        raise ColorkitError(f"{path} could not be loaded as a Keras model: {error}") from error


def load_colorizer(source) -> keras.Model:
    """The model of a run folder or ``.keras`` file, ready for inference (``as_colorizer``).

    A run folder's ``config.json`` supplies the annealed-mean temperature the
    run was evaluated with, so a classification model decodes the same way here."""
    model = load_model(source)
    config_file = Path(source) / "config.json"
    if Path(source).is_dir() and config_file.exists():
        from colorkit import train

        return as_colorizer(model, temperature=train.load_run_config(source).temperature)
    return as_colorizer(model)


def as_colorizer(model: keras.Model, temperature: float = 0.38, bins=None) -> keras.Model:
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
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
            raise ColorkitError(f"--size must be a positive whole number of pixels, got {side!r}")
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
    from colorkit import hints as hint_tools

    hint_ab = hint_mask = hist = None
    if hints:
        hint_ab, hint_mask = hint_tools.hint_maps(hints, *image_size, *size)
        hint_ab, hint_mask = hint_ab[None], hint_mask[None]
    if reference is not None:
        if isinstance(reference, (str, Path)):
            from colorkit.data.decode import load_rgb

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
    return lab_to_rgb_in_gamut(colorize_lab(colorizer, rgb, size, hints, reference))


def colorize(model: keras.Model, image, hints=None, reference=None, size=None) -> np.ndarray:
    """Colorize ``image`` (an RGB array of any size, or a file path) -> RGB array of the same size.

    ``hints``: local hints (a list of ``{"x", "y", "rgb" or "ab", "size"}`` or
    its JSON text; see ``colorkit.hints``); ``reference``: an RGB array or file
    whose colours are the global hint. Both need a model trained with hints.
    ``size``: the working size of a model that takes any size (default 256)."""
    if isinstance(image, (str, Path)):
        from colorkit.data.decode import load_rgb

        image = load_rgb(image)
    return colorize_rgb(as_colorizer(model), image, size=size, hints=hints, reference=reference)


# --- The gamut ------------------------------------------------------------------------------------


def _linear_bounds(tolerance: float = GAMUT_TOLERANCE / 2) -> tuple[float, float]:
    """sRGB's [-tolerance, 1 + tolerance] in linear light, where the gamut is checked.

    Half of ``GAMUT_TOLERANCE``: companding a colour that sits right on the
    bound moves it by float32 rounding, and the promise is made in sRGB."""
    low, high = color.srgb_to_linear(tf.constant([-tolerance, 1.0 + tolerance])).numpy()
    return float(low), float(high)


_LINEAR_LOW, _LINEAR_HIGH = _linear_bounds()


def _inside(lab):
    """Which Lab pixels ([N, 3]) have an sRGB colour: their linear RGB is within bounds."""
    linear = color.lab_to_linear_rgb(lab)
    return tf.reduce_all((linear >= _LINEAR_LOW) & (linear <= _LINEAR_HIGH), axis=-1)


def _in_gamut(lab: np.ndarray) -> np.ndarray:
    """``_inside`` for numpy callers."""
    return _inside(tf.constant(lab, tf.float32)).numpy()


def _with_ab_scaled(lab, factor):
    return tf.concat([lab[:, :1], lab[:, 1:] * factor[:, None]], axis=-1)


@tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
def _largest_inside_factors(pixels):
    """Per pixel, the largest factor in [0, 1] (to 2**-GAMUT_STEPS) whose scaled ab
    stays inside the gamut, by bisection. It always keeps an inside factor,
    starting from 0 (gray, inside at any L). One graph for any number of pixels:
    run op by op, the steps' Python overhead and temporaries cost 40% more."""
    low = tf.zeros_like(pixels[:, 0])
    high = tf.ones_like(low)
    for _ in range(GAMUT_STEPS):
        middle = (low + high) / 2
        inside = _inside(_with_ab_scaled(pixels, middle))
        low, high = tf.where(inside, middle, low), tf.where(inside, high, middle)
    return low


def shrink_into_gamut(lab) -> np.ndarray:
    """Lab whose every pixel lies inside sRGB, with L untouched.

    Why not clip RGB: clipping changes lightness, and the output must keep the
    input's L. Instead each pixel's ab is multiplied by the largest factor in
    [0, 1] that keeps (L, factor * ab) displayable: 1 for pixels already
    inside, else found by ``_largest_inside_factors``. The checks run in linear
    light (no companding pow), so each step costs less than a Lab -> RGB
    conversion of the pixels outside."""
    lab = np.asarray(lab, np.float32)
    flat = lab.reshape(-1, 3)
    outside = ~_in_gamut(flat)
    if not outside.any():
        return lab
    pixels = flat[outside]
    fitted = flat.copy()
    fitted[outside] = _with_ab_scaled(pixels, _largest_inside_factors(pixels)).numpy()
    return fitted.reshape(lab.shape)


def lab_to_rgb_in_gamut(lab) -> np.ndarray:
    """sRGB in [0, 1] of ``lab`` after ``shrink_into_gamut`` (the final clip only
    removes float32 rounding)."""
    return np.clip(color.lab_to_rgb(shrink_into_gamut(lab), clip=False), 0.0, 1.0)


# --- Encoding ------------------------------------------------------------------------------------------


def to_8bit(values: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8, rounded (not truncated: truncation darkens by half a step)."""
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two images of the same height, left | right."""
    return np.concatenate([left, right], axis=1)


def encode_image(rgb: np.ndarray, alpha=None, image_format: str = "PNG") -> bytes:
    """An 8-bit PNG (with the alpha channel when given) or JPEG of ``rgb`` in [0, 1].
    A JPEG cannot hold alpha: the image is then composited over white."""
    from PIL import Image

    if alpha is not None and image_format == "JPEG":
        rgb, alpha = rgb * alpha + (1.0 - alpha), None
    pixels = to_8bit(rgb if alpha is None else np.concatenate([rgb, alpha], axis=-1))
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY, "subsampling": 0} if image_format == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


# --- Files and folders (the ``colorize`` command) ------------------------------------------------------


class Job(NamedTuple):
    """One input file and where its colorization goes."""

    source: Path
    target: Path


def output_name(path: Path) -> Path:
    """The output keeps the input's name and format family: JPEG stays JPEG,
    everything else (PNG, 16-bit, palette, TIFF, WebP...) becomes PNG."""
    return path if path.suffix.lower() in JPEG_SUFFIXES else path.with_suffix(".png")


def plan_jobs(inputs, out_dir) -> tuple[list[Job], list[tuple[str, str]]]:
    """The jobs the command line names, and ``(input, problem)`` for inputs that cannot be used.

    A file goes to OUT_DIR/its name; a folder's images (recursively) go to the
    same relative paths under OUT_DIR, so the tree is mirrored. Two inputs that
    would write the same output (photo.png and photo.gif) are a problem for the
    second one, never a silent overwrite."""
    from colorkit.data.decode import list_images

    out_dir = Path(out_dir)
    jobs, problems, claimed = [], [], {}
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found = [Path(p) for p in list_images(path)]
            if not found:
                problems.append((str(given), "is a folder with no image files"))
            candidates = [(p, out_dir / p.relative_to(path)) for p in found]
        elif path.is_file():
            candidates = [(path, out_dir / path.name)]
        else:
            problems.append((str(given), "does not exist"))
            candidates = []
        for source, target in candidates:
            target = output_name(target)
            if target in claimed:
                problems.append((str(source), f"would overwrite {target}, the output of {claimed[target]}"))
            else:
                claimed[target] = source
                jobs.append(Job(source, target))
    return jobs, problems


def read_hints_file(path) -> str:
    """The JSON text of a hints file, checked for everything but positions
    (those depend on each image's size and are checked per image)."""
    from colorkit import hints as hint_tools

    hint_tools.load_hints_file(path, math.inf, math.inf)
    return Path(path).read_text(encoding="utf-8")


def check_hints_fit(colorizer: keras.Model, hints=None, reference=None) -> None:
    """Refuse hints for a model that cannot take them, once, before any image is read."""
    from colorkit import hints as hint_tools

    local = hint_tools.parse_hints(hints, math.inf, math.inf) if isinstance(hints, (str, bytes)) else hints
    if local and not hint_tools.takes_hints(colorizer):
        raise ColorkitError(f"{colorizer.name} takes no hints; train one with --hints to colorize with hints")
    if reference is not None and not hint_tools.takes_global_hints(colorizer):
        raise ColorkitError(f"{colorizer.name} takes no global hint; --reference needs a model built with global_hints=True")


class Loaded(NamedTuple):
    """A decoded input, ready for the network."""

    job: Job
    alpha: np.ndarray | None
    item: Prepared


def _load_job(colorizer, job: Job, size, hints, reference) -> Loaded:
    from colorkit.data.decode import load_image

    rgb, alpha = load_image(job.source)
    return Loaded(job, alpha, prepare(colorizer, rgb, size, hints, reference))


def _write_job(loaded: Loaded, ab_norm: np.ndarray, compare: bool) -> None:
    """Encode in memory, then write atomically: a failure leaves no partial file."""
    from colorkit.io import atomic_write_bytes

    lab = join_ab(loaded.item.l_full, ab_norm)
    rgb, alpha = lab_to_rgb_in_gamut(lab), loaded.alpha
    if compare:
        gray = color.lab_to_rgb(np.concatenate([lab[..., :1], np.zeros_like(lab[..., 1:])], axis=-1))
        rgb = side_by_side(gray, rgb)
        alpha = None if alpha is None else side_by_side(alpha, alpha)
    image_format = "JPEG" if loaded.job.target.suffix.lower() in JPEG_SUFFIXES else "PNG"
    atomic_write_bytes(loaded.job.target, encode_image(rgb, alpha, image_format))


def _one_line(source, error: Exception) -> str:
    """``SOURCE: what is wrong``, without naming the file twice."""
    message = " ".join(str(error).split())
    return message if message.startswith(str(source)) else f"{source}: {message}"


def colorize_jobs(colorizer: keras.Model, jobs: list[Job], size=None, hints=None, reference=None,
                  compare: bool = False, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True,
                  on_error=None) -> list[tuple[Path, str]]:
    """Colorize every job, ``batch_size`` images through the network at a time
    (they share the working size). A file that cannot be read, whose hints do
    not fit it, or whose output cannot be written is skipped and reported
    through ``on_error(line)``; the others go on. Returns the failures."""
    size = resolve_size(colorizer, size)
    check_hints_fit(colorizer, hints, reference)
    bar = keras.utils.Progbar(len(jobs), unit_name="image") if progress and jobs else None
    failures = []

    def fail(source, error):
        failures.append((source, _one_line(source, error)))
        if on_error:
            on_error(failures[-1][1])

    for start in range(0, len(jobs), batch_size):
        ready = []
        for job in jobs[start : start + batch_size]:
            try:
                ready.append(_load_job(colorizer, job, size, hints, reference))
            except ColorkitError as error:
                fail(job.source, error)
        if ready:
            ab = predict_ab(colorizer, stack_feeds([loaded.item.feed for loaded in ready]), batch_size)
            for loaded, ab_norm in zip(ready, ab):
                try:
                    _write_job(loaded, ab_norm, compare)
                except OSError as error:
                    fail(loaded.job.source, ColorkitError(f"cannot write {loaded.job.target}: {error.strerror or error}"))
        if bar:
            bar.update(min(start + batch_size, len(jobs)))
    return failures


# --- Export, for serving elsewhere ----------------------------------------------------------------------


def export_model(source, export_format: str, path) -> Path:
    """Write the inference model of ``source`` (run folder or ``.keras`` file) to ``path``.

    ``keras``: a ``.keras`` file (written atomically). ``saved_model``: a TF
    SavedModel folder for TF Serving (Keras' ``model.export``; the signature
    ``serve`` maps normalised L to normalised ab), written to a hidden sibling
    folder and renamed, so a failure leaves nothing half-written. A
    classification model is exported with its annealed-mean decode, so both
    formats take L and give ab."""
    if export_format not in EXPORT_FORMATS:
        raise ColorkitError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {export_format!r}")
    path = Path(path)
    if export_format == "keras" and path.suffix != ".keras":
        raise ColorkitError(f"a Keras model file must end in .keras, got {path}")
    if export_format == "saved_model" and path.exists():
        raise ColorkitError(f"{path} already exists; export a SavedModel to a new folder")
    colorizer = load_colorizer(source)
    if export_format == "keras":
        from colorkit.io import atomic_path

        with atomic_path(path) as tmp:
            colorizer.save(tmp)
        return path
    return _export_saved_model(colorizer, path)


def _export_saved_model(colorizer: keras.Model, path: Path) -> Path:
    from colorkit.io import _temporary_sibling

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    try:
        colorizer.export(str(tmp), format="tf_saved_model", verbose=False)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
