"""colorkit's Conv2DTranspose computes what keras.layers.Conv2DTranspose computes, in
both of its forms, with the same gradients, and reads and writes the same files."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from colorkit import models
from colorkit.models import transposed
from colorkit.models.blocks import with_keras_layers
from colorkit.models.transposed import Conv2DTranspose, conv_transpose_4x4_by_matmul

#: float32 sums of up to 16 * channels products, taken in another order.
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def layer_pair(filters, input_shape, rng, **options):
    """Keras' layer and colorkit's with the same random weights (a non-zero bias)."""
    options = {"kernel_size": 4, "strides": 2, "padding": "same", **options}
    plain, ours = keras.layers.Conv2DTranspose(filters, **options), Conv2DTranspose(filters, **options)
    plain.build(input_shape)
    ours.build(input_shape)
    ours.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in plain.get_weights()])
    plain.set_weights(ours.get_weights())
    return plain, ours


def gradients(layer, x, upstream):
    """d(sum(upstream * layer(x))) with respect to x, the kernel and the bias."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        objective = tf.reduce_sum(upstream * layer(x))
    return tape.gradient(objective, [x, layer.kernel, layer.bias])


# Odd and even sides, 1x1 maps, one image and several; the first four are small enough for the matrix
# form, the last two go to TensorFlow's kernel (more than MATMUL_MAX_POSITIONS positions).
SHAPES = [(1, 1, 1, 8), (2, 3, 5, 6), (5, 4, 4, 16), (3, 7, 2, 3), (1, 17, 16, 4), (4, 9, 11, 5)]


@pytest.mark.parametrize("shape", SHAPES)
def test_outputs_and_gradients_match_keras_conv2d_transpose(shape, rng):
    plain, ours = layer_pair(7, shape, rng, activation="relu")
    x = rng.normal(size=shape).astype(np.float32)
    expected = plain(x).numpy()
    assert expected.shape == (shape[0], 2 * shape[1], 2 * shape[2], 7)
    np.testing.assert_allclose(ours(x).numpy(), expected, **TOLERANCE)
    upstream = rng.normal(size=expected.shape).astype(np.float32)
    for mine, theirs in zip(gradients(ours, x, upstream), gradients(plain, x, upstream)):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), **TOLERANCE)


@pytest.mark.parametrize("shape", [(1, 6, 5, 3), (2, 16, 16, 4)])
def test_the_matrix_form_is_the_transposed_convolution_at_any_size(shape, rng):
    kernel = rng.normal(size=(4, 4, 5, shape[-1])).astype(np.float32)
    x = rng.normal(size=shape).astype(np.float32)
    expected = keras.ops.conv_transpose(x, kernel, strides=2, padding="same")
    np.testing.assert_allclose(conv_transpose_4x4_by_matmul(tf.constant(x), kernel).numpy(), expected, **TOLERANCE)


def test_a_one_pixel_input_spreads_the_kernel_centre_over_its_2x2_output():
    """By hand: a single pixel of value 1 on one channel. The output (2x2) sees the
    taps (ky, kx) with 2 * 0 + ky - 1 in {0, 1}: the kernel's rows and columns 1 and 2."""
    kernel = np.arange(4 * 4 * 1 * 2, dtype=np.float32).reshape(4, 4, 1, 2)
    x = np.array([[[[1.0, 0.0]]]], np.float32)
    out = conv_transpose_4x4_by_matmul(tf.constant(x), kernel).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(out, kernel[1:3, 1:3, 0, 0])


def test_both_forms_run_in_one_traced_graph_for_any_batch_and_size(rng):
    """Built with unknown height and width and traced once for any batch: small inputs take
    the matrix form and large ones TensorFlow's kernel, both giving Keras' result."""
    plain, ours = layer_pair(3, (None, None, None, 6), rng)
    call = tf.function(ours, input_signature=[tf.TensorSpec([None, None, None, 6])])
    for shape in [(1, 2, 3, 6), (6, 4, 4, 6), (1, 20, 14, 6), (32, 3, 3, 6)]:
        x = rng.normal(size=shape).astype(np.float32)
        np.testing.assert_allclose(call(x).numpy(), plain(x).numpy(), **TOLERANCE)
    assert call.experimental_get_tracing_count() == 1


def test_under_xla_it_matches_keras(rng):
    plain, ours = layer_pair(4, (2, 3, 3, 5), rng)
    x = rng.normal(size=(2, 3, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(tf.function(ours, jit_compile=True)(x).numpy(), plain(x).numpy(), **TOLERANCE)


def test_other_configurations_run_as_keras_runs_them(rng):
    """Only the 4x4, stride 2, "same" case has a second form; any other is the parent's call."""
    for options in ({"kernel_size": 3}, {"padding": "valid"}, {"strides": 1}):
        plain, ours = layer_pair(2, (1, 3, 3, 4), rng, **options)
        x = rng.normal(size=(1, 3, 3, 4)).astype(np.float32)
        np.testing.assert_allclose(ours(x).numpy(), plain(x).numpy(), **TOLERANCE)


def test_config_and_weights_are_keras_own(rng):
    plain, ours = layer_pair(5, (1, 2, 2, 3), rng, use_bias=False, name="up")
    assert ours.get_config() == plain.get_config()
    assert [w.path for w in ours.weights] == [w.path for w in plain.weights] == ["up/kernel"]
    assert ours.kernel.shape == (4, 4, 5, 3)  # Conv2DTranspose's (h, w, out, in)


@pytest.mark.parametrize("name, options", [
    ("unet_generator", {"width": 0.125, "depth": 4}),
    ("resnet18_decoder", {"width": 0.125, "upsample": "transposed"}),
    ("zhang_eccv16", {"width": 0.125}),
])
def test_models_use_it_and_read_files_saved_with_keras_layer(name, options, tmp_path, rng):
    model = models.build(name, input_shape=(None, None, 1), seed=1, **options)
    upsamplers = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert upsamplers and all(type(layer) is Conv2DTranspose for layer in upsamplers)

    old = with_keras_layers(model)
    assert not any(type(layer) is Conv2DTranspose for layer in old.layers)
    old.save(tmp_path / "old.keras")
    old.save_weights(tmp_path / "old.weights.h5")
    fresh = [models.build(name, input_shape=(None, None, 1), seed=2, **options) for _ in range(2)]
    fresh[0].load_weights(tmp_path / "old.keras")
    fresh[1].load_weights(tmp_path / "old.weights.h5")
    model.save(tmp_path / "new.keras")
    reloaded = keras.models.load_model(tmp_path / "new.keras")
    assert all(type(layer) is Conv2DTranspose for layer in reloaded.layers
               if isinstance(layer, keras.layers.Conv2DTranspose))
    x = rng.uniform(-1, 1, (2, 32, 48, 1)).astype(np.float32)
    expected = old(x, training=False).numpy()
    for candidate in (model, *fresh, reloaded, keras.models.load_model(tmp_path / "old.keras")):
        np.testing.assert_allclose(candidate(x, training=False).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_unet_training_gradients_match_keras_layers(rng):
    """One training-mode gradient of the whole U-Net (BatchNorm on batch statistics, dropout
    off for comparability) with colorkit's layers and with Keras': the same."""
    model = models.build("unet_generator", input_shape=(32, 32, 1), width=0.125, depth=4, seed=0)
    old = with_keras_layers(model)
    x = rng.uniform(-1, 1, (3, 32, 32, 1)).astype(np.float32)
    target = rng.uniform(-1, 1, (3, 32, 32, 2)).astype(np.float32)

    def grads(net):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(net(x, training=True) - target))
        return tape.gradient(loss, net.trainable_weights)

    for layer in (*model.layers, *old.layers):
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    for mine, theirs in zip(grads(model), grads(old)):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-3, atol=1e-6)


def test_small_inputs_take_the_matrix_form_and_large_ones_do_not(rng, monkeypatch):
    calls = []
    matrix_form = transposed.conv_transpose_4x4_by_matmul
    monkeypatch.setattr(transposed, "conv_transpose_4x4_by_matmul", lambda *args: calls.append(1) or matrix_form(*args))
    _, ours = layer_pair(2, (None, None, None, 3), rng)
    side = int(np.sqrt(transposed.MATMUL_MAX_POSITIONS))
    ours(rng.normal(size=(1, side, side, 3)).astype(np.float32))  # eager: only the branch taken runs
    assert len(calls) == 1
    ours(rng.normal(size=(1, side + 1, side, 3)).astype(np.float32))
    assert len(calls) == 1
