"""colorkit's Conv2D computes what keras.layers.Conv2D computes, whether it splits a
single image in two or not, with the same gradients, and reads the same files."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from colorkit import models
from colorkit.models import conv
from colorkit.models.conv import Conv2D, convolve_in_halves

CHANNELS = conv.SPLIT_MIN_CHANNELS


def layer_pair(filters, input_shape, rng, **options):
    """Keras' layer and colorkit's with the same random weights (a non-zero bias)."""
    options = {"kernel_size": 3, "padding": "same", "activation": "relu", **options}
    plain, ours = keras.layers.Conv2D(filters, **options), Conv2D(filters, **options)
    plain.build(input_shape)
    ours.build(input_shape)
    ours.set_weights([rng.normal(0.0, 0.05, w.shape).astype(np.float32) for w in plain.get_weights()])
    plain.set_weights(ours.get_weights())
    return plain, ours


@pytest.mark.parametrize("shape, options", [
    ((1, 8, 6, CHANNELS), {}),  # split
    ((1, 6, 10, CHANNELS), {"dilation_rate": 2}),  # split, Zhang's dilated blocks
    ((1, 4, 7, CHANNELS), {"kernel_size": (3, 5)}),  # split, a wider reach across than down
    ((1, 2, 2, CHANNELS), {"dilation_rate": 2}),  # split, the reach beyond the whole image
    ((1, 5, 4, CHANNELS), {}),  # odd height: not split
    ((3, 4, 4, CHANNELS), {}),  # a batch: not split
    ((1, 4, 4, 8), {}),  # few channels: not split
])
def test_outputs_and_gradients_match_keras_conv2d(shape, options, rng):
    plain, ours = layer_pair(5, shape, rng, **options)
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    expected = plain(x)
    np.testing.assert_allclose(ours(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    upstream = rng.normal(size=expected.shape).astype(np.float32)

    def gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            objective = tf.reduce_sum(upstream * layer(x))
        return tape.gradient(objective, [x, layer.kernel, layer.bias])

    for mine, theirs in zip(gradients(ours), gradients(plain)):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)


def test_the_halves_are_the_same_convolution_as_the_whole(rng):
    kernel = rng.normal(size=(3, 3, 6, 4)).astype(np.float32)
    image = rng.normal(size=(1, 10, 7, 6)).astype(np.float32)
    for rate in (1, 3):
        expected = tf.nn.conv2d(image, kernel, 1, "SAME", dilations=rate)
        np.testing.assert_allclose(convolve_in_halves(tf.constant(image), kernel, (rate, rate)), expected, atol=1e-5)


def test_one_traced_graph_serves_one_image_and_a_batch(rng):
    plain, ours = layer_pair(3, (None, None, None, CHANNELS), rng)
    call = tf.function(ours, input_signature=[tf.TensorSpec([None, None, None, CHANNELS])])
    for shape in [(1, 6, 4, CHANNELS), (2, 6, 4, CHANNELS), (1, 3, 4, CHANNELS)]:
        x = rng.normal(size=shape).astype(np.float32)
        np.testing.assert_allclose(call(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)
    assert call.experimental_get_tracing_count() == 1


def test_strided_and_valid_convolutions_run_as_keras_runs_them(rng):
    for options in ({"strides": 2}, {"padding": "valid"}, {"kernel_size": 4}):
        plain, ours = layer_pair(2, (1, 6, 6, CHANNELS), rng, **options)
        x = rng.normal(size=(1, 6, 6, CHANNELS)).astype(np.float32)
        np.testing.assert_allclose(ours(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)


def test_zhang_uses_it_with_keras_own_config_and_reads_files_saved_with_keras_layer(tmp_path, rng):
    from colorkit.models.blocks import with_keras_layers

    model = models.build("zhang_eccv16", input_shape=(None, None, 1), width=0.125, seed=1)
    convs = [layer for layer in model.layers if layer.name.startswith("conv") and isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(type(layer) is Conv2D for layer in convs)
    assert convs[0].get_config() == keras.layers.Conv2D.from_config(convs[0].get_config()).get_config()
    plain = with_keras_layers(model)
    assert not any(type(layer).__module__.startswith("colorkit.models.") for layer in plain.layers
                   if layer.name.startswith("conv"))
    plain.save_weights(tmp_path / "plain.weights.h5")
    fresh = models.build("zhang_eccv16", input_shape=(None, None, 1), width=0.125, seed=2)
    fresh.load_weights(tmp_path / "plain.weights.h5")
    x = rng.uniform(-1, 1, (1, 32, 40, 1)).astype(np.float32)
    np.testing.assert_allclose(fresh(x, training=False).numpy(), model(x, training=False).numpy(), rtol=1e-5,
                               atol=1e-5)
