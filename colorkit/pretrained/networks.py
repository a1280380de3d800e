"""Zhang et al.'s two released colorizers, rebuilt layer for layer in Keras.

``eccv16``: "Colorful Image Colorization" (Zhang, Isola, Efros, ECCV 2016),
automatic: L -> a distribution over 313 ab bins at 1/4 resolution -> one ab.
``siggraph17``: "Real-Time User-Guided Image Colorization with Learned Deep
Priors" (Zhang, Zhu, Isola et al., SIGGRAPH 2017): L plus local hints (an ab
map and a mask) -> ab at full resolution, through a U-Net-like decoder.

The PyTorch release (richzhang/colorization, on PyPI as ``rz-colorization``)
builds each network from numbered ``nn.Sequential`` blocks, and its weight
files name every tensor after its module: ``model1.0.weight`` is the first
conv of block 1, ``model1.4.running_mean`` the BatchNorm that ends it. Every
Keras layer here carries its module's name ("model1.0", "model1.1" the ReLU,
"model1.4" the BatchNorm), so ``model.summary()`` lists the release's
structure and ``weights.py`` finds each tensor by name. Layers the release
does not have are named for what they do ("release_l", "model1.2.pad",
"subsample1", "conv8_up"); the output layer is "ab" as in every kit model.

Where PyTorch and Keras differ, the layers say so:

* Padding: a stride-2 3x3 conv in PyTorch pads one pixel on every side, Keras
  "same" pads 0 before and 1 after on an even side; those convs get an
  explicit ``ZeroPadding2D`` and "valid". Stride-1 convs (dilated or not) pad
  the same in both, and the 4x4 stride-2 transposed conv with padding 1
  crops one pixel from each side of its 2H + 2 output, as Keras "same" does.
* BatchNorm: PyTorch's epsilon 1e-5 (Keras' default is 1e-3), momentum 0.1
  (0.9 in Keras' convention).
* ``nn.Upsample(scale_factor=4, mode="bilinear")`` (align_corners=False) is
  ``tf.image.resize``'s bilinear (half-pixel centres): the kit's
  ``BilinearUpsample4x``, which (unlike ``UpSampling2D``) also traces with
  unknown height and width, as an exported model needs.
* SIGGRAPH17's ``x[:, :, ::2, ::2]`` keeps every other row and column:
  ``MaxPooling2D(pool_size=1, strides=2)`` does exactly that.

Inputs and outputs follow the kit (``colorkit.color``): "l" is L/50 - 1,
"ab" is ab/110, and SIGGRAPH17 takes ``colorkit.hints``' "hint_ab" (ab/110,
zero off the hints) and "hint_mask" (1 on a hint). The release was trained on
(L - 50)/100, ab/110 and mask - 0.5, and the first layers convert to those.
(Called without a mask, the reference's ``forward`` feeds mask 0, which in
training meant "half a hint everywhere"; the kit's empty mask is -0.5, "no hint".)
Sides must be multiples of 8 (three halvings); the release works at 256 x 256.
"""

from __future__ import annotations

import keras
from keras import layers

from colorkit import quantize
from colorkit.errors import ColorkitError
from colorkit.hints import HINT_AB, HINT_MASK
from colorkit.models.blocks import BilinearUpsample4x

#: model1..model7 of both networks: (channels, 3x3 convs, dilation). Each block is
#: conv-ReLU pairs and a BatchNorm; blocks 1-3 end by halving the resolution.
ENCODER = ((64, 2, 1), (128, 2, 1), (256, 3, 1), (512, 3, 1), (512, 3, 2), (512, 3, 2), (512, 3, 1))
HALVINGS = 3
#: ECCV16's classifier: 313 ab bins, each decoded to its centre by the 1x1 layer "model_out".
ECCV16_BINS = 313
#: PyTorch's BatchNorm2d defaults.
BN_EPSILON, BN_MOMENTUM = 1e-5, 0.9
#: The release's own input normalisation, relative to the kit's: (L - 50) / 100 = l / 2, mask - 0.5.
RELEASE_L_SCALE, RELEASE_MASK_OFFSET = 0.5, -0.5
#: SIGGRAPH17's classification branch (529 classes from conv8_3): in the released file,
#: unused by the released forward pass (which returns the regression output), so not built.
SIGGRAPH17_UNUSED = {"model_class.0.weight": (529, 256, 1, 1), "model_class.0.bias": (529,)}


# --- The release's modules, one function each: (x, name) -> x ---------------------------------------


def _conv(filters: int, kernel: int = 3, stride: int = 1, dilation: int = 1, bias: bool = True):
    """``nn.Conv2d`` with padding (kernel // 2) * dilation."""

    def apply(x, name):
        padding = "same"
        if stride > 1:  # PyTorch pads both sides; Keras "same" would pad only after
            x = layers.ZeroPadding2D(kernel // 2, name=f"{name}.pad")(x)
            padding = "valid"
        return layers.Conv2D(filters, kernel, strides=stride, dilation_rate=dilation, padding=padding,
                             use_bias=bias, name=name)(x)

    return apply


def _up(filters: int):
    """``nn.ConvTranspose2d(kernel_size=4, stride=2, padding=1)``: exactly twice the size."""
    return lambda x, name: layers.Conv2DTranspose(filters, 4, strides=2, padding="same", name=name)(x)


def _relu(x, name):
    return layers.ReLU(name=name)(x)


def _batch_norm(x, name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _sequential(x, prefix: str, modules):
    """An ``nn.Sequential``: module ``i`` becomes the layer named ``prefix.i``."""
    for index, module in enumerate(modules):
        x = module(x, f"{prefix}.{index}")
    return x


def _encoder_block(filters: int, convs: int, dilation: int, last_stride: int = 1) -> list:
    """conv, ReLU, ..., conv, ReLU, BatchNorm (after the ReLU, Zhang's order)."""
    modules = []
    for index in range(convs):
        stride = last_stride if index == convs - 1 else 1
        modules += [_conv(filters, stride=stride, dilation=dilation), _relu]
    return modules + [_batch_norm]


# --- ECCV16 -----------------------------------------------------------------------------------------


def eccv16(annealed_mean: bool = False, temperature: float = quantize.DEFAULT_TEMPERATURE,
           name: str = "eccv16") -> keras.Model:
    """The released ECCV16 network: "l" (L/50 - 1) -> "ab" (ab/110), same size.

    model1-model7 halve the resolution three times (the last conv of blocks 1-3
    has stride 2); model8 doubles it once and ends in 313 logits per pixel at
    1/4 size. A softmax makes them a distribution, and "model_out", a 1x1 conv
    without bias whose kernel holds the 313 bin centres (ab/110), takes its
    expectation; the ab map is upsampled x4. That plain expectation is how
    the release decodes. ``annealed_mean=True`` decodes as the paper does:
    the logits are divided by ``temperature`` first, i.e. softmax(log z / T),
    which sharpens each distribution towards its mode (T = 0.38 in the paper)."""
    if annealed_mean and not temperature > 0:
        raise ColorkitError(f"the annealed-mean temperature must be a positive number, got {temperature!r}")
    l_input = keras.Input((None, None, 1), name="l")
    x = layers.Rescaling(RELEASE_L_SCALE, name="release_l")(l_input)
    for index, (filters, convs, dilation) in enumerate(ENCODER, start=1):
        stride = 2 if index <= HALVINGS else 1
        x = _sequential(x, f"model{index}", _encoder_block(filters, convs, dilation, stride))
    logits = _sequential(x, "model8", [_up(256), _relu, _conv(256), _relu, _conv(256), _relu,
                                       _conv(ECCV16_BINS, kernel=1)])
    if annealed_mean:
        logits = layers.Rescaling(1.0 / temperature, name="annealing")(logits)
    probabilities = layers.Softmax(name="softmax")(logits)
    ab_quarter = _conv(2, kernel=1, bias=False)(probabilities, "model_out")
    ab = BilinearUpsample4x(name="ab")(ab_quarter)  # the release's upsample4
    return keras.Model(l_input, ab, name=name)


def bin_centres(model: keras.Model):
    """The [313, 2] ab bin centres (Lab units) an ECCV16 model decodes with: its
    "model_out" kernel, times 110. Loaded from the release, they are the authors' bins."""
    kernel = keras.ops.convert_to_numpy(model.get_layer("model_out").kernel)
    return kernel[0, 0] * 110.0


# --- SIGGRAPH17 -------------------------------------------------------------------------------------


def siggraph17(name: str = "siggraph17") -> keras.Model:
    """The released SIGGRAPH17 network: "l", "hint_ab", "hint_mask" -> "ab" (ab/110), same size.

    The three inputs (kit conventions, see the module docstring) are brought to
    the release's and concatenated (4 channels). model1-model7 are ECCV16's
    blocks at full stride, the resolution halved after blocks 1-3 by keeping
    every other pixel. The decoder doubles the size three times (model8up,
    model9up, model10up), each time adding a 3x3 conv of the encoder's map of
    that size (model3short8, model2short9, model1short10), and "model_out"
    gives 2 channels through tanh. The classification branch is not built
    (``SIGGRAPH17_UNUSED``)."""
    l_input = keras.Input((None, None, 1), name="l")
    hint_ab = keras.Input((None, None, 2), name=HINT_AB)
    hint_mask = keras.Input((None, None, 1), name=HINT_MASK)
    release_l = layers.Rescaling(RELEASE_L_SCALE, name="release_l")(l_input)
    release_mask = layers.Rescaling(1.0, offset=RELEASE_MASK_OFFSET, name="release_mask")(hint_mask)
    x = layers.Concatenate(name="release_input")([release_l, hint_ab, release_mask])

    features = []  # conv1_2, conv2_2, conv3_3, ... in the release's names
    for index, (filters, convs, dilation) in enumerate(ENCODER, start=1):
        if 1 < index <= HALVINGS + 1:
            x = layers.MaxPooling2D(pool_size=1, strides=2, name=f"subsample{index - 1}")(x)  # x[:, :, ::2, ::2]
        x = _sequential(x, f"model{index}", _encoder_block(filters, convs, dilation))
        features.append(x)
    conv1_2, conv2_2, conv3_3 = features[:3]

    def up_and_shortcut(x, level, filters, shortcut, shortcut_level):
        doubled = _sequential(x, f"model{level}up", [_up(filters)])
        across = _sequential(shortcut, f"model{shortcut_level}short{level}", [_conv(filters)])
        return layers.Add(name=f"conv{level}_up")([doubled, across])

    x = up_and_shortcut(x, 8, 256, conv3_3, 3)
    x = _sequential(x, "model8", [_relu, _conv(256), _relu, _conv(256), _relu, _batch_norm])
    x = up_and_shortcut(x, 9, 128, conv2_2, 2)
    x = _sequential(x, "model9", [_relu, _conv(128), _relu, _batch_norm])
    x = up_and_shortcut(x, 10, 128, conv1_2, 1)
    x = _sequential(x, "model10", [_relu, _conv(128), lambda x, name: layers.LeakyReLU(0.2, name=name)(x)])
    x = _conv(2, kernel=1)(x, "model_out.0")
    ab = layers.Activation("tanh", name="ab")(x)  # the release's model_out.1
    return keras.Model([l_input, hint_ab, hint_mask], ab, name=name)
