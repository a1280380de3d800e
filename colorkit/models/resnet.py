"""ResNet-18 trunk + upsampling decoder ("Image Colorization with CNN", Bhatkande, CIS 490I/590K, 2023).

The report keeps the first six children of a torchvision ResNet-18 (stem
convolution with a one-channel input, BatchNorm, ReLU, max-pool, layer1,
layer2: 128 channels at 1/8 resolution) and adds the decoder of the PyTorch
colorization tutorial it follows: 3x3 convolutions 128->128, up x2, 128->64,
64->64, up x2, 64->32, 32->2, up x2, BatchNorm + ReLU after every convolution
but the last. 954,722 parameters in PyTorch's count (trunk 676,800: its
convolutions have no bias; decoder 277,922: its convolutions do); Keras adds
BatchNorm's running statistics as non-trainable weights.

Padding is PyTorch's: a stride-2 convolution or pooling pads ``k // 2`` on
every side, where Keras' "same" would pad only at the bottom and right. With
the same grid, a torchvision state dict loads and computes exactly.

Choices:
- ``upsample``: "nearest" (the tutorial's ``nn.Upsample``), "bilinear", or
  "transposed", a learned 4x4 stride-2 transposed convolution (the report
  calls its decoder "deconvolutional").
- ``output_activation``: "linear" (default, as the tutorial: an unbounded
  regression head, which MSE trains without saturation) or "tanh" (bounded to
  the [-1, 1] range of ab / 110, at the cost of vanishing gradients near it).
- ``trunk_weights``: a local file for the trunk, either ``.weights.h5`` saved
  from ``model.get_layer("resnet18_trunk").save_weights(...)`` or ``.npz`` with
  a torchvision ResNet-18 ``state_dict`` (``numpy.savez(path, **{k: v.numpy()
  for k, v in state_dict.items()})``; extra keys such as ``fc.*`` are ignored).
  Nothing is downloaded.
- ``fusion``: the global fusion layer (fusion.py) on the trunk's 1/8 map.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np
from keras import layers

from colorkit.errors import ColorkitError
from colorkit.models.blocks import AB_CHANNELS, WEIGHT_SEEDS, BilinearUpsample2x, batch_norm, channels, seed_weights
from colorkit.models.fusion import GLOBAL_UNITS, fusion_block
from colorkit.models.transposed import Conv2DTranspose

#: Stem /2, max-pool /2, layer2 /2: height and width must be multiples of 8.
REQUIRED_MULTIPLE = 8
UPSAMPLING = ("nearest", "bilinear", "transposed")
OUTPUT_ACTIVATIONS = ("linear", "tanh")
#: Name of the nested trunk model (for ``get_layer``, ``save_weights``, freezing).
TRUNK_NAME = "resnet18_trunk"
#: He-normal, the usual start for ReLU networks, drawn from the build's seed.
KERNEL_INIT = keras.initializers.HeNormal(seed=WEIGHT_SEEDS)


def build_resnet18_decoder(
    input_shape=(None, None, 1),
    width: float = 1.0,
    upsample: str = "nearest",
    output_activation: str = "linear",
    fusion: bool = False,
    trunk_weights=None,
    seed: int = 0,
    name: str = "resnet18_decoder",
) -> keras.Model:
    """The report's model: normalised L ("l") -> normalised ab ("ab"), same size.

    ``width`` scales every channel count (trunk weights only fit width 1)."""
    seed_weights(seed)
    trunk = resnet18_trunk(width)
    if trunk_weights is not None:
        load_trunk_weights(trunk, trunk_weights)

    l_input = keras.Input(input_shape, name="l")
    x = trunk(l_input)  # 1/8, 128 channels
    if fusion:
        x = fusion_block(x, units=channels(GLOBAL_UNITS * width), kernel_initializer=KERNEL_INIT)
    x = decoder_conv(x, 128 * width, "dec1")
    x = upsample_x2(x, upsample, "up1")  # 1/4
    x = decoder_conv(x, 64 * width, "dec2")
    x = decoder_conv(x, 64 * width, "dec3")
    x = upsample_x2(x, upsample, "up2")  # 1/2
    x = decoder_conv(x, 32 * width, "dec4")
    x = layers.Conv2D(AB_CHANNELS, 3, padding="same", kernel_initializer=KERNEL_INIT, name="dec5")(x)
    x = upsample_x2(x, upsample, "up3")  # full size
    ab = layers.Activation(output_activation, dtype="float32", name="ab")(x)
    return keras.Model(l_input, ab, name=name)


# --- The trunk: torchvision's resnet18 children 0-5, with its layer names ----------------


def resnet18_trunk(width: float) -> keras.Model:
    """conv1, bn1, relu, maxpool, layer1, layer2 as a nested model named ``TRUNK_NAME``.

    Layer names follow torchvision's state-dict keys with "." -> "_"
    (``layer2_0_downsample_0`` is ``layer2.0.downsample.0``)."""
    image = keras.Input((None, None, 1), name="l")
    x = torch_conv(image, 64 * width, 7, 2, "conv1")  # 1/2
    x = batch_norm("bn1")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)  # zeros are harmless after a ReLU
    x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)  # 1/4
    x = basic_block(x, 64 * width, 1, "layer1_0")
    x = basic_block(x, 64 * width, 1, "layer1_1")
    x = basic_block(x, 128 * width, 2, "layer2_0")  # 1/8
    x = basic_block(x, 128 * width, 1, "layer2_1")
    return keras.Model(image, x, name=TRUNK_NAME)


def basic_block(x, filters: float, strides: int, name: str):
    """ResNet's basic block: two 3x3 conv+BN, added to a shortcut, then ReLU.

    The shortcut is the input itself, or a strided 1x1 conv+BN when the block
    halves the resolution or changes the channel count."""
    filters = channels(filters)
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = torch_conv(x, filters, 1, strides, f"{name}_downsample_0")
        shortcut = batch_norm(f"{name}_downsample_1")(shortcut)
    y = torch_conv(x, filters, 3, strides, f"{name}_conv1")
    y = batch_norm(f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = torch_conv(y, filters, 3, 1, f"{name}_conv2")
    y = batch_norm(f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(y)


def torch_conv(x, filters: float, kernel_size: int, strides: int, name: str):
    """A bias-free convolution padded like PyTorch's ``padding=kernel_size // 2``."""
    if strides == 1:
        padding = "same"  # symmetric for odd kernels, as PyTorch
    else:
        padding = "valid"
        if kernel_size > 1:
            x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    return layers.Conv2D(
        channels(filters), kernel_size, strides=strides, padding=padding, use_bias=False,
        kernel_initializer=KERNEL_INIT, name=name,
    )(x)


# --- The decoder -------------------------------------------------------------------


def decoder_conv(x, filters: float, name: str):
    """3x3 conv (with bias, as the tutorial's ``nn.Conv2d``), BatchNorm, ReLU."""
    x = layers.Conv2D(channels(filters), 3, padding="same", kernel_initializer=KERNEL_INIT, name=name)(x)
    x = batch_norm(f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def upsample_x2(x, mode: str, name: str):
    """Double the resolution: a fixed interpolation, or a learned transposed convolution."""
    if mode == "transposed":
        return Conv2DTranspose(
            x.shape[-1], 4, strides=2, padding="same", kernel_initializer=KERNEL_INIT, name=name
        )(x)
    if mode == "bilinear":
        return BilinearUpsample2x(name=name)(x)
    return layers.UpSampling2D(name=name)(x)


# --- Trunk weights from a local file ----------------------------------------------------


def load_trunk_weights(trunk: keras.Model, path) -> None:
    """Fill ``trunk`` from a ``.weights.h5`` (Keras) or ``.npz`` (torchvision state dict) file."""
    path = Path(path)
    if not path.is_file():
        raise ColorkitError(
            f"trunk weights file {path} does not exist; nothing is downloaded: save a .weights.h5 from a "
            f"trained model's {TRUNK_NAME!r} layer or a torchvision ResNet-18 state_dict as .npz"
        )
    if path.name.endswith(".weights.h5"):
        try:
            with warnings.catch_warnings():  # Keras warns per layer before failing; the error says it all
                warnings.simplefilter("ignore")
                trunk.load_weights(path)
        except (ValueError, OSError) as error:
            raise ColorkitError(
                f"{path} does not fit this ResNet-18 trunk: it was saved from another width or architecture"
            ) from error
    elif path.suffix == ".npz":
        with np.load(path) as arrays:
            for layer in trunk.layers:
                if layer.weights:
                    layer.set_weights(_torchvision_arrays(layer, arrays, path))
    else:
        raise ColorkitError(f"trunk weights must be a .weights.h5 or .npz file, got {path.name}")


def _torchvision_arrays(layer, arrays, path) -> list:
    """The Keras weights of one trunk layer, read from torchvision's state-dict arrays."""
    key = layer.name.replace("_", ".")
    if isinstance(layer, layers.Conv2D):
        kernel = _array(arrays, f"{key}.weight", path).transpose(2, 3, 1, 0)  # (out, in, h, w) -> (h, w, in, out)
        if kernel.shape[2] == 3 and layer.kernel.shape[2] == 1:
            # An RGB stem on a grey image (R = G = B) responds like one kernel
            # that is the sum of the three: the tutorial's one-channel stem.
            kernel = kernel.sum(axis=2, keepdims=True)
        values = [kernel]
    else:  # BatchNormalization: gamma, beta, moving mean, moving variance
        suffixes = ("weight", "bias", "running_mean", "running_var")
        values = [_array(arrays, f"{key}.{suffix}", path) for suffix in suffixes]
    expected = [tuple(weight.shape) for weight in layer.weights]
    if [value.shape for value in values] != expected:
        raise ColorkitError(
            f"{path}: {key} has shapes {[value.shape for value in values]}, the trunk needs {expected} (width 1)"
        )
    return values


def _array(arrays, key: str, path):
    if key not in arrays:
        raise ColorkitError(
            f"{path} has no array {key!r}: expected a torchvision ResNet-18 state_dict saved with numpy.savez"
        )
    return arrays[key]
