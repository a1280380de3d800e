"""The 2018 strided-CNN report's input path: Keras's ``ImageDataGenerator``.

Deprecated upstream: ``ImageDataGenerator`` belongs to Keras 2
(``tf.keras.preprocessing``); Keras 3 removed it and recommends ``tf.data``
with preprocessing layers. It is kept here, through the ``tf_keras`` package,
only so the report can be reproduced the way it was run and so ``bench/`` can
measure what the modern pipeline gains. Use ``colorkit.data.pipeline`` for
everything else: it is the default everywhere.

The report augments with "horizontal/vertical flips, rotations, variations in
brightness, horizontal/vertical shifts" without giving amounts; the amounts in
``REPORT_AUGMENTATION`` are this kit's choice and are the only ones used.
Unlike the tf.data path, these transforms change L and ab together per image
in Python/NumPy (rotation and shifts fill the borders by repeating edge
pixels, as the generator does by default).

Batches are the same as ``pipeline.make_dataset``'s: ``(L / 50 - 1, ab / 110)``
as float32 arrays ``[B, S, S, 1]`` and ``[B, S, S, 2]``, each image's centred
square resized to S x S.
"""

from __future__ import annotations

import contextlib
import io

import keras
import numpy as np
import pandas as pd

from colorkit import color
from colorkit.data.decode import DEFAULT_MAX_PIXELS, scan_images, warn_skipped
from colorkit.errors import ColorkitError

#: The report's augmentation kinds, with this kit's amounts (see module docstring).
REPORT_AUGMENTATION = dict(
    horizontal_flip=True,
    vertical_flip=True,
    rotation_range=20,  # degrees
    width_shift_range=0.1,  # fraction of the width
    height_shift_range=0.1,
    brightness_range=(0.8, 1.2),
)

LAB_BACKENDS = ("tf", "skimage")


def skimage_model_io(rgb: np.ndarray):
    """The report's conversion: scikit-image's ``rgb2lab``, image by image (also
    the baseline of bench/ item 2)."""
    from skimage.color import rgb2lab

    lab = np.stack([rgb2lab(image) for image in rgb]).astype(np.float32)
    return color.normalize_l(lab[..., :1]), color.normalize_ab(lab[..., 1:])


def _tf_model_io(rgb: np.ndarray):
    """The kit's conversion: one batched, XLA-compiled call (as the tf.data path)."""
    l_norm, ab_norm = color.rgb_to_model_io_xla(rgb)
    return l_norm.numpy(), ab_norm.numpy()


class _LabBatches(keras.utils.PyDataset):
    """Wraps the generator's iterator so Keras 3 ``fit`` can consume it."""

    def __init__(self, iterator, to_model_io, **kwargs):
        super().__init__(**kwargs)
        self.iterator = iterator
        self.to_model_io = to_model_io

    def __len__(self):
        return len(self.iterator)

    def __getitem__(self, index):
        rgb = np.clip(self.iterator[index], 0.0, 1.0).astype(np.float32)
        return self.to_model_io(rgb)

    def on_epoch_end(self):
        self.iterator.on_epoch_end()  # reshuffles, as Keras 2's fit did


def make_generator(
    paths,
    image_size: int,
    batch_size: int,
    augment: bool = True,
    shuffle: bool = True,
    seed: int = 0,
    lab: str = "tf",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    **pydataset_options,
) -> keras.utils.PyDataset:
    """(L, ab) batches from image files through ``ImageDataGenerator``
    (deprecated upstream; see the module docstring).

    ``augment``: the report's transforms (``REPORT_AUGMENTATION``) or none.
    ``lab``: "tf" (batched, as the tf.data path) or "skimage" (the report's
    per-image ``rgb2lab``). Unreadable files are skipped with one warning, as in
    the tf.data path. Extra options (``workers``...) go to ``keras.utils.PyDataset``."""
    from tf_keras.preprocessing.image import ImageDataGenerator

    if lab not in LAB_BACKENDS:
        raise ColorkitError(f"lab must be one of {LAB_BACKENDS}, got {lab!r}")
    good, skipped = scan_images(paths, max_pixels)
    warn_skipped(skipped, len(good) + len(skipped))
    if not good:
        raise ColorkitError("none of the files is a readable image; see the warning above for why")
    generator = ImageDataGenerator(rescale=1.0 / 255.0, **(REPORT_AUGMENTATION if augment else {}))
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Found N ... filenames."
        iterator = generator.flow_from_dataframe(
            pd.DataFrame({"filename": good}),
            x_col="filename",
            class_mode=None,
            target_size=(image_size, image_size),
            keep_aspect_ratio=True,  # centre square, like the tf.data path
            interpolation="bilinear",
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            validate_filenames=False,  # already checked, more thoroughly, by scan_images
        )
    return _LabBatches(iterator, skimage_model_io if lab == "skimage" else _tf_model_io, **pydataset_options)
