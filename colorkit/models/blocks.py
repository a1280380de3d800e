"""Pieces every model family shares: the weight seeds, channel counts, BatchNorm, resizing
layers, and reading a built graph (inbound layers, receptive field).

Nothing here is a model. The family files use these so that each reads top to bottom as
its architecture alone.
"""

from __future__ import annotations

import keras
from keras import ops

from colorkit.errors import ColorkitError

#: The model input: normalised L, one channel.
L_CHANNELS = 1
#: The regression output: normalised a and b.
AB_CHANNELS = 2

#: The seed stream every initializer of colorkit's models draws from: a family declares its
#: initializers once, ``KERNEL_INIT = keras.initializers.HeNormal(seed=WEIGHT_SEEDS)``, and its
#: builder calls ``seed_weights(seed)`` first. Each weight tensor drawn advances the stream, so
#: no two layers start alike, even of the same shape.
WEIGHT_SEEDS = keras.random.SeedGenerator(0, name="colorkit_weight_seeds")


def seed_weights(seed: int) -> None:
    """Restart ``WEIGHT_SEEDS`` at ``seed``: the build that follows draws the same initial
    weights for the same seed and different ones for another.

    Only this stream restarts; Python's, numpy's and TensorFlow's global generators are
    left as they are (``keras.utils.set_random_seed`` would reseed them all)."""
    # (seed, 0): the state ``keras.random.SeedGenerator(seed)`` starts from.
    WEIGHT_SEEDS.state.assign(ops.convert_to_tensor([seed, 0], dtype=WEIGHT_SEEDS.state.dtype))


def next_seed() -> int:
    """A seed for a layer that takes an integer one (Dropout), drawn from ``WEIGHT_SEEDS``."""
    return int(keras.random.randint((), 0, 2**31 - 1, seed=WEIGHT_SEEDS))


def channels(count: float) -> int:
    """A channel count after the width multiplier (``64 * width``): rounded, never below one."""
    return max(1, round(count))


def batch_norm(name: str, gamma_initializer="ones") -> keras.layers.BatchNormalization:
    """BatchNorm with PyTorch's constants (eps 1e-5, running averages updated by 0.1 per step).

    The ResNet and GAN reports trained PyTorch models; Keras' defaults (eps 1e-3,
    momentum 0.99) would make the running statistics lag far behind on short runs
    and would not reproduce torchvision's weights exactly when they are loaded."""
    return keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, gamma_initializer=gamma_initializer, name=name
    )


@keras.saving.register_keras_serializable(package="colorkit")
class BilinearUpsample2x(keras.layers.Layer):
    """Double height and width by bilinear interpolation, for any input size.

    Keras 3.15's ``UpSampling2D(interpolation="bilinear")`` cannot trace a
    graph whose height and width are unknown (it compares the traced size with
    0 in Python), which would tie a model to one image size. This layer reads
    the sizes at run time. It matches ``tf.image.resize(..., "bilinear")``
    (half-pixel centres, edges clamped): each new pixel is 3/4 of its nearest
    old pixel plus 1/4 of the next-nearest. No arguments beyond the base
    layer's, so the inherited ``get_config`` is complete."""

    def call(self, inputs):
        return _double_along(_double_along(inputs, axis=1), axis=2)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height and 2 * height, width and 2 * width, channels)


@keras.saving.register_keras_serializable(package="colorkit")
class BilinearUpsample4x(keras.layers.Layer):
    """Multiply height and width by 4 with ``tf.image.resize(..., "bilinear")``
    (half-pixel centres), for any input size; computes in float32.

    Zhang's regression head (``zhang.py``, ``head="regression"``) uses it to
    bring its 1/4-resolution ab to the input's size, the same resize
    ``AnnealedMeanDecode`` applies to the classification head's colours. It
    lives here, with the layers every family shares, so that importing
    ``colorkit.models`` registers it for ``.keras`` loading."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        return resize_by(inputs, 4)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height and 4 * height, width and 4 * width, channels)


def resize_by(x, factor: int):
    """NHWC ``x`` with height and width multiplied by ``factor``, bilinear, sizes read at run time."""
    import tensorflow as tf

    return tf.image.resize(x, tf.shape(x)[1:3] * factor, method="bilinear")


def _double_along(x, axis: int):
    """Bilinear x2 along one spatial axis: each pixel becomes two, the first
    leaning towards its previous neighbour, the second towards its next one."""
    shape = ops.shape(x)
    positions = ops.arange(shape[axis])
    previous = ops.take(x, ops.maximum(positions - 1, 0), axis=axis)
    following = ops.take(x, ops.minimum(positions + 1, shape[axis] - 1), axis=axis)
    first = 0.75 * x + 0.25 * previous
    second = 0.75 * x + 0.25 * following
    doubled = [*shape]
    doubled[axis] = 2 * shape[axis]
    return ops.reshape(ops.stack([first, second], axis=axis + 1), doubled)


def with_keras_layers(model: keras.Model) -> keras.Model:
    """A copy of ``model`` holding the same weights, with Keras' own layer wherever it has
    one of colorkit's same-named speed-ups of it (``conv.Conv2D``, ``transposed.Conv2DTranspose``):
    the model as TensorFlow computes it alone, for comparisons (the tests, bench item 4c)."""

    def clone(layer):
        kind = type(layer)
        parent = kind.__mro__[1]
        if kind.__module__.startswith("colorkit.") and parent.__name__ == kind.__name__:
            kind = parent
        return kind.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


# --- Reading a built graph -------------------------------------------------------------

#: Layers that act on each position independently (or only pad): they leave
#: the receptive field unchanged.
_POINTWISE = (
    keras.layers.InputLayer,
    keras.layers.BatchNormalization,
    keras.layers.Activation,
    keras.layers.LeakyReLU,
    keras.layers.ReLU,
    keras.layers.Dropout,
    keras.layers.ZeroPadding2D,
    keras.layers.Concatenate,
    keras.layers.Add,
)
#: Layers with a sliding window: the receptive field grows by their kernel.
_WINDOWED = (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)


def _producers(model: keras.Model) -> dict:
    """Map each tensor of ``model`` (by identity) to the layer that makes it."""
    return {id(layer.output): layer for layer in model.layers}


def _parents(layer, made_by: dict) -> list:
    if isinstance(layer, keras.layers.InputLayer):
        return []
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    return [made_by[id(tensor)] for tensor in inputs]


def inbound_layers(model: keras.Model, layer) -> list:
    """The layers whose outputs ``layer`` takes as inputs, in input order.

    Works for functional models whose layers are each called once (all of
    colorkit's), using only public attributes (``layer.input``, ``layer.output``)."""
    return _parents(layer, _producers(model))


def receptive_field(model: keras.Model) -> int:
    """The side, in input pixels, of the window one unit of the model's output sees.

    Walks back from the output: a window of ``r`` units after a layer with kernel
    ``k``, stride ``s`` and dilation ``d`` covers ``(r - 1) * s + d * (k - 1) + 1``
    units before it. Where paths merge (a concatenation) the widest one counts.
    Square kernels are assumed; layers that resample (upsampling, transposed
    convolutions) or pool globally have no finite window and are refused."""
    made_by = _producers(model)

    def window(layer, size: int) -> int:
        if isinstance(layer, _WINDOWED):
            kernel = layer.kernel_size[0] if hasattr(layer, "kernel_size") else layer.pool_size[0]
            dilation = layer.dilation_rate[0] if hasattr(layer, "dilation_rate") else 1
            size = (size - 1) * layer.strides[0] + dilation * (kernel - 1) + 1
        elif not isinstance(layer, _POINTWISE):
            raise ColorkitError(
                f"receptive_field handles convolution and pooling stacks; {model.name} has "
                f"{type(layer).__name__} layer {layer.name!r}"
            )
        return max((window(parent, size) for parent in _parents(layer, made_by)), default=size)

    return window(made_by[id(model.outputs[0])], 1)
