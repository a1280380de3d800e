"""Colorizing files, folders and clips, and exporting a model: the work around ``colorize.py``.

The ``colorize`` command plans one job per input image (a folder's tree is
mirrored under the output folder), sends the images through the network a
batch at a time, and writes each result atomically, so a failure leaves no
partial file. A file that cannot be read is named and skipped; the others go on.
JPEG stays JPEG (quality 95, no chroma subsampling: the colour is the point);
everything else becomes an 8-bit PNG with its alpha channel kept.

A folder flows through three stages at once: worker threads decode the next
images and compute their L while the network colours the current batch, and
render and encode the previous one (TensorFlow, Pillow and numpy release the
GIL). The images between their probe and their written output hold at most
``max_pixels`` pixels together, so a folder needs no more memory than its
largest allowed image.
"""

from __future__ import annotations

import collections
import io
import math
import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
from PIL import Image

from colorkit import color, hints as hint_tools
from colorkit.colorize import Prepared, colorized_tiles, load_colorizer, predict_ab, prepare, resolve_size, stack_feeds
from colorkit.data.decode import DEFAULT_MAX_PIXELS, list_images, load_stored, probe, unit_float
from colorkit.errors import ColorkitError
from colorkit.io import atomic_folder, atomic_path

#: images of a folder sent through the network together
DEFAULT_BATCH_SIZE = 8
#: threads that decode, render and encode while the network runs (each holds a
#: tile's intermediates, tens of MB, while it works)
DEFAULT_WORKERS = min(8, max(2, os.cpu_count() or 1))
#: JPEG output: high quality, no chroma subsampling (the colour is the point)
JPEG_QUALITY = 95
#: PNG output: zlib's fastest level (a photo's PNG grows by a few per cent and is
#: written in a fraction of the time Pillow's default level 6 takes)
PNG_COMPRESS_LEVEL = 1
JPEG_SUFFIXES = (".jpg", ".jpeg")
EXPORT_FORMATS = ("keras", "saved_model")


# --- Rendering and encoding ----------------------------------------------------------------------------


def paint(l_full: np.ndarray, ab_norm: np.ndarray, alpha=None, over_white: bool = False,
          compare: bool = False) -> Image.Image:
    """The colorized image as an 8-bit Pillow image, drawn a tile at a time
    (``colorize.colorized_tiles``): RGBA when ``alpha`` (``[H, W, 1]``, uint8,
    uint16 or float) is given, else RGB. ``over_white``: composite the alpha
    over white instead (for JPEG, which has none). ``compare``: gray (the L
    alone) on the left, colour on the right."""
    height, width = l_full.shape[:2]
    composite, keep_alpha = alpha is not None and over_white, alpha is not None and not over_white
    picture = Image.new("RGBA" if keep_alpha else "RGB", (width * (2 if compare else 1), height))
    halves = [(0, np.zeros_like(ab_norm)), (width, ab_norm)] if compare else [(0, ab_norm)]
    for left, ab in halves:
        for rows, columns, rgb in colorized_tiles(l_full, ab, np.float32 if composite else np.uint8):
            if composite:
                opacity = unit_float(alpha[rows, columns])
                rgb = color.to_8bit(rgb * opacity + (1.0 - opacity))
            elif keep_alpha:
                rgb = np.concatenate([rgb, _alpha_8bit(alpha[rows, columns])], axis=-1)
            picture.paste(Image.fromarray(rgb), (left + columns.start, rows.start))
    return picture


def _alpha_8bit(alpha: np.ndarray) -> np.ndarray:
    return alpha if alpha.dtype == np.uint8 else color.to_8bit(unit_float(alpha))


def save_picture(picture: Image.Image, file, image_format: str) -> None:
    """Encode ``picture`` as PNG (``PNG_COMPRESS_LEVEL``) or JPEG (quality
    ``JPEG_QUALITY``, no chroma subsampling) into ``file``, an open binary file or a path."""
    options = ({"quality": JPEG_QUALITY, "subsampling": 0} if image_format == "JPEG"
               else {"compress_level": PNG_COMPRESS_LEVEL})
    picture.save(file, format=image_format, **options)


def encode_image(rgb: np.ndarray, alpha=None, image_format: str = "PNG") -> bytes:
    """An 8-bit PNG (with the alpha channel when given) or JPEG of an array at
    hand, ``rgb`` in [0, 1] (a notebook's picture). A JPEG cannot hold alpha:
    the image is then composited over white."""
    if alpha is not None and image_format == "JPEG":
        rgb, alpha = rgb * alpha + (1.0 - alpha), None
    pixels = color.to_8bit(rgb if alpha is None else np.concatenate([rgb, alpha], axis=-1))
    buffer = io.BytesIO()
    save_picture(Image.fromarray(pixels), buffer, image_format)
    return buffer.getvalue()


def write_picture(picture: Image.Image, target, image_format: str) -> None:
    """``save_picture`` to ``target`` atomically: encoded straight into a hidden
    temporary file, flushed to disk, then renamed (a failure leaves nothing)."""
    with atomic_path(target) as tmp:
        with open(tmp, "xb") as file:
            save_picture(picture, file, image_format)
            file.flush()
            os.fsync(file.fileno())


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
    """A decoded input, ready for the network (its pixels already reduced to L)."""

    job: Job
    alpha: np.ndarray | None
    item: Prepared


def _load_job(colorizer, job: Job, size, hints, reference, max_pixels: int) -> Loaded:
    stored = load_stored(job.source, max_pixels)
    return Loaded(job, stored.alpha, prepare(colorizer, stored.pixels, size, hints, reference))


def _write_job(loaded: Loaded, ab_norm: np.ndarray, compare: bool) -> None:
    """Render, then encode straight into the output file, atomically."""
    jpeg = loaded.job.target.suffix.lower() in JPEG_SUFFIXES
    picture = paint(loaded.item.l_full, ab_norm, loaded.alpha, over_white=jpeg, compare=compare)
    try:
        write_picture(picture, loaded.job.target, "JPEG" if jpeg else "PNG")
    except OSError as error:
        raise ColorkitError(f"cannot write {loaded.job.target}: {error.strerror or error}") from None


def _one_line(source, error: Exception) -> str:
    """``SOURCE: what is wrong``, without naming the file twice."""
    message = " ".join(str(error).split())
    return message if message.startswith(str(source)) else f"{source}: {message}"


class _Flow:
    """The images of ``colorize_jobs`` on their way: loading (decode + L, on the
    workers), waiting for the network, writing (render + encode, on the
    workers). At most ``max_pixels`` pixels are in flight together (one image
    alone always goes), and at most two batches are loading and two writing."""

    def __init__(self, workers: int, max_pixels: int, batch_size: int, settle):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="colorize")
        self.max_pixels, self.depth, self.settle = max_pixels, 2 * batch_size, settle
        self.loading = collections.deque()  # (job, pixels, future of Loaded), in job order
        self.writing = {}  # future of None -> (job, pixels)
        self.held = 0  # pixels in flight

    def admits(self, pixels: int) -> bool:
        return len(self.loading) < self.depth and (self.held == 0 or self.held + pixels <= self.max_pixels)

    def load(self, job: Job, pixels: int, *task) -> None:
        self.held += pixels
        self.loading.append((job, pixels, self.pool.submit(*task)))

    def loaded(self, count: int) -> list[Loaded]:
        """The next ``count`` (or fewer) loaded images in job order; failures are settled."""
        ready = []
        for _ in range(min(count, len(self.loading))):
            job, pixels, future = self.loading.popleft()
            try:
                ready.append((future.result(), pixels))
            except ColorkitError as error:
                self.release(job, pixels, error)
        return ready

    def write(self, loaded: Loaded, pixels: int, *task) -> None:
        self.writing[self.pool.submit(*task)] = (loaded.job, pixels)

    def finish_writes(self, block: bool) -> None:
        """Settle the writes that are done; ``block``: wait for at least one first."""
        if not self.writing:
            return
        done, _ = wait(list(self.writing), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            job, pixels = self.writing.pop(future)
            error = future.exception()
            if error is not None and not isinstance(error, ColorkitError):
                raise error
            self.release(job, pixels, error)

    def release(self, job: Job, pixels: int, error=None) -> None:
        self.held -= pixels
        self.settle(job, error)


def colorize_jobs(colorizer: keras.Model, jobs: list[Job], size=None, hints=None, reference=None,
                  compare: bool = False, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True,
                  on_error=None, max_pixels: int = DEFAULT_MAX_PIXELS,
                  workers: int = DEFAULT_WORKERS) -> list[tuple[Path, str]]:
    """Colorize every job, ``batch_size`` images through the network at a time
    (they share the working size), decoding and encoding on ``workers``
    threads meanwhile. A file that cannot be read, is larger than
    ``max_pixels``, whose hints do not fit it, or whose output cannot be
    written is skipped and reported through ``on_error(line)``; the others go
    on. Returns the failures."""
    size = resolve_size(colorizer, size)
    check_hints_fit(colorizer, hints, reference)
    bar = keras.utils.Progbar(len(jobs), unit_name="image") if progress and jobs else None
    failures, settled = [], 0

    def settle(job: Job, error=None):
        nonlocal settled
        if error is not None:
            failures.append((job.source, _one_line(job.source, error)))
            if on_error:
                on_error(failures[-1][1])
        settled += 1
        if bar:
            bar.update(settled)

    flow = _Flow(workers, max_pixels, batch_size, settle)
    pending, next_pixels = collections.deque(jobs), None
    try:
        while pending or flow.loading or flow.writing:
            while pending:
                if next_pixels is None:  # the header only: 0 pixels for a file the probe refuses, whose load names why
                    found = probe(pending[0].source, max_pixels)
                    next_pixels = found.height * found.width
                if not flow.admits(next_pixels):
                    break
                job = pending.popleft()
                flow.load(job, next_pixels, _load_job, colorizer, job, size, hints, reference, max_pixels)
                next_pixels = None
            ready = flow.loaded(batch_size)
            if ready:
                feeds = stack_feeds([loaded.item.feed for loaded, _ in ready])
                for (loaded, pixels), ab_norm in zip(ready, predict_ab(colorizer, feeds, batch_size)):
                    flow.write(loaded, pixels, _write_job, loaded, ab_norm, compare)
            flow.finish_writes(block=not flow.loading or len(flow.writing) >= flow.depth)
    finally:
        flow.pool.shutdown(wait=True, cancel_futures=True)
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
