"""Item 5: inference end to end, from a JPEG file to a saved colour image.

One 1024 x 768 JPEG per model (load, predict at the model's working size, 256 px, upsample
ab, join with the full-resolution L, save with Pillow), in milliseconds; then a
folder of photos, in images per second. Models are freshly built and
untrained: the network's time does not depend on its weights, but the kit's
gamut fit does (it bisects every pixel predicted outside sRGB, and a random
model puts many there: most of the ResNet decoder's extra time), so the
kit's side is an upper bound. The baseline clips instead, which changes L.

Baseline: the way the reports' sources do it, written here in our own words
(richzhang/colorization's demo recipe with scikit-image): Pillow to load and
to shrink the RGB to 256 px, ``rgb2lab`` of both sizes, the network, ab
upsampled with ``skimage.transform.resize``, ``lab2rgb``, Pillow to save. The
network is called the same way on both sides, so the ratio is the processing
around it. The kit: ``colorkit.colorize.colorize(model, path)`` and, for the
folder, the batched ``batch.colorize_jobs`` behind the ``colorize`` command.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench.common import Comparison, interleaved, photo_crops, rate, write_jpegs
from colorkit import batch, color, colorize, models

ITEM = "5 inference"


def build_colorizer(name: str, size: int, width: float = 1.0):
    """An untrained model at its working size, ready for inference (Zhang's gets its decode)."""
    model = models.build(name, input_shape=(size, size, 1), width=width, seed=0)
    return colorize.as_colorizer(model)


def report_colorize(colorizer, source, target) -> None:
    """The reports' way for one file (see the module docstring)."""
    from PIL import Image
    from skimage import color as skcolor
    from skimage import transform

    size = colorize.working_size(colorizer)
    with Image.open(source) as image:
        original = image.convert("RGB")
        small = original.resize(size[::-1], Image.BICUBIC)
    lab = skcolor.rgb2lab(np.asarray(original))
    l_small = skcolor.rgb2lab(np.asarray(small))[..., :1]
    ab_norm = np.asarray(colorizer(color.normalize_l(l_small)[None].astype(np.float32), training=False))[0]
    ab = transform.resize(color.denormalize_ab(ab_norm), lab.shape[:2], order=1)
    rgb = skcolor.lab2rgb(np.concatenate([lab[..., :1], ab], axis=-1))
    Image.fromarray((rgb * 255).round().astype(np.uint8)).save(target, quality=95)


def kit_colorize(colorizer, source, target) -> None:
    """The kit's way for one file: the public ``colorize`` call, then Pillow."""
    from PIL import Image

    rgb = colorize.colorize(colorizer, source)
    Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255).round().astype(np.uint8)).save(target, quality=95)


def kit_folder(colorizer, folder, out_dir) -> None:
    """The kit's folder path: ``plan_jobs`` + the batched ``colorize_jobs``."""
    jobs, problems = batch.plan_jobs([str(folder)], str(out_dir))
    failures = batch.colorize_jobs(colorizer, jobs, progress=False)
    if problems or failures:
        raise RuntimeError(f"the folder did not colorize cleanly: {problems or failures}")


def one_image_rows(scale, tmp: Path) -> list[dict]:
    """Milliseconds per 1024x768 JPEG, every model, both ways."""
    width, height = scale.inference_image
    source = write_jpegs(tmp / "one", photo_crops(1, width, height, seed=5))[0]
    rows = []
    for name in scale.inference_models:
        colorizer = build_colorizer(name, scale.inference_size, scale.inference_width)
        timings = interleaved({
            "report": lambda: report_colorize(colorizer, source, tmp / "report.jpg"),
            "kit": lambda: kit_colorize(colorizer, source, tmp / "kit.jpg"),
        }, scale.inference_repeats)
        model = f"{name} (width {scale.inference_width:g}) at {scale.inference_size} px"
        comparison = Comparison(ITEM, f"one {width}x{height} JPEG, {model}")
        comparison.baseline("Pillow + skimage rgb2lab/resize/lab2rgb around the network", 1000 * timings["report"].median,
                            "ms", timings["report"])
        comparison.kit("colorkit colorize(model, path) + Pillow save", 1000 * timings["kit"].median, "ms",
                       timings["kit"])
        rows += comparison.rows
    return rows


def folder_rows(scale, tmp: Path) -> list[dict]:
    """Images per second over a folder of photos, one model."""
    width, height = scale.folder_image
    count = scale.folder_images
    folder = tmp / "folder"
    paths = write_jpegs(folder, photo_crops(count, width, height, seed=6))
    colorizer = build_colorizer(scale.folder_model, scale.inference_size, scale.folder_width)
    out = tmp / "out"
    out.mkdir()
    report_colorize(colorizer, paths[0], out / "warm.jpg")  # one image warms every path up (a whole folder is slow)
    kit_colorize(colorizer, paths[0], out / "warm.jpg")
    timings = interleaved({
        "report": lambda: [report_colorize(colorizer, path, out / Path(path).name) for path in paths],
        "kit": lambda: kit_folder(colorizer, folder, tmp / "kit_out"),
        "kit loop": lambda: [kit_colorize(colorizer, path, out / Path(path).name) for path in paths],
    }, scale.folder_repeats, warmup=0)
    case = f"a folder of {count} JPEGs of {width}x{height}, {scale.folder_model} (width {scale.folder_width:g})"
    comparison = Comparison(ITEM, case)
    comparison.baseline("the reports' way, file by file", rate(count, timings["report"]), "images/s",
                        timings["report"])
    comparison.kit("colorkit colorize_jobs (the colorize command, batched)", rate(count, timings["kit"]),
                   "images/s", timings["kit"])
    comparison.kit("colorkit colorize(model, path) file by file", rate(count, timings["kit loop"]), "images/s",
                   timings["kit loop"])
    return comparison.rows


def run(scale) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-") as tmp:
        return one_image_rows(scale, Path(tmp)) + folder_rows(scale, Path(tmp))
