"""The 2018 report's ImageDataGenerator path: same batches as tf.data, seeded
augmentation, usable by Keras 3 fit, deprecated and not the default."""

import keras
import numpy as np
import pytest
from PIL import Image

from colorkit.data import legacy, pipeline
from colorkit.errors import ColorkitError


@pytest.fixture
def images(tmp_path, rng):
    """Six smooth colourful 32 x 32 PNGs."""
    yy, xx = np.mgrid[0:32, 0:32] / 32
    paths = []
    for i in range(6):
        phase = rng.uniform(0, 6, size=3)
        rgb = 0.5 + 0.45 * np.sin(np.stack([xx * 5 + phase[0], yy * 7 + phase[1], (xx + yy) * 4 + phase[2]], -1))
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_batches_have_the_pipelines_shapes_and_ranges(images):
    batches = legacy.make_generator(images, image_size=32, batch_size=4, seed=0)
    assert len(batches) == 2
    l_norm, ab_norm = batches[0]
    assert l_norm.shape == (4, 32, 32, 1) and ab_norm.shape == (4, 32, 32, 2)
    assert l_norm.dtype == np.float32 and ab_norm.dtype == np.float32
    assert l_norm.min() >= -1.0 and l_norm.max() <= 1.0 and np.abs(ab_norm).max() <= 1.05


def test_without_augmentation_it_yields_exactly_the_tf_data_batches(images):
    old = legacy.make_generator(images, 32, 6, augment=False, shuffle=False)[0]
    new = next(iter(pipeline.make_dataset(images, 32, 6)))
    np.testing.assert_allclose(old[0], new[0], atol=1e-4)
    np.testing.assert_allclose(old[1], new[1], atol=1e-4)
    reports_lab = legacy.make_generator(images, 32, 6, augment=False, shuffle=False, lab="skimage")[0]
    np.testing.assert_allclose(reports_lab[0], old[0], atol=1e-4)
    np.testing.assert_allclose(reports_lab[1], old[1], atol=1e-4)


def test_augmentation_is_the_reports_and_seeded(images):
    plain = legacy.make_generator(images, 32, 6, augment=False, shuffle=False)[0][0]
    first = legacy.make_generator(images, 32, 6, shuffle=False, seed=5)[0][0]
    again = legacy.make_generator(images, 32, 6, shuffle=False, seed=5)[0][0]
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - plain).mean() > 0.01
    assert legacy.REPORT_AUGMENTATION["horizontal_flip"] and legacy.REPORT_AUGMENTATION["vertical_flip"]
    assert {"rotation_range", "width_shift_range", "height_shift_range", "brightness_range"} <= set(legacy.REPORT_AUGMENTATION)


def test_keras_3_fit_consumes_it(images):
    model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(2, 3, padding="same")])
    model.compile("adam", "mse")
    history = model.fit(legacy.make_generator(images, 32, 3, seed=0), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def test_unreadable_files_are_skipped_and_bad_options_refused(images, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="bad.png"):
        batches = legacy.make_generator(images + [str(bad)], 32, 7)
    assert batches[0][0].shape[0] == 6
    with pytest.raises(ColorkitError, match="lab must be one of"):
        legacy.make_generator(images, 32, 2, lab="opencv")


def test_it_says_it_is_deprecated_and_not_the_default():
    assert "deprecated" in legacy.__doc__.lower() and "tf.data" in legacy.__doc__
    assert "deprecated" in legacy.make_generator.__doc__.lower()
