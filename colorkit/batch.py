"""Colorizing files, folders and clips, and exporting a model: the work around ``colorize.py``.

The ``colorize`` command plans one job per input image (a folder's tree is
mirrored under the output folder), sends the images through the network a
batch at a time, and writes each result atomically, so a failure leaves no
partial file. A file that cannot be read is named and skipped; the others go on.
JPEG stays JPEG (quality 95, no chroma subsampling: the colour is the point);
everything else becomes an 8-bit PNG with its alpha channel kept.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
from PIL import Image

from colorkit import color, hints as hint_tools
from colorkit.colorize import Prepared, join_ab, load_colorizer, predict_ab, prepare, resolve_size, stack_feeds
from colorkit.data.decode import list_images, load_image
from colorkit.errors import ColorkitError
from colorkit.io import atomic_folder, atomic_path, atomic_write_bytes

#: images of a folder sent through the network together
DEFAULT_BATCH_SIZE = 8
#: JPEG output: high quality, no chroma subsampling (the colour is the point)
JPEG_QUALITY = 95
JPEG_SUFFIXES = (".jpg", ".jpeg")
EXPORT_FORMATS = ("keras", "saved_model")


# --- Encoding ------------------------------------------------------------------------------------------


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two images of the same height, left | right."""
    return np.concatenate([left, right], axis=1)


def encode_image(rgb: np.ndarray, alpha=None, image_format: str = "PNG") -> bytes:
    """An 8-bit PNG (with the alpha channel when given) or JPEG of ``rgb`` in [0, 1].
    A JPEG cannot hold alpha: the image is then composited over white."""
    if alpha is not None and image_format == "JPEG":
        rgb, alpha = rgb * alpha + (1.0 - alpha), None
    pixels = color.to_8bit(rgb if alpha is None else np.concatenate([rgb, alpha], axis=-1))
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
    same relative paths under OUT_DIR, so the tree is mirrored. No output may
    replace an input: OUT_DIR inside an input folder is refused outright, and a
    file whose output would be itself (OUT_DIR is its own folder) is a problem.
    Two inputs that would write the same output (photo.png and photo.gif) are a
    problem for the second one, never a silent overwrite."""
    out_dir = Path(out_dir)
    candidates, problems = [], []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            _refuse_output_inside(out_dir, path)
            found = [Path(p) for p in list_images(path)]
            if not found:
                problems.append((str(given), "is a folder with no image files"))
            candidates += [(p, out_dir / p.relative_to(path)) for p in found]
        elif path.is_file():
            candidates.append((path, out_dir / path.name))
        else:
            problems.append((str(given), "does not exist"))
    sources = {source.resolve() for source, _ in candidates}
    jobs, claimed = [], {}
    for source, target in candidates:
        target = output_name(target)
        if target.resolve() in sources:
            problems.append((str(source), f"its output {target} would overwrite an input; choose another -o"))
        elif target in claimed:
            problems.append((str(source), f"would overwrite {target}, the output of {claimed[target]}"))
        else:
            claimed[target] = source
            jobs.append(Job(source, target))
    return jobs, problems


def _refuse_output_inside(out_dir: Path, folder: Path) -> None:
    """Outputs written inside an input folder would sit among the originals (and a
    later run would take them for inputs): refuse before anything is written."""
    out, inside = out_dir.resolve(), folder.resolve()
    if out == inside or inside in out.parents:
        raise ColorkitError(f"-o {out_dir} is inside the input folder {folder}: the colorizations would overwrite "
                            "or mix with the originals; choose an output folder outside it")


def read_hints_file(path) -> str:
    """The JSON text of a hints file, checked for everything but positions
    (those depend on each image's size and are checked per image)."""
    hint_tools.load_hints_file(path, math.inf, math.inf)
    return Path(path).read_text(encoding="utf-8")


def check_hints_fit(colorizer: keras.Model, hints=None, reference=None) -> None:
    """Refuse hints for a model that cannot take them, once, before any image is read."""
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
    rgb, alpha = load_image(job.source)
    return Loaded(job, alpha, prepare(colorizer, rgb, size, hints, reference))


def _write_job(loaded: Loaded, ab_norm: np.ndarray, compare: bool) -> None:
    """Encode in memory, then write atomically: a failure leaves no partial file."""
    lab = join_ab(loaded.item.l_full, ab_norm)
    rgb, alpha = color.lab_to_rgb_in_gamut(lab), loaded.alpha
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


# --- Clips ----------------------------------------------------------------------------------------------


def split_clips(inputs) -> tuple[list[str], list[str]]:
    """The inputs that are clip files, and the others (images, folders, missing paths)."""
    from colorkit.video import is_video

    clips = [given for given in inputs if Path(given).is_file() and is_video(given)]
    return clips, [given for given in inputs if given not in clips]


def colorize_clips(colorizer: keras.Model, clips, out_dir, temporal: str = "flow", size=None,
                   batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True, on_error=None) -> list[str]:
    """Colorize each clip into OUT_DIR under its own name (``colorkit.video``); a clip
    that fails, or whose output would replace an input, is reported through
    ``on_error(line)`` and the others go on. Returns the failure lines."""
    from colorkit.video import colorize_clip

    failures, written = [], set()
    sources = {Path(clip).resolve() for clip in clips}
    for clip in clips:
        target = Path(out_dir) / Path(clip).name
        try:
            if target.resolve() in sources:
                raise ColorkitError(f"{clip}: its output {target} would overwrite an input; choose another -o")
            if target in written:
                raise ColorkitError(f"{clip} would overwrite {target}, the output of another clip of that name")
            colorize_clip(colorizer, clip, target, temporal=temporal, size=size, batch_size=batch_size,
                          progress=progress)
            written.add(target)
        except (ColorkitError, OSError) as error:
            message = str(error) if isinstance(error, ColorkitError) else f"cannot write {target}: {error}"
            failures.append(_one_line(clip, ColorkitError(message)))
            if on_error:
                on_error(failures[-1])
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
        with atomic_path(path) as tmp:
            colorizer.save(tmp)
        return path
    return _export_saved_model(colorizer, path)


def _export_saved_model(colorizer: keras.Model, path: Path) -> Path:
    with atomic_folder(path) as tmp:
        colorizer.export(str(tmp), format="tf_saved_model", verbose=False)
    return path
