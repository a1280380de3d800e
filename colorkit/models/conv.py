"""A stride-1 convolution that runs one image of many channels as a batch of two halves.

This module's ``Conv2D`` is ``keras.layers.Conv2D``: the same arguments,
configuration, weights and outputs (the same sums, bit for bit), and the same
class name, which Keras files use to find each layer's weights (see
``transposed.py``): files saved with either layer load into models built with the other.

Why: TensorFlow's CPU convolution (oneDNN) takes a much slower path for a batch of
one image than for two when the channels are many (Zhang's 256- and 512-channel
blocks; bench item 4c times it). Inference colours one image at a time, so there
the layer cuts the image into a top and a bottom half, each with the rows of the
other half that its outputs see (the kernel's reach, ``dilation * (size - 1) / 2``,
zeros beyond the image as "same" padding gives), convolves the two halves as one
batch and stacks their outputs.
"""

from __future__ import annotations

import keras
import tensorflow as tf

#: Inputs with at least this many channels are split (below it the single-image path is not slower).
SPLIT_MIN_CHANNELS = 256


@keras.saving.register_keras_serializable(package="colorkit")
class Conv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D``; a single image of ``SPLIT_MIN_CHANNELS`` channels or more
    with an even height is convolved as two halves when the convolution is stride 1,
    "same", with odd kernel sides (see the module docstring). Takes the parent's arguments."""

    def call(self, inputs):
        if not self._split_applies(inputs):
            return super().call(inputs)
        shape = tf.shape(inputs)
        outputs = tf.cond(
            (shape[0] == 1) & (shape[1] % 2 == 0),
            lambda: convolve_in_halves(inputs, self.kernel, self.dilation_rate),
            lambda: keras.ops.conv(inputs, self.kernel, strides=1, padding="same", dilation_rate=self.dilation_rate),
        )
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs if self.activation is None else self.activation(outputs)

    def _split_applies(self, inputs) -> bool:
        return (
            self.strides == (1, 1) and self.padding == "same" and self.groups == 1
            and self.data_format == "channels_last"
            and all(side % 2 for side in self.kernel_size)
            and inputs.shape[-1] is not None and inputs.shape[-1] >= SPLIT_MIN_CHANNELS
        )


def convolve_in_halves(image, kernel, dilation_rate=(1, 1)):
    """A stride-1 "same" convolution of one NHWC ``image`` of even height with a
    (height, width, in, out) ``kernel`` of odd sides, run as a batch of its two halves."""
    height, width = tf.shape(image)[1], tf.shape(image)[2]
    reach_y, reach_x = (rate * (side - 1) // 2 for rate, side in zip(dilation_rate, kernel.shape[:2]))
    padded = tf.pad(image[0], [[reach_y, reach_y], [reach_x, reach_x], [0, 0]])
    half = height // 2
    halves = tf.stack([padded[: half + 2 * reach_y], padded[half:]])
    outputs = keras.ops.conv(halves, kernel, strides=1, padding="valid", dilation_rate=dilation_rate)
    return tf.reshape(outputs, [1, height, width, kernel.shape[-1]])
