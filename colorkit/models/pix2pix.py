"""The conditional GAN's two networks (Gunnam et al., IJFANS 2022, after pix2pix, Isola et al. 2017).

Generator: the pix2pix U-Net-256. Eight 4x4 stride-2 convolutions take a 256
image down to 1x1 (C64-C128-C256-C512-C512-C512-C512-C512, BatchNorm on all
but the first, LeakyReLU 0.2); a mirrored decoder of 4x4 stride-2 transposed
convolutions (BatchNorm, ReLU) comes back up, concatenating at each
resolution the encoder's feature map of that resolution (the skip
connections that carry edges to the output). Dropout 0.5 in the three
innermost decoder blocks is the generator's only noise: pix2pix found an
explicit noise input was ignored. A tanh gives ab / 110. Weights are drawn
from N(0, 0.02) (BatchNorm scales from N(1, 0.02)), as pix2pix initialises.
1-channel L in, 2-channel ab out: 54,410,882 parameters at full depth and width.

Convolutions followed by BatchNorm carry no bias (BatchNorm's shift replaces it);
the U-Net's down convolutions have none at all, as in pix2pix's PyTorch code.
The block order (conv, BatchNorm, activation; BatchNorm also on the 1x1
bottleneck) is the TensorFlow pix2pix tutorial's; the PyTorch code the GAN
report follows activates before each convolution and leaves the bottleneck
unnormalised, which has the same parameter count. At the 1x1 bottleneck a
training batch of one image gives BatchNorm a single value per channel (its
output is then just its shift): train with batches of several images, as the
report's code does.

Depth: a U-Net of depth d halves the image d times, so its sides must be
multiples of 2**d. By default the depth adapts to the input size: as deep as
the sides halve evenly, at most 8 and at least 3 (three levels carry the
dropout noise), so 256 gives the report's 8 levels and 64 gives 6 for CPU runs.
A model built for an unknown size (None) gets depth 8. ``depth=`` overrides.

Discriminator: the 70x70 PatchGAN. L and ab arrive as two named inputs and are
concatenated; C64 (no BatchNorm), C128, C256 with stride 2, C512 with stride 1,
then a 1-channel 4x4 convolution: one real/fake logit per 70x70 patch, 30x30 of
them for a 256 image, 2,765,633 parameters. Its first convolution keeps a bias
(no BatchNorm follows it), as in the PyTorch code.
"""

from __future__ import annotations

import keras
from keras import layers

from colorkit.errors import ColorkitError
from colorkit.models.blocks import (
    AB_CHANNELS, Seeds, batch_norm, check_hint_options, check_input_shape, check_width, scaled,
)
from colorkit.models.fusion import GLOBAL_UNITS, fusion_block
from colorkit.models.hints import GLOBAL_HINT_UNITS, hint_inputs, join_global_hint

#: Encoder filters per level at width 1; a depth-d U-Net uses the first d.
ENCODER_FILTERS = (64, 128, 256, 512, 512, 512, 512, 512)
MAX_DEPTH = len(ENCODER_FILTERS)
#: The innermost decoder blocks that apply dropout (the generator's noise).
DROPOUT_BLOCKS = 3
MIN_DEPTH = DROPOUT_BLOCKS
DROPOUT_RATE = 0.5
#: With ``fusion=True`` the global feature joins the encoder's 1/8 map (Iizuka et al.'s mid level).
FUSION_LEVEL = 3
#: PatchGAN: stride-2 blocks before the stride-1 block; 3 gives the 70x70 patch.
PATCHGAN_DEPTH = 3
PATCHGAN_BASE_FILTERS = 64
PATCHGAN_MAX_FILTERS = 512
LEAKY_SLOPE = 0.2


def _weight_initializers(seed: int):
    """pix2pix's initialisation: conv kernels ~ N(0, 0.02), BatchNorm scales ~ N(1, 0.02)."""
    seeds = Seeds(seed)
    kernel_init = seeds.initializers("random_normal", mean=0.0, stddev=0.02)
    gamma_init = seeds.initializers("random_normal", mean=1.0, stddev=0.02)
    return seeds, kernel_init, gamma_init


def down_block(x, filters: int, *, strides: int, normalize: bool, use_bias: bool, kernel_init, gamma_init, name: str):
    """4x4 convolution, BatchNorm (optional), LeakyReLU 0.2: the "Ck" block of pix2pix.

    Padding is PyTorch's one pixel per side. Keras' "same" pads exactly that
    for stride 2 on even sizes; at stride 1 it would pad 1 + 2 for an even
    kernel, so stride 1 pads explicitly and the map shrinks by one."""
    padding = "same"
    if strides == 1:
        x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        padding = "valid"
    x = layers.Conv2D(
        filters, 4, strides=strides, padding=padding, use_bias=use_bias, kernel_initializer=kernel_init(),
        name=f"{name}_conv",
    )(x)
    if normalize:
        x = batch_norm(f"{name}_bn", gamma_initializer=gamma_init())(x)
    return layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_act")(x)


# --- U-Net generator ----------------------------------------------------------------------


def unet_required_multiple(depth=None) -> int:
    """The sides ``build("unet_generator", depth=depth)`` accepts are multiples of this.

    With the automatic depth any multiple of 2**MIN_DEPTH works: the depth then
    follows the size (see ``unet_depth``)."""
    return 2 ** (MIN_DEPTH if depth is None else _checked_depth(depth))


def unet_depth(input_shape, depth=None) -> int:
    """``depth`` if given, else as many levels as both sides halve evenly (MIN_DEPTH..MAX_DEPTH)."""
    if depth is not None:
        return _checked_depth(depth)
    sides = [side for side in tuple(input_shape)[:2] if side is not None]
    depth = MAX_DEPTH if not sides else MIN_DEPTH
    while depth < MAX_DEPTH and sides and all(side % 2 ** (depth + 1) == 0 for side in sides):
        depth += 1
    return depth


def _checked_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or not MIN_DEPTH <= depth <= MAX_DEPTH:
        raise ColorkitError(f"unet_generator: depth must be an integer from {MIN_DEPTH} to {MAX_DEPTH}, got {depth!r}")
    return depth


def build_unet_generator(
    input_shape=(None, None, 1),
    depth=None,
    width: float = 1.0,
    fusion: bool = False,
    hints: bool = False,
    global_hints: bool = False,
    num_bins: int | None = None,
    seed: int = 0,
    name: str = "unet_generator",
) -> keras.Model:
    """The U-Net generator: normalised L ("l") -> normalised ab ("ab"), same size.

    ``depth``: number of stride-2 levels (None: from the input size, see the
    module notes); ``width`` scales every channel count; ``fusion`` adds the
    global fusion layer (fusion.py) on the encoder's 1/8 map. ``hints`` makes it
    user-guided (models/hints.py: inputs "l", "hint_ab", "hint_mask");
    ``global_hints`` adds the "hint_hist" input over ``num_bins`` ab bins
    (default: colorkit's bin set), fused at the same 1/8 level."""
    check_input_shape(input_shape, unet_required_multiple(depth), name)
    depth = unet_depth(input_shape, depth)
    width = check_width(width, name)
    num_bins = check_hint_options(hints, global_hints, num_bins, name)
    seeds, kernel_init, gamma_init = _weight_initializers(seed)
    filters = [scaled(count, width) for count in ENCODER_FILTERS[:depth]]

    if hints:
        inputs, x = hint_inputs(input_shape, global_hints, num_bins)
    else:
        inputs = x = keras.Input(input_shape, name="l")
    skips = []
    for level in range(1, depth + 1):  # level k works at 1/2**k of the input size
        x = down_block(
            x, filters[level - 1], strides=2, normalize=level > 1, use_bias=False,
            kernel_init=kernel_init, gamma_init=gamma_init, name=f"down{level}",
        )
        if fusion and level == FUSION_LEVEL:
            x = fusion_block(x, units=scaled(GLOBAL_UNITS, width), kernel_init=kernel_init)
        if global_hints and level == FUSION_LEVEL:
            x = join_global_hint(x, inputs[-1], units=scaled(GLOBAL_HINT_UNITS, width), kernel_init=kernel_init)
        skips.append(x)
    for level in range(depth - 1, 0, -1):  # back up to 1/2, joining the encoder map of each size
        x = up_block(
            x, filters[level - 1], dropout=depth - level <= DROPOUT_BLOCKS, seeds=seeds,
            kernel_init=kernel_init, gamma_init=gamma_init, name=f"up{level}",
        )
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level - 1]])
    x = layers.Conv2DTranspose(
        AB_CHANNELS, 4, strides=2, padding="same", kernel_initializer=kernel_init(), name="up0_conv"
    )(x)
    ab = layers.Activation("tanh", dtype="float32", name="ab")(x)
    return keras.Model(inputs, ab, name=name)


def up_block(x, filters: int, *, dropout: bool, seeds: Seeds, kernel_init, gamma_init, name: str):
    """4x4 stride-2 transposed convolution, BatchNorm, dropout 0.5 (optional), ReLU."""
    x = layers.Conv2DTranspose(
        filters, 4, strides=2, padding="same", use_bias=False, kernel_initializer=kernel_init(),
        name=f"{name}_conv",
    )(x)
    x = batch_norm(f"{name}_bn", gamma_initializer=gamma_init())(x)
    if dropout:
        x = layers.Dropout(DROPOUT_RATE, seed=seeds.next(), name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_act")(x)


# --- PatchGAN discriminator -----------------------------------------------------------------


def patchgan_required_multiple(depth: int = PATCHGAN_DEPTH) -> int:
    """Sides must be multiples of 2**depth (so "same" padding matches PyTorch's)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 6:
        raise ColorkitError(f"patchgan: depth must be an integer from 1 to 6, got {depth!r}")
    return 2**depth


def build_patchgan(
    input_shape=(None, None, 1),
    depth: int = PATCHGAN_DEPTH,
    width: float = 1.0,
    seed: int = 0,
    name: str = "patchgan",
) -> keras.Model:
    """The PatchGAN: inputs "l" (normalised L) and "ab" (normalised ab) -> "logits", one per patch.

    ``input_shape`` is the L input's; ab has the same size with 2 channels.
    ``depth`` stride-2 blocks (3: the 70x70 patch); ``width`` scales the filters."""
    multiple = patchgan_required_multiple(depth)
    # The two stride-1 4x4 convolutions shrink the strided map by one unit each:
    # it needs at least 3 units for one logit to remain.
    check_input_shape(input_shape, multiple, name, minimum=3 * multiple)
    width = check_width(width, name)
    _, kernel_init, gamma_init = _weight_initializers(seed)

    l_input = keras.Input(input_shape, name="l")
    ab_input = keras.Input((*tuple(input_shape)[:2], AB_CHANNELS), name="ab")
    x = layers.Concatenate(name="l_ab")([l_input, ab_input])
    for index in range(depth + 1):  # ``depth`` stride-2 blocks, then one stride-1 block
        filters = min(PATCHGAN_BASE_FILTERS * 2**index, PATCHGAN_MAX_FILTERS)
        x = down_block(
            x, scaled(filters, width), strides=2 if index < depth else 1, normalize=index > 0,
            use_bias=index == 0, kernel_init=kernel_init, gamma_init=gamma_init, name=f"block{index + 1}",
        )
    x = layers.ZeroPadding2D(1, name="logits_pad")(x)
    logits = layers.Conv2D(1, 4, kernel_initializer=kernel_init(), dtype="float32", name="logits")(x)
    return keras.Model([l_input, ab_input], logits, name=name)
