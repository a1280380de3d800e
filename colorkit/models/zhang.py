"""Zhang, Isola and Efros, "Colorful Image Colorization" (ECCV 2016): the classification network.

The network sees normalised L and predicts, for every pixel of a map at 1/4 of
the input's resolution, logits over the Q ab bins of ``colorkit.quantize``.
Eight blocks of 3x3 convolutions, each conv followed by a ReLU:

    block  convs  channels  resolution  notes
    conv1    2       64       1/2       the second conv has stride 2
    conv2    2      128       1/4       the second conv has stride 2
    conv3    3      256       1/8       the third conv has stride 2
    conv4    3      512       1/8
    conv5    3      512       1/8       dilation 2 (a wider view without downsampling)
    conv6    3      512       1/8       dilation 2
    conv7    3      512       1/8
    conv8    3      256       1/4       first a 4x4 stride-2 transposed conv, then two 3x3 convs

Blocks 1-7 end with BatchNorm *after* the last ReLU (Zhang's order, not the
more common conv-BN-ReLU); conv8 has none. A 1x1 convolution gives the Q
logits. The three stride-2 convs make the input's sides multiples of 8.
At width 1 with Q = 353 this has 32,245,665 learned parameters (with Zhang's
313 bins: 32,235,385); ``width`` scales every hidden channel count for CPU runs.

Training compares the logits with soft-encoded targets at 1/4 resolution
(``colorkit.losses.RebalancedCrossEntropy``). To colour an image,
``zhang_inference_model`` appends ``AnnealedMeanDecode``: the annealed mean
(temperature 0.38) turns each pixel's distribution into one ab, which is
normalised and upsampled x4 (bilinear) to the input's size.

``head="regression"`` is the "L2" row of Zhang et al.'s Table 1: the same
network with the 1x1 classifier replaced by a 1x1 convolution to the 2
channels of ``ab / 110`` (tanh) at 1/4 resolution, upsampled x4 exactly as the
decode above does, so it outputs "ab" at the input's size and trains with
MSE like any regression model. With the same seed both heads start from the
same conv1-conv8 weights.

Weights start He-normal (the usual choice for ReLU stacks); conv biases are
kept, as in Zhang's released model.
"""

from __future__ import annotations

import keras
from keras import layers

from colorkit import color, quantize
from colorkit.checks import check_real
from colorkit.errors import ColorkitError
from colorkit.models.blocks import (
    AB_CHANNELS, WEIGHT_SEEDS, BilinearUpsample4x, batch_norm, channels, resize_by, seed_weights,
)
from colorkit.models.conv import Conv2D
from colorkit.models.transposed import Conv2DTranspose

#: Three stride-2 convolutions: height and width must be multiples of 2**3.
REQUIRED_MULTIPLE = 8
#: The logits come out at 1/4 of the input's resolution.
HEAD_STRIDE = 4
#: "classification": Q bin logits (Zhang's model); "regression": ab / 110 (the L2 row of Zhang's Table 1).
HEADS = ("classification", "regression")
KERNEL_INIT = keras.initializers.HeNormal(seed=WEIGHT_SEEDS)


def build_zhang_eccv16(
    input_shape=(None, None, 1),
    width: float = 1.0,
    num_bins: int | None = None,
    seed: int = 0,
    name: str = "zhang_eccv16",
    head: str = "classification",
) -> keras.Model:
    """Zhang et al.'s network: normalised L ("l") -> bin logits ("bin_logits") at 1/4 resolution.

    ``num_bins``: Q, the number of ab bins (default: colorkit's set,
    ``len(quantize.ab_bins())``); ``width`` multiplies every hidden channel
    count; ``seed`` fixes the initial weights. ``head="regression"`` outputs
    normalised ab ("ab", tanh) at the input's resolution instead of logits
    (see the module docstring); it takes no ``num_bins``."""
    seed_weights(seed)

    def conv(x, filters, label, strides=1, dilation=1):
        return Conv2D(
            channels(filters * width), 3, strides=strides, dilation_rate=dilation, padding="same",
            activation="relu", kernel_initializer=KERNEL_INIT, name=label,
        )(x)

    def block(x, filters, convs, label, last_stride=1, dilation=1):
        """``convs`` 3x3 convolutions, the last with ``last_stride``, then BatchNorm after the ReLU."""
        for index in range(1, convs):
            x = conv(x, filters, f"{label}_{index}", dilation=dilation)
        x = conv(x, filters, f"{label}_{convs}", strides=last_stride, dilation=dilation)
        return batch_norm(f"{label}_norm")(x)  # after the ReLU, as Zhang et al.

    l_input = keras.Input(input_shape, name="l")
    x = block(l_input, 64, 2, "conv1", last_stride=2)  # 1/2
    x = block(x, 128, 2, "conv2", last_stride=2)  # 1/4
    x = block(x, 256, 3, "conv3", last_stride=2)  # 1/8
    x = block(x, 512, 3, "conv4")
    x = block(x, 512, 3, "conv5", dilation=2)
    x = block(x, 512, 3, "conv6", dilation=2)
    x = block(x, 512, 3, "conv7")
    x = Conv2DTranspose(
        channels(256 * width), 4, strides=2, padding="same", activation="relu", kernel_initializer=KERNEL_INIT,
        name="conv8_1",
    )(x)  # 1/4
    x = conv(x, 256, "conv8_2")
    x = conv(x, 256, "conv8_3")
    if head == "regression":
        ab_quarter = layers.Conv2D(
            AB_CHANNELS, 1, activation="tanh", kernel_initializer=KERNEL_INIT, name="ab_quarter", dtype="float32",
        )(x)
        return keras.Model(l_input, BilinearUpsample4x(name="ab")(ab_quarter), name=name)
    # float32 logits even under a mixed-precision policy: the loss and the decode stay exact.
    num_bins = len(quantize.ab_bins()) if num_bins is None else num_bins
    logits = layers.Conv2D(num_bins, 1, kernel_initializer=KERNEL_INIT, name="bin_logits", dtype="float32")(x)
    return keras.Model(l_input, logits, name=name)


@keras.saving.register_keras_serializable(package="colorkit")
class AnnealedMeanDecode(keras.layers.Layer):
    """Bin logits at 1/4 resolution -> normalised ab (ab / 110) at full resolution.

    Each pixel's distribution is turned into one colour with the annealed mean
    (``quantize.annealed_mean``: temperature 1 is the mean, towards 0 the mode),
    then the ab map is upsampled x4 with bilinear interpolation. The bins are
    stored in the layer's config, so a saved model decodes with the bins it was
    trained on even if colorkit's default set changes."""

    def __init__(self, temperature: float = quantize.DEFAULT_TEMPERATURE, bins=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.temperature = check_real(temperature, "the annealed-mean temperature", low=0, low_open=True)
        self.bins = quantize.ab_bins() if bins is None else quantize.check_bins(bins)

    def call(self, logits):
        ab = quantize.annealed_mean(logits, self.bins, self.temperature)
        return resize_by(color.normalize_ab(ab), HEAD_STRIDE)

    def compute_output_shape(self, input_shape):
        batch, height, width = input_shape[:3]
        return (batch, *(None if side is None else side * HEAD_STRIDE for side in (height, width)), AB_CHANNELS)

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature, bins=self.bins.tolist())
        return config


def zhang_inference_model(
    model: keras.Model, temperature: float = quantize.DEFAULT_TEMPERATURE, bins=None
) -> keras.Model:
    """``model`` (L -> bin logits) followed by ``AnnealedMeanDecode``: L -> normalised ab at full resolution.

    The new model shares ``model``'s layers and weights. ``bins`` must be the set
    the model was trained with (default: colorkit's)."""
    if model.outputs[0].shape[-1] == AB_CHANNELS:
        raise ColorkitError(f"{model.name} already predicts ab (a regression head): it needs no annealed-mean decode")
    decode = AnnealedMeanDecode(temperature, bins, name="ab")
    num_bins = model.outputs[0].shape[-1]
    if num_bins != len(decode.bins):
        raise ColorkitError(
            f"{model.name} predicts {num_bins} classes but {len(decode.bins)} bins were given; "
            "decode with the bins the model was trained on"
        )
    # ``model.input``: a single-input model keeps taking a bare tensor (``model.inputs`` would make it a list of one)
    return keras.Model(model.input, decode(model.outputs[0]), name=f"{model.name}_decoded")
