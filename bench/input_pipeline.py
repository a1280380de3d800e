"""Item 2: the input pipeline, from a folder of JPEGs to (L, ab) training batches.

Both sides do the same work on the same files: decode, cut the centred square
and resize it to 256 x 256, flip half the images left-right, convert to Lab,
split into the network's ``L / 50 - 1`` and ``ab / 110``, batch.

Baseline: the 2018 strided-CNN report's way, Keras 2's
``ImageDataGenerator.flow_from_directory`` (Pillow decoding and resizing in
Python, one image at a time) followed by ``skimage.color.rgb2lab`` per image.
The kit: ``colorkit.data.pipeline.make_dataset`` (TensorFlow decoders in
parallel, batched XLA Lab conversion).

Targets (issue 22): a GPU trains these models at 600-2,400 images/s, so the
kit must make at least 2,000 (L, ab) batches' images per second at 256 px on
2 cores, and 3,000 as 8-bit RGB (``make_rgb_dataset(as_8bit=True)``, for a
Lab step run by the consumer). Absolute rates depend on the machine, so each
goal is a ratio to the baseline measured in the same run: the issue's machine
ran the baseline at 1,360 / 10.9 = 125 images/s, hence 16x and 24x.

Each repeat is one epoch through a fresh iterator, as Keras ``fit`` reads a
dataset every epoch. Starting one (instantiating every map function, filling
the buffers up to the first batch) costs the kit tens of ms per epoch, however
many files it holds; the kit row's notes say how much of its epoch that was.

Two more kit rows time ``make_rgb_dataset`` on the same files: the same
pipeline without the Lab step, as float32 in [0, 1] and as 8-bit levels, so
the table shows what the conversion costs (item 1 times it alone).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

import tensorflow as tf

from bench.common import Comparison, interleaved, jpeg_folder, rate
from colorkit.data import legacy

ITEM = "2 input pipeline"
#: The baseline's rate on the issue's machine (1,360 images/s was 10.9x it), and
#: the goals there: (L, ab) batches, and 8-bit RGB batches.
_BASELINE_THERE, _MODEL_IO_GOAL, _RGB_8BIT_GOAL = 1360 / 10.9, 2000, 3000
TARGET = round(_MODEL_IO_GOAL / _BASELINE_THERE)  # 16x
RGB_8BIT_TARGET = round(_RGB_8BIT_GOAL / _BASELINE_THERE)  # 24x


def report_generator(folder, image_size: int, batch_size: int, seed: int = 0):
    """``flow_from_directory`` as the report used it (our amounts: flips only,
    the centred square kept like the kit's, bilinear). ``folder`` holds one
    sub-folder of JPEGs, the layout the generator expects."""
    from tf_keras.preprocessing.image import ImageDataGenerator

    generator = ImageDataGenerator(rescale=1.0 / 255.0, horizontal_flip=True)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Found N images belonging to 1 classes."
        return generator.flow_from_directory(
            str(folder), target_size=(image_size, image_size), class_mode=None, batch_size=batch_size,
            shuffle=True, seed=seed, interpolation="bilinear", keep_aspect_ratio=True,
        )


def report_epoch(generator) -> int:
    """One epoch of the report's batches: each RGB batch converted image by image
    with skimage, then split and normalised. Returns the number of images."""
    count = 0
    for index in range(len(generator)):
        l_norm, _ab_norm = legacy.skimage_model_io(generator[index])
        count += len(l_norm)
    generator.on_epoch_end()  # a new shuffle, as Keras 2's fit did between epochs
    return count


def kit_epoch(dataset) -> int:
    """One epoch of the kit's batches, (L, ab) or RGB. Returns the number of images."""
    return sum(int(tf.nest.flatten(batch)[0].shape[0]) for batch in dataset)


def first_batch_seconds(dataset, repeats: int) -> float:
    """Median time from a new iterator to its first batch: the fixed part of an epoch."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        next(iter(dataset))
        seconds.append(time.perf_counter() - start)
    return sorted(seconds)[len(seconds) // 2]


def run(scale) -> list[dict]:
    """Images per second through each pipeline, one epoch per repeat."""
    from colorkit.data import pipeline

    width, height = scale.pipeline_source
    size, count, batch = scale.pipeline_size, scale.pipeline_images, scale.batch_size
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-") as tmp:
        folder = Path(tmp) / "jpegs"
        jpeg_folder(folder / "photos", count, width, height, seed=2)

        options = dict(augment=True, shuffle=True, seed=0)
        start = time.perf_counter()
        dataset = pipeline.make_dataset(str(folder), size, batch, **options)
        kit_setup = time.perf_counter() - start
        rgb_only = pipeline.make_rgb_dataset(str(folder), size, batch, **options)
        rgb_8bit = pipeline.make_rgb_dataset(str(folder), size, batch, as_8bit=True, **options)
        generator = report_generator(folder, size, batch)
        runs = {"report": lambda: report_epoch(generator), "kit": lambda: kit_epoch(dataset),
                "rgb": lambda: kit_epoch(rgb_only), "rgb8": lambda: kit_epoch(rgb_8bit)}
        counted = {name: epoch() for name, epoch in runs.items()}
        if set(counted.values()) != {count}:
            raise RuntimeError(f"an epoch should hold {count} images, got {counted}")
        timings = interleaved(runs, scale.repeats)
        start_up = first_batch_seconds(dataset, scale.repeats)

    case = f"{count} JPEGs of {width}x{height} -> {size}x{size}, batch {batch}, flips"
    comparison = Comparison(ITEM, case, TARGET)
    comparison.baseline("ImageDataGenerator.flow_from_directory + skimage rgb2lab per image",
                        rate(count, timings["report"]), "images/s", timings["report"])
    comparison.kit("colorkit make_dataset (tf.data)", rate(count, timings["kit"]), "images/s", timings["kit"],
                   notes=f"one-off set-up (every file probed) {kit_setup:.2f} s, not in the figure; each epoch "
                         f"{start_up * 1000:.0f} ms of it from a new iterator to its first batch; target: "
                         f"{_MODEL_IO_GOAL:,} images/s where the baseline makes {_BASELINE_THERE:.0f}")
    comparison.kit("colorkit make_rgb_dataset: the same without the Lab step", rate(count, timings["rgb"]),
                   "images/s", timings["rgb"], notes="what decoding, cropping, resizing, flips and batching cost")
    comparison.kit("colorkit make_rgb_dataset(as_8bit=True): 8-bit RGB, no Lab step", rate(count, timings["rgb8"]),
                   "images/s", timings["rgb8"], target=RGB_8BIT_TARGET,
                   notes=f"for a Lab step run by the consumer; target: {_RGB_8BIT_GOAL:,} images/s where the "
                         f"baseline makes {_BASELINE_THERE:.0f}")
    return comparison.rows
