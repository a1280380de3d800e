"""Pieces every model family shares: seeds, widths, size checks, BatchNorm, receptive fields.

Nothing here is a model. The family files (strided_cnn.py, resnet.py, pix2pix.py)
use these helpers so that each of them can be read top to bottom as the
architecture alone.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from colorkit.errors import ColorkitError

#: The model input: normalised L, one channel.
L_CHANNELS = 1
#: The regression output: normalised a and b.
AB_CHANNELS = 2


class Seeds:
    """One build seed -> a different, reproducible seed for every random draw of a build.

    A Keras initializer given an integer seed draws the same numbers each time it
    is called, so sharing one instance would give every layer of the same shape
    the same weights. Each layer therefore gets its own seed, drawn from a numpy
    generator seeded with the build seed. This keeps ``build(name, seed=s)``
    reproducible without reseeding Python, numpy and TensorFlow for the whole
    process (which ``keras.utils.set_random_seed`` would do behind the caller's back).
    """

    def __init__(self, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ColorkitError(f"seed must be a non-negative integer, got {seed!r}")
        self._rng = np.random.default_rng(int(seed))

    def next(self) -> int:
        """A fresh seed for one layer (a Dropout, an initializer)."""
        return int(self._rng.integers(0, 2**31 - 1))

    def initializers(self, kind: str, **config):
        """A function that returns a freshly seeded ``kind`` initializer on each call.

        ``kind`` is a Keras initializer name ("glorot_uniform", "he_normal",
        "random_normal"); ``config`` its other arguments (``mean``, ``stddev``)."""
        initializer_class = type(keras.initializers.get(kind))

        def make():
            return initializer_class(seed=self.next(), **config)

        return make


def check_width(width, model_name: str) -> float:
    """The width multiplier scales every hidden channel count; refuse nonsense early."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 16:
        raise ColorkitError(f"{model_name}: width must be a number in (0, 16], got {width!r}")
    return float(width)


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, rounded, never below one."""
    return max(1, round(channels * width))


def check_choice(value, choices, option: str, model_name: str):
    """Refuse a string option that is not one of ``choices``."""
    if value not in choices:
        raise ColorkitError(f"{model_name}: {option} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_input_shape(input_shape, multiple: int, model_name: str, minimum: int = 1) -> tuple:
    """Check ``input_shape`` is (height, width, 1) with sides that are multiples of ``multiple``.

    A side may be None (any size at call time). A fixed side that is not a
    multiple would make the decoder's output a different size from its input
    (or fail deep inside Keras), so it is refused here, before any layer exists."""
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] != L_CHANNELS:
        raise ColorkitError(f"{model_name} takes normalised L of shape (height, width, 1), got {input_shape}")
    for side in shape[:2]:
        if side is None:
            continue
        is_size = isinstance(side, (int, np.integer)) and not isinstance(side, bool)
        if not is_size or side < max(minimum, multiple) or side % multiple:
            raise ColorkitError(
                f"{model_name} needs a height and width that are multiples of {multiple}"
                f"{f' and at least {minimum}' if minimum > multiple else ''}, got {shape[0]}x{shape[1]}: "
                "resize or crop the images to such a size"
            )
    return shape


def check_hint_options(hints, global_hints, num_bins, model_name: str) -> int | None:
    """The number of bins a global hint has (None without one); refuse inconsistent options."""
    for option, value in (("hints", hints), ("global_hints", global_hints)):
        if not isinstance(value, bool):
            raise ColorkitError(f"{model_name}: {option} must be True or False, got {value!r}")
    if global_hints and not hints:
        raise ColorkitError(f"{model_name}: global_hints=True needs hints=True (a user-guided model)")
    if not global_hints:
        if num_bins is not None:
            raise ColorkitError(f"{model_name}: num_bins is the size of the global hint; it needs global_hints=True")
        return None
    if num_bins is None:
        from colorkit import quantize

        return len(quantize.ab_bins())
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 3:
        raise ColorkitError(f"{model_name}: num_bins must be an integer >= 3, got {num_bins!r}")
    return int(num_bins)


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
