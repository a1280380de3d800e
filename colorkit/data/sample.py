"""The embedded sample set: real colour photos and learnable procedural images,
built offline in a few seconds, the same bytes every time.

No dataset can be downloaded on the course machines, so every command and
notebook defaults to this set. It has two kinds of 64 x 64 PNG images:

``photos``
    Square crops of the colour photographs that ship inside scikit-image
    (``skimage.data``) and matplotlib (its ``sample_data`` folder). Each source
    photo belongs to exactly one split, so no test image shares a single pixel
    with a training image: the test photos are held out whole.

``shapes``
    Procedural images whose colour follows their *texture*: stripes are red,
    dots green, checks blue, on a gray background, at random sizes, periods,
    angles and lightness levels. Colour is therefore predictable from the L
    channel's local structure alone, and a small CNN trained for a few minutes
    beats the gray baseline clearly; on photos after minutes it barely can.
    One shape in four is *speckled* (random light and dark cells) and takes a
    random hue: nothing in L tells its colour, as for a car or a shirt in a
    photo, so it shows what each loss does with ambiguity and why a user's
    hint helps. Flat areas are always the gray background.

``manifest.json`` records, for every file, its kind and where it came from
(source photo and crop box, or the textures drawn), so the held-out rule can
be checked rather than trusted.

The build is deterministic: seeded generators, Pillow's resampling and PNG
encoder (no timestamps), and scikit-image's float64 Lab->RGB conversion for
the shapes (byte-identical across runs, unlike threaded TF kernels).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from colorkit.errors import ColorkitError

IMAGE_SIZE = 64
SEED = 0
MANIFEST = "manifest.json"
#: Raised whenever what the set holds changes, so that older builds are replaced.
VERSION = 2
SPLITS = ("train", "val", "test")

#: Source photos per split (loader name -> how many crops each). The two
#: stereo motorcycle views show the same scene, so both sit in train. Few crops
#: per training photo: more crops of the same six photos teach nothing new, and
#: their warm colours, averaged in by an L2 loss, tint the shapes' gray background.
PHOTO_PLAN = {
    "train": {
        "skimage.astronaut": 8,
        "skimage.coffee": 8,
        "skimage.immunohistochemistry": 8,
        "skimage.retina": 8,
        "skimage.motorcycle_left": 8,
        "skimage.motorcycle_right": 8,
    },
    "val": {"skimage.rocket": 24},
    "test": {"skimage.chelsea": 12, "matplotlib.grace_hopper": 12},
}
#: Shapes per split: enough held-out ones that a model's margin over gray is
#: measured to a few hundredths of AuC.
SHAPE_COUNTS = {"train": 360, "val": 60, "test": 60}
#: Textured shapes per image (at least, at most): about 45% of a shape image is coloured.
SHAPES_PER_IMAGE = (2, 4)

#: Texture -> (a, b) at full chroma. Lightness never decides the hue.
TEXTURE_AB = {"stripes": (50.0, 30.0), "dots": (-45.0, 40.0), "checks": (10.0, -50.0)}
#: The texture whose hue is random (at this chroma, times 0.8-1): its colour cannot be learned.
RANDOM_HUE, RANDOM_HUE_CHROMA = "speckles", 45.0
SHAPE_KINDS = (*TEXTURE_AB, RANDOM_HUE)
#: Texture periods in pixels (lowest, highest), and the speckles' cell sides.
PERIODS = (4.0, 8.0)
SPECKLE_CELLS = (2, 3)


# --- Where the set lives -------------------------------------------------------------


def default_sample_root() -> Path:
    """``$COLORKIT_DATA_ROOT/sample`` when that variable is set, else the
    repository's ``datasets/sample`` (gitignored)."""
    data_root = os.environ.get("COLORKIT_DATA_ROOT")
    if data_root:
        return Path(data_root).expanduser() / "sample"
    return Path(__file__).resolve().parents[2] / "datasets" / "sample"


def is_sample_set(root) -> bool:
    """Whether ``root`` holds a built sample set (of this or an older version)."""
    return (Path(root) / MANIFEST).is_file()


def is_current_sample_set(root) -> bool:
    """Whether ``root`` holds the sample set this version of the code builds: a set
    built by older code (another ``VERSION``) is rebuilt before training on it."""
    if not is_sample_set(root):
        return False
    manifest = json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))
    return manifest.get("version") == VERSION


# --- Photos ----------------------------------------------------------------------------


def _source_photo(name: str) -> np.ndarray:
    """A bundled photo as uint8 RGB, by its PHOTO_PLAN name."""
    library, photo = name.split(".")
    if library == "matplotlib":
        from matplotlib import cbook

        with cbook.get_sample_data(f"{photo}.jpg") as f:
            return np.asarray(Image.open(f).convert("RGB"))
    from skimage import data

    if photo.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        return left if photo.endswith("left") else right
    return getattr(data, photo)()


def _random_crop_box(height: int, width: int, rng) -> tuple[int, int, int]:
    """``(x, y, side)`` of a square covering 30-80% of the photo's short side."""
    side = int(rng.uniform(0.3, 0.8) * min(height, width))
    return int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1)), side


def _photo_crops(name: str, count: int, rng):
    """``count`` (image, box) pairs cropped from one source photo."""
    photo = Image.fromarray(_source_photo(name))
    for _ in range(count):
        x, y, side = _random_crop_box(photo.height, photo.width, rng)
        crop = photo.crop((x, y, x + side, y + side)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
        yield crop, [x, y, side]


# --- Shapes ----------------------------------------------------------------------------


def _texture(kind: str, rng, shift: float = 0.0) -> np.ndarray:
    """A boolean IMAGE_SIZE x IMAGE_SIZE pattern: True where the texture is light
    (moved ``shift`` pixels to the right: the same draws give the same pattern, moved)."""
    if kind == RANDOM_HUE:  # square cells, each light or dark at random, drawn twice as wide
        cell = int(rng.integers(SPECKLE_CELLS[0], SPECKLE_CELLS[1] + 1))
        cells = rng.random((IMAGE_SIZE // cell + 1, 2 * IMAGE_SIZE // cell + 1)) < 0.5
        wide = np.kron(cells, np.ones((cell, cell), bool))
        start = IMAGE_SIZE - int(round(shift))  # the image shows the right half, moved
        return wide[:IMAGE_SIZE, start:start + IMAGE_SIZE]
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    xx = xx - shift
    period = rng.uniform(*PERIODS)
    phase_x, phase_y = rng.uniform(0.0, 1.0, size=2)
    if kind == "stripes":
        angle = rng.uniform(0.0, np.pi)
        along = xx * np.cos(angle) + yy * np.sin(angle)
        return (along / period + phase_x) % 1.0 < 0.5
    if kind == "checks":
        return (np.floor(xx / period + phase_x) + np.floor(yy / period + phase_y)) % 2 == 0
    # dots: a disc of radius 0.3 periods around every point of a square grid
    dx = (xx / period + phase_x) % 1.0 - 0.5
    dy = (yy / period + phase_y) % 1.0 - 0.5
    return dx**2 + dy**2 < 0.3**2


def _shape_mask(rng) -> np.ndarray:
    """A random disc, square or diamond, 20-44 px across."""
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    radius = rng.uniform(10.0, 22.0)
    cx, cy = rng.uniform(radius * 0.6, IMAGE_SIZE - radius * 0.6, size=2)
    outline = rng.choice(["disc", "square", "diamond"])
    if outline == "disc":
        return (xx - cx) ** 2 + (yy - cy) ** 2 < radius**2
    if outline == "square":
        return (np.abs(xx - cx) < radius * 0.9) & (np.abs(yy - cy) < radius * 0.9)
    return np.abs(xx - cx) + np.abs(yy - cy) < radius * 1.2


def _kind_ab(kind: str, rng) -> np.ndarray:
    """The (a, b) of a shape of ``kind``: its texture's, or a random hue for RANDOM_HUE."""
    if kind == RANDOM_HUE:
        hue = rng.uniform(0.0, 2 * np.pi)
        return RANDOM_HUE_CHROMA * np.array([np.cos(hue), np.sin(hue)])
    return np.array(TEXTURE_AB[kind])


def _shape_image(rng) -> tuple[np.ndarray, list[str]]:
    """One Lab image: a gray background with a gentle lightness ramp, and
    ``SHAPES_PER_IMAGE`` shapes of kinds drawn from ``SHAPE_KINDS``."""
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] / (IMAGE_SIZE - 1)
    angle = rng.uniform(0.0, 2 * np.pi)
    ramp = (xx * np.cos(angle) + yy * np.sin(angle)) * rng.uniform(-15.0, 15.0)
    lab = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3))
    lab[..., 0] = rng.uniform(40.0, 70.0) + ramp
    kinds = []
    fewest, most = SHAPES_PER_IMAGE
    for _ in range(rng.integers(fewest, most + 1)):
        kind = str(rng.choice(SHAPE_KINDS))
        mask = _shape_mask(rng)
        light = _texture(kind, rng)
        dark_l, light_l = rng.uniform(25.0, 50.0), rng.uniform(60.0, 90.0)
        chroma = rng.uniform(0.8, 1.0)
        lab[mask, 0] = np.where(light, light_l, dark_l)[mask]
        lab[mask, 1:] = _kind_ab(kind, rng) * chroma
        kinds.append(kind)
    return lab, kinds


def moving_shape_frames(count: int = 8, step: int = 2, seed: int = 0) -> np.ndarray:
    """A short clip for video colorization: ``count`` RGB frames ``[T, 64, 64, 3]`` in [0, 1].

    One textured disc, coloured by its texture as the sample set's shapes are,
    slides ``step`` pixels to the right per frame over a still gray background
    with a lightness ramp; its texture moves with it. The background's true
    colour never changes and the disc's is uniform, so between two frames only
    the pixels the disc arrives on or leaves change colour: a colorizer run
    frame by frame should keep every other pixel's colour
    (``colorkit.metrics.flicker`` measures how far it does not). Seeded."""
    if not 2 <= count <= 64 or not 0 <= step <= 8:
        raise ColorkitError(f"moving_shape_frames takes 2-64 frames moving 0-8 pixels each, got {count} and {step}")
    rng = np.random.default_rng([seed, 2000])
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] / (IMAGE_SIZE - 1)
    angle = rng.uniform(0.0, 2 * np.pi)
    background = rng.uniform(45.0, 65.0) + (xx * np.cos(angle) + yy * np.sin(angle)) * rng.uniform(-15.0, 15.0)
    kind = str(rng.choice(list(TEXTURE_AB)))
    radius = rng.uniform(10.0, 14.0)
    travel = (count - 1) * step
    start = rng.uniform(radius, max(radius, IMAGE_SIZE - radius - travel))
    centre_y = rng.uniform(radius, IMAGE_SIZE - radius)
    dark_l, light_l, chroma = rng.uniform(25.0, 45.0), rng.uniform(65.0, 90.0), rng.uniform(0.8, 1.0)
    texture_seed = rng.integers(2**31)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    frames = []
    for t in range(count):
        shift = t * step
        disc = (xx - start - shift) ** 2 + (yy - centre_y) ** 2 < radius**2
        light = _texture(kind, np.random.default_rng(texture_seed), shift=shift)
        lab = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3))
        lab[..., 0] = background
        lab[disc, 0] = np.where(light, light_l, dark_l)[disc]
        lab[disc, 1:] = np.array(TEXTURE_AB[kind]) * chroma
        frames.append(np.asarray(_lab_to_image(lab), np.float32) / 255.0)
    return np.stack(frames)


def _lab_to_image(lab: np.ndarray) -> Image.Image:
    from skimage.color import lab2rgb

    rgb = np.clip(lab2rgb(lab), 0.0, 1.0)
    return Image.fromarray(np.round(rgb * 255.0).astype(np.uint8))


# --- Building ------------------------------------------------------------------------


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write_split(folder: Path, split: str, seed: int) -> dict:
    """Write one split's photos and shapes into ``folder``; manifest entries."""
    entries = {}
    split_index = SPLITS.index(split)
    for photo_index, (name, count) in enumerate(PHOTO_PLAN[split].items()):
        rng = np.random.default_rng([seed, split_index, photo_index])
        for i, (crop, box) in enumerate(_photo_crops(name, count, rng)):
            relative = f"{split}/photos/{name.split('.')[1]}_{i:03d}.png"
            (folder / relative).write_bytes(_png_bytes(crop))
            entries[relative] = {"kind": "photo", "source": name, "box_xy_side": box}
    rng = np.random.default_rng([seed, split_index, 1000])
    for i in range(SHAPE_COUNTS[split]):
        lab, textures = _shape_image(rng)
        relative = f"{split}/shapes/shape_{i:03d}.png"
        (folder / relative).write_bytes(_png_bytes(_lab_to_image(lab)))
        entries[relative] = {"kind": "shape", "textures": textures}
    return entries


def _swap_into_place(built: Path, out: Path) -> None:
    """Replace ``out`` by the finished folder ``built`` with renames only, so a
    reader sees the old complete set or the new complete set, never a half."""
    if out.exists():
        retired = out.with_name(f".old-{secrets.token_hex(4)}-{out.name}")
        os.replace(out, retired)
        os.replace(built, out)
        shutil.rmtree(retired)
    else:
        os.replace(built, out)


def build_sample_set(out=None, seed: int = SEED) -> str:
    """Build the sample set into ``out`` (default ``default_sample_root()``),
    replacing an older build; returns a one-paragraph summary."""
    out = Path(out) if out is not None else default_sample_root()
    if out.exists() and any(out.iterdir()) and not is_sample_set(out):
        raise ColorkitError(f"{out} already holds files that are not a sample set; choose a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    built = out.with_name(f".tmp-{secrets.token_hex(4)}-{out.name}")
    try:
        for split in SPLITS:
            for kind in ("photos", "shapes"):
                (built / split / kind).mkdir(parents=True)
        files = {}
        for split in SPLITS:
            files.update(_write_split(built, split, seed))
        manifest = {"version": VERSION, "image_size": IMAGE_SIZE, "seed": seed, "files": files}
        (built / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        _swap_into_place(built, out)
    finally:
        shutil.rmtree(built, ignore_errors=True)
    return f"Built the sample set at {out}: {_contents(read_sample_manifest(out))}"


# --- Describing ---------------------------------------------------------------------


def read_sample_manifest(root=None) -> dict:
    """The manifest of a built sample set (``{"files": {relative path: entry}}``)."""
    root = Path(root) if root is not None else default_sample_root()
    if not is_sample_set(root):
        raise ColorkitError(f"no sample set at {root}; build it with `python -m colorkit data sample`")
    return json.loads((root / MANIFEST).read_text(encoding="utf-8"))


def _contents(manifest: dict) -> str:
    """The description of a sample set's contents, from its manifest."""
    files = manifest["files"]

    def entries(split, kind):
        return [entry for path, entry in files.items() if path.startswith(split + "/") and entry["kind"] == kind]

    def photo_names(split):
        return ", ".join(sorted({entry["source"].split(".")[1] for entry in entries(split, "photo")}))

    per_split = ", ".join(
        f"{split} {len(entries(split, 'photo')) + len(entries(split, 'shape'))}"
        f" ({len(entries(split, 'photo'))} photos + {len(entries(split, 'shape'))} shapes)"
        for split in SPLITS
    )
    hues = ", ".join(f"{kind} a={a:+.0f} b={b:+.0f}" for kind, (a, b) in TEXTURE_AB.items())
    size = manifest["image_size"]
    return (
        f"{len(files)} PNG images of {size}x{size} px in train/val/test folders: {per_split}. "
        f"Photos are crops of colour photos bundled with scikit-image and matplotlib, each photo in one split only "
        f"(train: {photo_names('train')}; val: {photo_names('val')}; test, held out whole: {photo_names('test')}). "
        f"Shapes are procedural, on a gray background: a textured shape's colour follows its texture ({hues}), "
        f"so it is learnable from the lightness pattern alone; a speckled shape (one in four) takes a random hue, "
        f"which nothing in L tells."
    )


def describe_sample_set(root=None) -> str:
    """A one-paragraph description of a built sample set: counts per split and
    kind, which photos feed which split, and what the shapes encode."""
    root = Path(root) if root is not None else default_sample_root()
    return f"Sample set at {root}: {_contents(read_sample_manifest(root))}"
