"""The strided CNN of "Colorization" (Huang, Deng, Feng; CS520, Rutgers, 2018).

Layer for layer as the report lists it: twelve 3x3 convolutions with "same"
padding and ReLU, where three stride-2 convolutions halve the image (the report
prefers them to max-pooling) and three 2x nearest-neighbour upsamplings bring
it back. At width 1 and a one-channel input it has exactly 6,146,194
parameters. Keras' default Glorot-uniform initialisation, as the report's
Keras code used.

The output: the report puts a ReLU on the two ab channels, so its network can
never predict a negative a (green) or b (blue). ``output_activation="relu"``
keeps that choice for the notebook's comparison; the default is tanh, which
matches the regression target ab / 110 in [-1, 1].
"""

from __future__ import annotations

import keras
from keras import layers

from colorkit.models.blocks import AB_CHANNELS, WEIGHT_SEEDS, channels, seed_weights
from colorkit.models.inputs import hint_inputs

#: Three stride-2 convolutions: height and width must be multiples of 2**3.
REQUIRED_MULTIPLE = 8
#: "tanh" (default) predicts ab / 110 in [-1, 1]; "relu" is the report's; "linear" is unbounded.
OUTPUT_ACTIVATIONS = ("tanh", "relu", "linear")

#: Initialisations, drawn from the build's seed: "glorot" is Keras' default, as the report's code
#: had; "he" (He et al. 2015) keeps the signal's scale through twelve ReLU layers, where Glorot's
#: halves its variance at each, so the first steps' gradients barely reach the early layers.
KERNEL_INITS = {"glorot": keras.initializers.GlorotUniform(seed=WEIGHT_SEEDS),
                "he": keras.initializers.HeUniform(seed=WEIGHT_SEEDS)}


def build_strided_cnn(
    input_shape=(None, None, 1),
    width: float = 1.0,
    output_activation: str = "tanh",
    init: str = "glorot",
    hints: bool = False,
    seed: int = 0,
    name: str = "strided_cnn",
) -> keras.Model:
    """The report's network: normalised L ("l") -> normalised ab ("ab"), same size.

    ``width`` multiplies every hidden channel count (0.25 trains on a laptop CPU);
    ``init``: "glorot" (the report's) or "he", the initial weights' distribution;
    ``hints`` makes it user-guided (local hints as extra input channels, see
    models/inputs.py); ``seed`` fixes the initial weights."""
    seed_weights(seed)

    def conv(x, filters, label, strides=1):
        return layers.Conv2D(
            channels(filters * width), 3, strides=strides, padding="same", activation="relu",
            kernel_initializer=KERNEL_INITS[init], name=label,
        )(x)

    if hints:
        inputs, x = hint_inputs(input_shape)
    else:
        inputs = x = keras.Input(input_shape, name="l")
    x = conv(x, 128, "conv1")
    x = conv(x, 128, "conv2", strides=2)  # 1/2
    x = conv(x, 256, "conv3")
    x = conv(x, 256, "conv4", strides=2)  # 1/4
    x = conv(x, 512, "conv5")
    x = conv(x, 512, "conv6", strides=2)  # 1/8
    x = conv(x, 256, "conv7")
    x = conv(x, 128, "conv8")
    x = conv(x, 64, "conv9")
    x = layers.UpSampling2D(name="up1")(x)  # 1/4
    x = conv(x, 32, "conv10")
    x = layers.UpSampling2D(name="up2")(x)  # 1/2
    x = conv(x, 16, "conv11")
    x = layers.Conv2D(
        AB_CHANNELS, 3, padding="same", activation=output_activation, kernel_initializer=KERNEL_INITS[init],
        name="conv_ab",
    )(x)
    # float32 output even under a mixed-precision policy: losses and metrics stay exact.
    ab = layers.UpSampling2D(name="ab", dtype="float32")(x)  # full size
    return keras.Model(inputs, ab, name=name)
