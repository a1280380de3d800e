"""Reading image files: a cheap check of every file first, then decoding.

Why two steps. TensorFlow's own decoders (``tf.io.decode_jpeg``/``decode_png``)
run in C++ inside ``tf.data`` with no Python per image, which is what makes the
input pipeline fast. But they do not handle everything a folder of real
photos contains: they ignore EXIF orientation (phone photos come out sideways),
they allocate whatever size a header declares (a "decompression bomb" of a few
bytes can ask for 40 GB), and a truncated file raises an error that would stop
a whole epoch. So ``probe`` looks at each file once, reading only its header
and last bytes through Pillow, and sorts it into one of three routes:

* ``ROUTE_JPEG`` / ``ROUTE_PNG``: TensorFlow decodes it (the common case);
* ``ROUTE_PIL``: Pillow decodes it (CMYK JPEG, EXIF-rotated photos, BMP, GIF,
  TIFF, WebP: whatever TensorFlow handles wrongly or not at all);
* skipped, with the reason: not an image, truncated, or above the pixel limit.

The probe also keeps each file's size, from which the pipeline plans every
JPEG's DCT scale and crop window before it decodes anything.

Colour handling is the same on every route: grayscale becomes three equal
channels, palette images are expanded, 16-bit PNGs keep their precision until
they become float32, and an alpha channel is composited over white (``load_rgb``)
or returned separately (``load_image``) so inference can put it back.

Inference reads a file at full resolution with ``load_stored``, whatever its
route: Pillow decodes it (TensorFlow only a 16-bit PNG) into the type the file
stores (uint8, or uint16 for 16-bit files), turned upright (EXIF) by a view, so
that a large photo costs its stored bytes, not float32's four per channel, and
the decoder's own memory is given back at once. ``load_stored_bytes`` does the
same for an image held in memory (an HTTP upload): the same probe and decoders
read it through a ``BytesIO``, so its format is sniffed from the content alone
and nothing it sends is written to disk.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from colorkit.errors import ColorkitError

#: File name endings treated as images when a folder is listed.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

#: Largest image accepted, in pixels (width x height): 144 megapixels, above
#: any camera's normal output (a 108 MP phone photo is 12000 x 9000). A header
#: declaring more is treated as a decompression bomb.
DEFAULT_MAX_PIXELS = 12_000 * 12_000

ROUTE_JPEG, ROUTE_PNG, ROUTE_PIL = 0, 1, 2

_EXIF_ORIENTATION = 0x0112
_JPEG_END = b"\xff\xd9"
_PNG_END = b"IEND"
# Pillow modes that carry transparency, and 16-bit / float grayscale modes.
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_WIDE_GRAY_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


@dataclass(frozen=True)
class Probe:
    """What ``probe`` learned about one file: how to decode it, or why not."""

    route: int | None  # ROUTE_* or None when the file is skipped
    reason: str = ""  # why it is skipped (empty when it is readable)
    too_large: bool = False  # skipped for its pixel count (the API answers 413, not 400)
    height: int = 0  # as stored, before any EXIF rotation (0 when skipped)
    width: int = 0

    @property
    def side(self) -> int:
        """The side of the largest centred square: the shorter of width and height."""
        return min(self.height, self.width)


class ImageTooLarge(ColorkitError):
    """An image above the pixel limit: refused before its pixels are decoded."""


def list_images(folder) -> list[str]:
    """Every image file under ``folder`` (recursively, by extension, hidden files
    and folders excluded; symbolic links to folders are not followed), as sorted
    path strings.

    The tree is walked with a list of folders still to read, not by recursion,
    so a tree of any depth is listed; a folder that cannot be read (no
    permission, a path longer than the system accepts) is a ``ColorkitError``
    rather than images silently missing."""
    folder = Path(folder)
    found, unread = [], [str(folder)]
    while unread:
        current = unread.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        unread.append(entry.path)
                    elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                        found.append(entry.path)
        except OSError as error:
            depth = len(Path(current).relative_to(folder).parts)
            raise ColorkitError(f"cannot list a folder {depth} levels inside {printable(folder)}: "
                                f"{error.strerror} (...{printable(current)[-60:]})") from None
    return sorted(found)


def printable(path) -> str:
    """A path as it can be shown in any message: bytes of its name that are not
    UTF-8 (a name written in another encoding) appear as ``\\xe9``."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def refuse_names_not_utf8(paths) -> None:
    """A ``ColorkitError`` naming the first of ``paths`` whose name is not UTF-8
    text (and how many such there are). TensorFlow takes file names as UTF-8
    strings, so the training pipeline cannot open such a file; Python can, and
    inference reads them (``load_image``)."""
    bad = [path for path in map(str, paths) if not _is_utf8(path)]
    if bad:
        more = f" (and {len(bad) - 1} more such names)" if len(bad) > 1 else ""
        raise ColorkitError(f"{printable(bad[0])} has a name that is not UTF-8 text{more}; "
                            "TensorFlow reads file names as UTF-8, so rename it in UTF-8 to train on it")


def _is_utf8(path: str) -> bool:
    """Whether a path string came from UTF-8 bytes (otherwise it holds the
    surrogates Python decodes undecodable bytes of a file name to)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _tail(source, count: int = 16) -> bytes:
    """The last ``count`` bytes of a file, given by path or as an open binary file."""
    if not hasattr(source, "read"):
        with open(source, "rb") as f:
            return _tail(f, count)
    source.seek(0, 2)
    source.seek(max(0, source.tell() - count))
    return source.read()


def _ends_cleanly(source, image_format: str) -> bool:
    """Whether a JPEG ends with its end-of-image marker, or a PNG with its IEND
    chunk. A file cut short (an interrupted download) does not."""
    tail = _tail(source)
    if image_format == "JPEG":
        return tail.rstrip(b"\x00").endswith(_JPEG_END)
    return _PNG_END in tail[-12:]


def _decodes_fully(source) -> bool:
    """Decode with Pillow to settle whether a file that does not end cleanly is
    truncated or merely carries trailing bytes (some cameras append data)."""
    try:
        with Image.open(source) as image:
            image.load()
        return True
    except (OSError, SyntaxError, ValueError):
        return False


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 = as stored). For a PNG only an eXIf chunk
    before the pixels is read: asking Pillow for more decodes the whole file."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return image.getexif().get(_EXIF_ORIENTATION, 1)


def _route_for(image: Image.Image) -> int:
    """The cheapest decoder that handles this image correctly."""
    if _orientation(image) != 1 or image.mode == "CMYK":
        return ROUTE_PIL
    return {"JPEG": ROUTE_JPEG, "PNG": ROUTE_PNG}.get(image.format, ROUTE_PIL)


def probe(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Probe:
    """Check one file (a path, or an open binary file such as a ``BytesIO``)
    without decoding its pixels (see the module docstring). A skipped file's
    ``reason`` reads as "PATH is REASON"."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                image_format = image.format
                route = _route_for(image)
    except Image.DecompressionBombError:
        return Probe(None, "a decompression bomb (Pillow refused the size its header declares)", too_large=True)
    except FileNotFoundError:
        return Probe(None, "missing")
    except (OSError, SyntaxError, ValueError):
        return Probe(None, "not a readable image")
    if width * height > max_pixels:
        reason = f"a decompression bomb ({width}x{height} pixels declared, the limit is {max_pixels})"
        return Probe(None, reason, too_large=True)
    if width < 1 or height < 1:
        return Probe(None, "an image with no pixels")
    if image_format in ("JPEG", "PNG") and not _ends_cleanly(path, image_format):
        if not _decodes_fully(path):
            return Probe(None, f"a truncated {image_format}")
    return Probe(route, height=height, width=width)


def scan_images(paths_or_folder, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Check files before a pipeline reads them: ``(good_paths, skipped)`` where
    ``skipped`` is a list of ``(path, reason)``.

    Accepts a folder (listed recursively) or a list of paths. Raises
    ``ColorkitError`` for a missing or unreadable folder, a folder without
    image files, or an empty list."""
    good, skipped = [], []
    for path, found in probe_all(paths_or_folder, max_pixels):
        if found.route is None:
            skipped.append((path, found.reason))
        else:
            good.append(path)
    return good, skipped


def probe_all(paths_or_folder, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[tuple[str, Probe]]:
    """``(path, Probe)`` for every file; a folder is listed first."""
    paths = _as_path_list(paths_or_folder)
    return [(path, probe(path, max_pixels)) for path in paths]


def readable_folder(folder) -> Path:
    """``folder`` as a Path, or a ColorkitError when it is missing or unreadable
    (listing an unreadable folder would silently find nothing)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ColorkitError(f"{folder} is not a folder; expected a folder of images")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise ColorkitError(f"{folder} cannot be read (permission denied); expected a readable folder of images")
    return folder


def _as_path_list(paths_or_folder) -> list[str]:
    """The files of a folder or a list, for the training pipeline: their names must be UTF-8."""
    if isinstance(paths_or_folder, (str, Path)):
        folder = readable_folder(paths_or_folder)
        paths = list_images(folder)
        if not paths:
            raise ColorkitError(f"{folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    else:
        paths = [str(p) for p in paths_or_folder]
        if not paths:
            raise ColorkitError("the list of images is empty; give a folder or a dataset with at least one image")
    refuse_names_not_utf8(paths)
    return paths


def warn_skipped(skipped, total: int) -> None:
    """One warning naming every skipped file and why, with the count."""
    if skipped:
        names = "; ".join(f"{path} ({reason})" for path, reason in skipped)
        warnings.warn(f"skipped {len(skipped)} of {total} files: {names}", stacklevel=3)


# --- Pillow decoding (the careful route, and plain Python callers) ------------------


def _pil_stored(image: Image.Image) -> Stored:
    """A Pillow image's pixels in the type they are stored in (see ``Stored``),
    EXIF orientation not yet applied. Pillow's wide gray modes hold 16 bits
    (``I`` holds 32: clipped to 16); its float mode ``F`` is taken as [0, 1].
    An image already in the mode wanted is not converted (that would copy it)."""
    if image.mode in _WIDE_GRAY_MODES:
        return Stored(np.clip(np.asarray(image), 0, 65535).astype(np.uint16)[..., None])
    if image.mode == "F":
        return Stored(np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)[..., None])
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        return _split_alpha(np.asarray(_in_mode(image, "RGBA")))
    gray = image.mode in ("1", "L")
    pixels = np.asarray(_in_mode(image, "L" if gray else "RGB"))
    return Stored(pixels[..., None] if gray else pixels)


def _in_mode(image: Image.Image, mode: str) -> Image.Image:
    return image if image.mode == mode else image.convert(mode)


def _over_white(rgb, alpha):
    """Composite over a white background (works for numpy arrays and tensors)."""
    return rgb if alpha is None else rgb * alpha + (1.0 - alpha)


def pil_rgb(path) -> np.ndarray:
    """Decode with Pillow: RGB float32 HxWx3 in [0, 1], alpha over white."""
    with Image.open(path) as image:
        orientation = _orientation(image)
        stored = _pil_stored(image)
    return stored.oriented(orientation).rgb_over_white()


# --- TensorFlow decoding (the fast route) -------------------------------------------


def _centre_square_window(height, width):
    """``[y, x, side, side]`` of the largest centred square (``[N, 4]`` for vectors)."""
    side = tf.minimum(height, width)
    return tf.stack([(height - side) // 2, (width - side) // 2, side, side], axis=-1)


def centre_square(image):
    """The largest centred square of an HxWxC tensor."""
    shape = tf.shape(image)
    window = _centre_square_window(shape[0], shape[1])
    return image[window[0] : window[0] + window[2], window[1] : window[1] + window[3]]


#: The scales libjpeg can decode at (1/1, 1/2, 1/4, 1/8): index = number of halvings.
JPEG_SCALES = (1, 2, 4, 8)


def jpeg_halvings(side, min_side: int):
    """How often (0-3) a JPEG whose centred square is ``side`` px can be halved
    while decoding and keep that square at least ``min_side`` px wide: a 2000 px
    photo for a 256 px model is decoded at 1/4, leaving a reduction of less
    than 2x to resize. ``side`` may be a number or a vector (one per file)."""
    side = tf.convert_to_tensor(side, tf.int32)
    larger_scales = tf.constant(JPEG_SCALES[1:], tf.int32)
    return tf.reduce_sum(tf.cast(side[..., None] >= min_side * larger_scales, tf.int32), axis=-1)


def scaled_side(side, scale):
    """A length in pixels once a JPEG is decoded at 1/``scale`` (libjpeg rounds up)."""
    return (tf.convert_to_tensor(side, tf.int32) + scale - 1) // scale


def jpeg_square_windows(heights, widths, scales):
    """The crop window ``[y, x, side, side]`` of each JPEG's centred square, in
    its image as decoded at 1/``scale`` (``[N, 4]``, computed once from the
    probed sizes, so the decoder is handed its window instead of working it
    out from the file's header for every image of every epoch)."""
    return _centre_square_window(scaled_side(heights, scales), scaled_side(widths, scales))


def tf_decode_jpeg_square(data, window, scale: int):
    """JPEG bytes -> uint8 RGB: the centred square only (``window``, from
    ``jpeg_square_windows``), decoded at 1/``scale`` of its size. libjpeg scales
    in the DCT domain (an area-like filter, and much less work)."""
    return tf.image.decode_and_crop_jpeg(data, window, channels=3, ratio=scale)


def tf_decode_jpeg(data):
    """JPEG bytes -> float32 RGB in [0, 1], the whole image."""
    return tf.image.convert_image_dtype(tf.io.decode_jpeg(data, channels=3), tf.float32)


def tf_decode_png_rgba(data):
    """PNG bytes (8 or 16 bit; gray, palette, RGB, with or without alpha) ->
    float32 RGBA. Decoding at 16 bits keeps 16-bit files' precision; 8-bit
    files are scaled up exactly (x257)."""
    pixels = tf.io.decode_png(data, channels=4, dtype=tf.uint16)
    return tf.image.convert_image_dtype(pixels, tf.float32)


def tf_decode_png(data, square: bool):
    """PNG bytes -> float32 RGB, transparency composited over white."""
    rgba = tf_decode_png_rgba(data)
    rgb = _over_white(rgba[..., :3], rgba[..., 3:])
    return centre_square(rgb) if square else rgb


# --- One file at full resolution, for inference and notebooks -----------------------

#: How to view an image stored with each EXIF orientation (2-8) upright: transpose
#: the axes first or not, then mirror rows and/or columns. Views, not copies.
_UPRIGHT = {2: (False, False, True), 3: (False, True, True), 4: (False, True, False), 5: (True, False, False),
            6: (True, False, True), 7: (True, True, True), 8: (True, True, False)}


@dataclass(frozen=True)
class Stored:
    """An image at full resolution in the type its file stores: a 4000 x 3000
    photo is 36 MB of uint8 here, where float32 RGB would take 144 MB. Inference
    reads it a tile at a time (``colorkit.colorize``).

    ``pixels``: ``[H, W, 1]`` (gray) or ``[H, W, 3]`` (RGB); uint8, uint16 for
    16-bit files, or float32 in [0, 1] (float TIFFs). ``alpha``: ``[H, W, 1]``
    of the same type, or None when the file has no transparency (or none used).
    Either may be a rotated or mirrored view of the decoded array (EXIF)."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.pixels.shape[:2]

    def oriented(self, orientation: int) -> "Stored":
        """The image as it is meant to be seen, for an EXIF ``orientation`` (1-8)."""
        return Stored(_upright(self.pixels, orientation),
                      None if self.alpha is None else _upright(self.alpha, orientation))

    def rgb_over_white(self) -> np.ndarray:
        """Float32 RGB ``[H, W, 3]`` in [0, 1], transparency composited over white."""
        rgb = unit_float(self.pixels)
        rgb = _over_white(rgb, None if self.alpha is None else unit_float(self.alpha))
        return np.ascontiguousarray(np.broadcast_to(rgb, (*self.size, 3)), dtype=np.float32)


def _upright(array: np.ndarray, orientation: int) -> np.ndarray:
    if orientation not in _UPRIGHT:
        return array
    transpose, flip_rows, flip_columns = _UPRIGHT[orientation]
    array = array.swapaxes(0, 1) if transpose else array
    return array[::-1 if flip_rows else 1, ::-1 if flip_columns else 1]


def unit_float(values: np.ndarray) -> np.ndarray:
    """Integer pixels (uint8, uint16) as float32 in [0, 1]; float32 pixels as they are."""
    if values.dtype in (np.uint8, np.uint16):
        return values.astype(np.float32) / np.iinfo(values.dtype).max
    return values.astype(np.float32, copy=False)


def _split_alpha(pixels: np.ndarray) -> Stored:
    """Gray + alpha (2 channels) or RGBA (4) -> ``Stored``; an alpha that is
    opaque everywhere is dropped. The alpha is copied out, so that it does not
    keep the colour channels alive once they have been read."""
    colour, alpha = pixels[..., :-1], pixels[..., -1:]
    return Stored(colour, None if alpha.min() >= np.iinfo(alpha.dtype).max else np.ascontiguousarray(alpha))


def _checked_route(path, max_pixels: int, name=None) -> int:
    """The route for one file, or a ColorkitError saying what is wrong with it
    (``ImageTooLarge`` above the pixel limit). ``name``: what to call the file."""
    found = probe(path, max_pixels)
    if found.route is None:
        error = ImageTooLarge if found.too_large else ColorkitError
        raise error(f"{name or path} is {found.reason}; expected a readable JPEG, PNG, BMP, GIF, TIFF or WebP file")
    return found.route


def load_stored(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Stored:
    """Any image file at full resolution, in the type it stores (``Stored``),
    EXIF orientation applied. What inference reads: the least memory per pixel."""
    return _load_checked(path, max_pixels, printable(path))


def load_stored_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "the uploaded file") -> Stored:
    """``load_stored`` for an image held in memory: the same checks and decoders
    through a ``BytesIO``, the format sniffed from the bytes alone (a file name
    or a declared content type is never trusted). ``name`` is what error
    messages call it."""
    return _load_checked(io.BytesIO(data), max_pixels, name)


def load_image(path, max_pixels: int = DEFAULT_MAX_PIXELS):
    """``(rgb, alpha)`` of any image file at full resolution: rgb float32 HxWx3
    in [0, 1] (the colour channels as stored), alpha float32 HxWx1 or None when
    the file has no transparency. EXIF orientation is applied."""
    stored = load_stored(path, max_pixels)
    rgb = np.ascontiguousarray(np.broadcast_to(unit_float(stored.pixels), (*stored.size, 3)))
    return rgb, None if stored.alpha is None else unit_float(stored.alpha)


def load_rgb(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Any image file -> float32 HxWx3 RGB in [0, 1] at full resolution, exactly
    as the training pipeline sees it before resizing (transparency over white)."""
    return load_stored(path, max_pixels).rgb_over_white()


def _load_checked(source, max_pixels: int, name: str) -> Stored:
    """Probe, then decode; a file that passes the probe but cannot be decoded is damaged."""
    _checked_route(source, max_pixels, name)
    try:
        return _decode_stored(source)
    except (tf.errors.InvalidArgumentError, OSError, SyntaxError, ValueError):
        raise ColorkitError(f"{name} is damaged: its pixel data cannot be decoded; expected a complete image file") from None


def _encoded(source) -> bytes:
    """The file's encoded bytes, as TensorFlow's decoders take them (read by
    Python, which opens any file name; TensorFlow would need it to be UTF-8)."""
    return source.getvalue() if isinstance(source, io.BytesIO) else Path(source).read_bytes()


def _decode_stored(source) -> Stored:
    """``load_stored`` once the file (a path or a ``BytesIO``) has passed ``probe``.

    Pillow decodes, into memory that is given back once the pixels are read
    out; TensorFlow decodes 16-bit PNGs (byte 24 of the header is the bit
    depth), which Pillow would cut to 8 bits in colour. Rotation and mirroring
    (EXIF) are views of the decoded array, not copies."""
    with Image.open(source) as image:
        orientation = _orientation(image)
        if image.format == "PNG" and _png_bit_depth(source) == 16:
            stored = _tf_png(_encoded(source), transparent="transparency" in image.info)
        else:
            stored = _pil_stored(image)
    return stored.oriented(orientation)


def _png_bit_depth(source) -> int:
    """Byte 24 of a PNG file (a path or an open binary file): the bit depth its header declares."""
    if not hasattr(source, "read"):
        with open(source, "rb") as f:
            return _png_bit_depth(f)
    source.seek(24)
    return source.read(1)[0]


def _tf_png(data: bytes, transparent: bool) -> Stored:
    """A 16-bit PNG's channels as stored (gray, gray + alpha, RGB, RGBA) in uint16;
    a tRNS colour key becomes alpha."""
    pixels = np.asarray(tf.io.decode_png(data, channels=4 if transparent else 0, dtype=tf.uint16))
    return _split_alpha(pixels) if pixels.shape[-1] in (2, 4) else Stored(pixels)
