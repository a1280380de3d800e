"""The 4x4 stride-2 transposed convolution every upsampling family uses, computed fast on small maps.

This module's ``Conv2DTranspose`` is ``keras.layers.Conv2DTranspose``: the same
arguments, configuration, weights (the kernel in its (4, 4, out, in) layout) and
outputs. Only how the 4x4, stride 2, "same" case is computed differs. It keeps the
class name too, because Keras files address each layer's weights by its class
name: ``.keras`` and ``.weights.h5`` files saved with the plain layer load into
models built with this one and the other way round, and a run's fingerprint
(``colorkit.runs``) stays what it was.

Why: TensorFlow's CPU kernel for a transposed convolution is slow on maps with
few positions and many channels (a U-Net's innermost levels: 1x1 to 4x4 maps of
512-1024 channels), and its gradient slower still; one matrix product does the
same sums in a fraction of the time there. On larger maps the kernel is the
faster, so it is kept (``MATMUL_MAX_POSITIONS``; bench item 4c times both).

The matrix form. Each input pixel spreads its channels over a 4x4 patch of the
output: tap (ky, kx) of pixel (y, x) lands on output (2y + ky - 1, 2x + kx - 1).
One product, inputs (pixels, in) times the kernel read as (16 * out, in),
gives every pixel's 16 taps at once. Patches of neighbouring pixels overlap by
two rows and columns; split into its four 2x2 quarters (ky, kx in {0, 1} or
{2, 3}), each patch tiles the output without overlap, one output-sized image
per quarter, and the four images, each shifted by one pixel its own way, sum
to the result.
"""

from __future__ import annotations

import keras
import tensorflow as tf

#: The matrix form runs when batch x height x width of the input is at most this
#: (a 16x16 map in one image, 4x4 in a batch of 16); TensorFlow's kernel otherwise.
MATMUL_MAX_POSITIONS = 256


@keras.saving.register_keras_serializable(package="colorkit")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose``, computed as one matrix product on small maps
    when it is the 4x4, stride 2, "same" kind (see the module docstring); any other
    configuration runs exactly as the parent's. Takes the parent's arguments."""

    def call(self, inputs):
        if not self._matmul_form_applies():
            return super().call(inputs)
        positions = tf.reduce_prod(tf.shape(inputs)[:3])
        outputs = tf.cond(
            positions <= MATMUL_MAX_POSITIONS,
            lambda: conv_transpose_4x4_by_matmul(inputs, self.kernel),
            lambda: keras.ops.conv_transpose(inputs, self.kernel, strides=2, padding="same"),
        )
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs if self.activation is None else self.activation(outputs)

    def _matmul_form_applies(self) -> bool:
        return (
            self.kernel_size == (4, 4) and self.strides == (2, 2) and self.padding == "same"
            and self.dilation_rate == (1, 1) and self.output_padding is None
            and self.data_format == "channels_last"
        )


def conv_transpose_4x4_by_matmul(inputs, kernel):
    """What ``keras.ops.conv_transpose(inputs, kernel, strides=2, padding="same")`` computes
    for a (4, 4, out, in) ``kernel`` and NHWC ``inputs`` of any size, by one matrix product
    and four shifted sums (see the module docstring)."""
    shape = tf.shape(inputs)
    batch, height, width = shape[0], shape[1], shape[2]
    outputs, channels = kernel.shape[2], kernel.shape[3]
    # Every pixel's 16 taps: (pixels, in) x (in, 16 * out); the kernel's layout already is (16 * out, in).
    taps = tf.matmul(tf.reshape(inputs, [-1, channels]), tf.reshape(kernel, [16 * outputs, channels]),
                     transpose_b=True)
    # ky = 2 * qy + ty and kx = 2 * qx + tx: quarter (qy, qx) first, then each pixel's 2x2 block of it.
    taps = tf.reshape(taps, [batch, height, width, 2, 2, 2, 2, outputs])  # (.., qy, ty, qx, tx, out)
    quarters = tf.transpose(taps, [3, 5, 0, 1, 4, 2, 6, 7])  # (qy, qx, batch, y, ty, x, tx, out)
    quarters = tf.reshape(quarters, [4, batch, 2 * height, 2 * width, outputs])
    # Quarter (qy, qx) lands 2 * qy - 1 rows and 2 * qx - 1 columns away from the pixel's
    # own 2x2 block: placed on a canvas one pixel wider on every side, then cut back.
    placed = [
        tf.pad(quarter, [[0, 0], [2 * qy, 2 - 2 * qy], [2 * qx, 2 - 2 * qx], [0, 0]])
        for quarter, (qy, qx) in zip(tf.unstack(quarters, num=4), ((0, 0), (0, 1), (1, 0), (1, 1)))
    ]
    return tf.add_n(placed)[:, 1:-1, 1:-1, :]

