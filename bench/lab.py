"""Item 1: RGB -> CIELAB on 256 x 256 images.

Baseline: what every project we studied does, ``skimage.color.rgb2lab`` on one
float32 image at a time in a Python loop. The kit: the data pipeline's Lab step,
``colorkit.color.rgb_to_model_io_xla`` (``rgb_to_lab`` compiled with XLA, then
split into the network's L and ab), on float32 batches inside ``tf.data``.
Target: at least 3x the images per second.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bench.common import Comparison, interleaved, photo_crops, rate
from colorkit import color

ITEM = "1 Lab conversion"
TARGET = 3.0


def skimage_lab_per_image(images: np.ndarray) -> list[np.ndarray]:
    """The reports' way: one ``rgb2lab`` call per float32 image."""
    from skimage.color import rgb2lab

    return [rgb2lab(image) for image in images]


def kit_lab_dataset(images: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """The kit's way: batches through ``rgb_to_model_io_xla`` in a parallel
    ``tf.data`` map (the element-wise ops fuse into few passes over the batch)."""
    batches = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    return batches.map(color.rgb_to_model_io_xla, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def largest_difference(images: np.ndarray, batch_size: int) -> float:
    """Largest |kit - skimage| over every L, a, b value: both must compute the same thing."""
    batches = [(color.denormalize_l(l_norm), color.denormalize_ab(ab_norm)) for l_norm, ab_norm in kit_lab_dataset(images, batch_size)]
    ours = np.concatenate([np.concatenate(batch, axis=-1) for batch in batches])
    reference = np.stack(skimage_lab_per_image(images))
    return float(np.abs(ours - reference).max())


def run(scale) -> list[dict]:
    """Images per second, skimage per image vs the kit's batched tf.data conversion."""
    size, count = scale.lab_size, scale.lab_images
    images = np.stack(photo_crops(count, size, size, seed=1)).astype(np.float32) / 255.0
    dataset = kit_lab_dataset(images, scale.batch_size)

    def kit():
        for _ in dataset:
            pass

    timings = interleaved({"skimage": lambda: skimage_lab_per_image(images), "kit": kit}, scale.repeats)
    difference = largest_difference(images, scale.batch_size)
    case = f"{size}x{size} px, {count} images, batch {scale.batch_size}"
    comparison = Comparison(ITEM, case, TARGET)
    comparison.baseline("skimage.color.rgb2lab per image (float32)", rate(count, timings["skimage"]), "images/s",
                        timings["skimage"])
    comparison.kit("colorkit rgb_to_model_io_xla, batched in tf.data", rate(count, timings["kit"]), "images/s",
                   timings["kit"], notes=f"max |difference| {difference:.1e} Lab units")
    return comparison.rows
