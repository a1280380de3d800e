"""colorkit.color against scikit-image, the reference implementation."""

import matplotlib.cbook
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from skimage.color import lab2rgb, rgb2lab

from colorkit import color, color_fast

TOLERANCE_LAB = 1e-3
TOLERANCE_ROUND_TRIP = 1e-4


def all_8bit_extremes():
    """Every corner of the RGB cube, primaries, secondaries and the 256 greys."""
    levels = np.array([0, 1, 127, 128, 254, 255])
    corners = np.stack(np.meshgrid(levels, levels, levels), -1).reshape(-1, 3)
    greys = np.repeat(np.arange(256)[:, None], 3, axis=1)
    return np.concatenate([corners, greys]).astype(np.float64) / 255.0


def real_photos():
    """Colour photos that ship with scikit-image and matplotlib."""
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(np.asarray(matplotlib.pyplot.imread(f)))
    return [p[..., :3].astype(np.float64) / 255.0 for p in photos]


def max_abs_per_channel(a, b):
    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).reshape(-1, 3).max(axis=0)


@pytest.mark.parametrize(
    "rgb",
    [
        np.random.default_rng(0).random((4096, 3)),
        all_8bit_extremes(),
        np.arange(256 ** 3, step=997).reshape(-1, 1) // np.array([65536, 256, 1]) % 256 / 255.0,
    ],
    ids=["random", "8bit-extremes", "8bit-sweep"],
)
def test_rgb_to_lab_matches_skimage(rgb):
    ours = color.rgb_to_lab(rgb.astype(np.float32))
    assert (max_abs_per_channel(ours, rgb2lab(rgb)) < TOLERANCE_LAB).all()


def test_rgb_to_lab_matches_skimage_on_photos():
    for photo in real_photos():
        ours = color.rgb_to_lab(photo.astype(np.float32))
        assert ours.shape == photo.shape
        assert (max_abs_per_channel(ours, rgb2lab(photo)) < TOLERANCE_LAB).all()


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    rng = np.random.default_rng(1)
    lab = np.stack([rng.uniform(0, 100, 5000), rng.uniform(-128, 127, 5000), rng.uniform(-128, 127, 5000)], -1)
    ours = color.lab_to_rgb(lab.astype(np.float32))
    with pytest.warns(UserWarning, match="negative Z"):  # skimage clamps negative Z, as we do
        reference = lab2rgb(lab)
    assert np.abs(ours - reference).max() < TOLERANCE_LAB


def test_round_trip_is_identity_on_the_8bit_cube():
    rgb = (np.arange(0, 256 ** 3, 101).reshape(-1, 1) // np.array([65536, 256, 1]) % 256 / 255.0).astype(np.float32)
    back = color.lab_to_rgb(color.rgb_to_lab(rgb))
    assert np.abs(back - rgb).max() < TOLERANCE_ROUND_TRIP


def test_any_leading_shape_and_integer_input():
    image = skimage.data.astronaut()[:8, :8]
    batch = np.stack([image, image])[None]  # [1, 2, 8, 8, 3]
    lab_uint8 = color.rgb_to_lab(batch)
    assert lab_uint8.shape == batch.shape
    assert (max_abs_per_channel(lab_uint8[0, 1], rgb2lab(image)) < TOLERANCE_LAB).all()
    np.testing.assert_allclose(color.rgb_to_lab(batch.astype(np.int64)), lab_uint8, atol=2e-4)  # the float path
    assert color.rgb_to_lab(np.array([1.0, 1.0, 1.0], np.float32))[0] == pytest.approx(100.0, abs=1e-3)


def test_uint8_takes_the_table_and_matches_skimage_eagerly_in_a_graph_and_under_xla():
    """8-bit values are linearised by lookup, not by the pow. XLA's gather
    clamps an index it cannot find instead of failing, so check it there too."""
    codes = (np.arange(256 ** 3, step=997).reshape(-1, 1) // np.array([65536, 256, 1]) % 256).astype(np.uint8)
    codes = np.concatenate([codes, np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)])
    reference = rgb2lab(codes / 255.0)
    for convert in (color.rgb_to_lab, tf.function(color.rgb_to_lab), tf.function(color.rgb_to_lab, jit_compile=True)):
        assert (max_abs_per_channel(convert(tf.constant(codes)), reference) < TOLERANCE_LAB).all()
    linear = color.srgb_to_linear(tf.range(256, dtype=tf.int32)).numpy()  # other integers: the float path
    np.testing.assert_allclose(color.srgb_to_linear(np.arange(256, dtype=np.uint8)), linear, atol=1e-6)


def test_numpy_in_numpy_out_tensor_in_tensor_out():
    rgb = np.full((2, 2, 3), 0.5, np.float32)
    assert isinstance(color.rgb_to_lab(rgb), np.ndarray)
    assert isinstance(color.rgb_to_lab(tf.constant(rgb)), tf.Tensor)


def test_gradients_are_finite_at_every_branch_point():
    points = tf.constant(
        [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.04045, 0.0031308, 0.5], [1e-7, 0.999, 0.04]], tf.float32
    )
    rgb = tf.Variable(points)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(color.rgb_to_lab(rgb))
    assert np.isfinite(tape.gradient(loss, rgb).numpy()).all()

    lab = tf.Variable(tf.constant([[0.0, 0.0, 0.0], [100, 0, 0], [8.0, 0, 0], [50, 120, -120], [20, -90, 110]]))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(color.lab_to_rgb(lab, clip=False))
    assert np.isfinite(tape.gradient(loss, lab).numpy()).all()


def test_runs_inside_tf_data_and_tf_function():
    images = np.random.default_rng(2).random((4, 8, 8, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(images).map(color.rgb_to_lab).batch(4)
    from_pipeline = next(iter(dataset)).numpy()
    from_function = tf.function(color.rgb_to_lab)(tf.constant(images)).numpy()
    np.testing.assert_allclose(from_pipeline, rgb2lab(images.astype(np.float64)), atol=TOLERANCE_LAB)
    np.testing.assert_allclose(from_function, from_pipeline, atol=TOLERANCE_ROUND_TRIP)


def test_halleys_cube_root_is_as_exact_as_float32_allows_eagerly_and_under_xla():
    t = np.concatenate([np.geomspace(0.008856, 1.2, 5000), np.random.default_rng(3).uniform(0.008856, 1.2, 5000)])
    exact = np.cbrt(t)
    compiled = tf.function(color_fast.halley_cube_root, jit_compile=True)
    for root in (color_fast.halley_cube_root(tf.constant(t, tf.float32)), compiled(tf.constant(t, tf.float32))):
        assert np.max(np.abs(root.numpy() - exact) / exact) < 5e-7  # a few float32 roundings
    assert np.max(np.abs(color_fast.halley_cube_root(tf.constant(t)).numpy() - exact) / exact) < 1e-11  # float64: 3% -> 1e-5 -> ~1e-12 in two steps


def test_the_fast_kernels_compute_what_their_plain_counterparts_do():
    x = np.geomspace(1e-6, 1.5, 1000)
    np.testing.assert_allclose(color_fast.positive_pow(tf.constant(x), 2.4).numpy(), x ** 2.4, rtol=1e-12)
    np.testing.assert_allclose(color_fast.exp_log_cube_root(tf.constant(x, tf.float32)).numpy(), np.cbrt(x), rtol=1e-6)
    table = color_fast.table_8bit(np.sqrt)
    values = np.array([[0, 1, 128], [254, 255, 7]], np.uint8)
    np.testing.assert_array_equal(color_fast.lookup_8bit(table, values).numpy(), np.sqrt(values / 255.0).astype(np.float32))
    pixels = np.arange(2 * 3 * 4 * 3).reshape(2, 3, 4, 3)
    planes = color_fast.channel_planes(pixels).numpy()
    np.testing.assert_array_equal(planes, pixels.reshape(-1, 3).T)  # one row per channel
    np.testing.assert_array_equal(color_fast.interleaved(planes, pixels.shape).numpy(), pixels)


def test_the_compiled_model_io_step_matches_skimage_for_8bit_float32_and_float64():
    photo = skimage.data.coffee()[::8, ::8]
    l_ref, ab_ref = color.normalize_l(rgb2lab(photo)[..., :1]), color.normalize_ab(rgb2lab(photo)[..., 1:])
    for rgb in (photo, photo.astype(np.float32) / 255, photo.astype(np.float64) / 255):
        l_norm, ab_norm = color.rgb_to_model_io_xla(rgb[None])
        assert np.abs(l_norm[0] - l_ref).max() * color.L_HALF_RANGE < TOLERANCE_LAB
        assert np.abs(ab_norm[0] - ab_ref).max() * color.AB_RANGE < TOLERANCE_LAB


def test_keras_layers_convert_inside_a_model_and_reload(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, color.LabToRGB()(color.RGBToLab()(inputs)))
    images = np.random.default_rng(3).random((2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(images, verbose=0), images, atol=TOLERANCE_ROUND_TRIP)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), images, atol=TOLERANCE_ROUND_TRIP)


def test_model_normalisation_round_trip_and_ranges():
    photo = real_photos()[0].astype(np.float32)
    l_norm, ab_norm = color.rgb_to_model_io(photo)
    assert l_norm.shape[-1] == 1 and ab_norm.shape[-1] == 2
    assert -1.0 <= float(tf.reduce_min(l_norm)) and float(tf.reduce_max(l_norm)) <= 1.0
    assert float(tf.reduce_max(tf.abs(ab_norm))) < 1.0
    back = color.model_io_to_rgb(l_norm, ab_norm).numpy()
    assert np.abs(back - photo).max() < TOLERANCE_ROUND_TRIP


def test_gray_keeps_lightness_and_drops_colour():
    photo = real_photos()[1].astype(np.float32)
    gray = color.rgb_to_gray(photo)
    lab_gray = rgb2lab(gray.astype(np.float64))
    np.testing.assert_allclose(lab_gray[..., 0], rgb2lab(photo.astype(np.float64))[..., 0], atol=1e-2)
    assert np.abs(lab_gray[..., 1:]).max() < 1e-2


def test_linear_rgb_is_skimage_rgb_before_companding_and_says_what_is_displayable(rng):
    """The gamut fit relies on it: linear RGB in [0, 1] exactly when sRGB is."""
    lab = np.stack([rng.uniform(0, 100, 5000), rng.uniform(-110, 110, 5000), rng.uniform(-110, 110, 5000)], -1)
    linear = np.asarray(color.lab_to_linear_rgb(lab.astype(np.float32)))
    reference = lab2rgb(lab)  # clipped to [0, 1], so compare where it needed no clipping
    inside = np.all((linear >= 0) & (linear <= 1), axis=-1)
    assert 0.05 < inside.mean() < 0.95
    np.testing.assert_allclose(np.asarray(color.srgb_to_linear(reference[inside].astype(np.float32))),
                               linear[inside], atol=2e-5)
    unclipped = np.asarray(color.lab_to_rgb(lab.astype(np.float32), clip=False))
    np.testing.assert_array_equal(np.all((unclipped >= 0) & (unclipped <= 1), axis=-1)[inside], True)


@pytest.mark.parametrize("count", [1, color.SHORT_CHUNK_PIXELS + 1, color.CHUNK_PIXELS + 3])
def test_per_pixel_runs_a_compiled_step_over_any_length_in_padded_chunks(count):
    """Short tails are padded and cut back; tuples of results come back whole and in order."""
    pixels = np.arange(count * 3, dtype=np.float32).reshape(count, 3)
    seen_shapes = []

    def step(chunk):
        seen_shapes.append(chunk.shape[0])
        return tf.constant(chunk * 2.0), tf.reduce_sum(chunk, axis=-1)

    doubled, sums = color.per_pixel(step, pixels)
    np.testing.assert_array_equal(doubled, pixels * 2.0)
    np.testing.assert_array_equal(sums, pixels.sum(axis=-1))
    assert set(seen_shapes) <= {color.SHORT_CHUNK_PIXELS, color.CHUNK_PIXELS}
