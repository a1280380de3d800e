"""The conditional GAN's two networks (Gunnam et al., IJFANS 2022, after pix2pix, Isola et al. 2017).

Generator: the pix2pix U-Net-256. Eight 4x4 stride-2 convolutions take a 256 image
down to 1x1 (C64-C128-C256-C512-C512-C512-C512-C512, BatchNorm on all but the first,
LeakyReLU 0.2); a mirrored decoder of 4x4 stride-2 transposed convolutions (BatchNorm,
ReLU) comes back up, joining at each size the encoder's map of that size (the skips
that carry edges to the output). Dropout 0.5 in the three innermost decoder blocks is
the generator's only noise (pix2pix found an explicit noise input ignored). A tanh
gives ab / 110. 1-channel L in, 2-channel ab out: 54,410,882 parameters at full depth
and width.

The block order (convolution, BatchNorm, activation; BatchNorm also at the bottleneck)
is the TensorFlow pix2pix tutorial's, with the same parameter count as the PyTorch
code the report follows. Convolutions followed by BatchNorm carry no bias; the U-Net's
down convolutions have none at all, as in pix2pix's code. At the 1x1 bottleneck a batch
of one image gives BatchNorm a single value per channel: train with several images.

Depth: a U-Net of depth d halves the image d times, so its sides must be multiples of
2**d. By default the depth follows the input size: as deep as the sides halve evenly,
from 3 (the three dropout blocks) to 8, so 256 gives the report's 8 levels and 64 gives
6 for CPU runs; an unknown size (None) gets 8. ``depth=`` overrides. A shallower U-Net
keeps the outer levels of the lists below.

Discriminator: the 70x70 PatchGAN. L and ab arrive as two named inputs, concatenated;
C64 (no BatchNorm, with a bias), C128, C256 with stride 2, C512 with stride 1, then a
1-channel 4x4 convolution: one real/fake logit per 70x70 patch, 30x30 of them for a
256 image, 2,765,633 parameters.

Weights start as pix2pix's: kernels from N(0, 0.02), BatchNorm scales from N(1, 0.02).
"""

from __future__ import annotations

import keras
from keras import layers

from colorkit.models.blocks import AB_CHANNELS, WEIGHT_SEEDS, batch_norm, channels, next_seed, seed_weights
from colorkit.models.fusion import GLOBAL_UNITS, fusion_block
from colorkit.models.inputs import GLOBAL_HINT_UNITS, hint_inputs, join_global_hint
from colorkit.models.transposed import Conv2DTranspose

#: The U-Net-256 has eight levels; a U-Net needs at least the three that carry the dropout noise.
MAX_DEPTH = 8
DROPOUT_BLOCKS = 3
MIN_DEPTH = DROPOUT_BLOCKS
DROPOUT_RATE = 0.5
#: With ``fusion`` or ``global_hints`` the global feature joins the encoder's 1/8 map (Iizuka et al.'s mid level).
FUSION_LEVEL = 3
#: PatchGAN: stride-2 blocks before the stride-1 block (3 gives the 70x70 patch), and the most it has.
PATCHGAN_DEPTH = 3
PATCHGAN_MAX_DEPTH = 6
LEAKY_SLOPE = 0.2

#: pix2pix's initialisation, drawn from the build's seed (see ``blocks.seed_weights``).
KERNEL_INIT = keras.initializers.RandomNormal(mean=0.0, stddev=0.02, seed=WEIGHT_SEEDS)
GAMMA_INIT = keras.initializers.RandomNormal(mean=1.0, stddev=0.02, seed=WEIGHT_SEEDS)


def downsample(filters: float, name: str, apply_batchnorm: bool = True, use_bias: bool = False):
    """The encoder block "Ck": 4x4 stride-2 convolution, BatchNorm (optional), LeakyReLU 0.2.

    Returns the block as a function of its input (the tutorial returns a Sequential;
    plain layers keep the names ``{name}_conv``, ``{name}_bn``, ``{name}_act`` at the
    model's top level). "same" padding on an even size pads one pixel per side, as PyTorch."""

    def block(x):
        x = layers.Conv2D(
            channels(filters), 4, strides=2, padding="same", use_bias=use_bias, kernel_initializer=KERNEL_INIT,
            name=f"{name}_conv",
        )(x)
        if apply_batchnorm:
            x = batch_norm(f"{name}_bn", gamma_initializer=GAMMA_INIT)(x)
        return layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_act")(x)

    return block


def upsample(filters: float, level: int):
    """The decoder block of ``level``: 4x4 stride-2 transposed convolution, BatchNorm,
    dropout 0.5 (optional), ReLU, then the skip: the encoder's map of the same size
    joined on the channel axis.

    Returns the block as a function ``block(x, skip, apply_dropout)``; its layers are
    named ``up{level}_conv`` ... ``up{level}_act`` and ``skip{level}``."""

    def block(x, skip, apply_dropout: bool):
        x = Conv2DTranspose(
            channels(filters), 4, strides=2, padding="same", use_bias=False, kernel_initializer=KERNEL_INIT,
            name=f"up{level}_conv",
        )(x)
        x = batch_norm(f"up{level}_bn", gamma_initializer=GAMMA_INIT)(x)
        if apply_dropout:
            x = layers.Dropout(DROPOUT_RATE, seed=next_seed(), name=f"up{level}_dropout")(x)
        x = layers.ReLU(name=f"up{level}_act")(x)
        return layers.Concatenate(name=f"skip{level}")([x, skip])

    return block


# --- U-Net generator ----------------------------------------------------------------------


def unet_required_multiple(depth=None) -> int:
    """The sides ``build("unet_generator", depth=depth)`` accepts are multiples of this.

    With the automatic depth any multiple of 2**MIN_DEPTH works: the depth then
    follows the size (see ``unet_depth``)."""
    return 2 ** (MIN_DEPTH if depth is None else depth)


def unet_depth(input_shape, depth=None) -> int:
    """``depth`` if given, else as many levels as both sides halve evenly (MIN_DEPTH..MAX_DEPTH)."""
    if depth is not None:
        return depth
    sides = [side for side in tuple(input_shape)[:2] if side is not None]
    depth = MAX_DEPTH if not sides else MIN_DEPTH
    while depth < MAX_DEPTH and sides and all(side % 2 ** (depth + 1) == 0 for side in sides):
        depth += 1
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
    user-guided (inputs.py: inputs "l", "hint_ab", "hint_mask");
    ``global_hints`` adds the "hint_hist" input over ``num_bins`` ab bins
    (default: colorkit's bin set), fused at the same 1/8 level."""
    seed_weights(seed)
    depth = unet_depth(input_shape, depth)
    down_stack = [  # each halves the size; a depth-d U-Net keeps the first d
        downsample(64 * width, "down1", apply_batchnorm=False),  # 1/2 of the input size
        downsample(128 * width, "down2"),  # 1/4
        downsample(256 * width, "down3"),  # 1/8
        downsample(512 * width, "down4"),  # 1/16
        downsample(512 * width, "down5"),  # 1/32
        downsample(512 * width, "down6"),  # 1/64
        downsample(512 * width, "down7"),  # 1/128
        downsample(512 * width, "down8"),  # 1/256: 1x1 for a 256 image
    ][:depth]
    up_stack = [  # each doubles the size; a depth-d U-Net keeps the last d - 1
        upsample(512 * width, level=7),  # back to 1/128
        upsample(512 * width, level=6),  # 1/64
        upsample(512 * width, level=5),  # 1/32
        upsample(512 * width, level=4),  # 1/16
        upsample(256 * width, level=3),  # 1/8
        upsample(128 * width, level=2),  # 1/4
        upsample(64 * width, level=1),  # 1/2
    ][MAX_DEPTH - depth:]

    if hints:
        inputs, x = hint_inputs(input_shape, global_hints, num_bins)
    else:
        inputs = x = keras.Input(input_shape, name="l")
    skips = []
    for level, down in enumerate(down_stack, start=1):
        x = down(x)
        if level == FUSION_LEVEL and fusion:
            x = fusion_block(x, units=channels(GLOBAL_UNITS * width), kernel_initializer=KERNEL_INIT)
        if level == FUSION_LEVEL and global_hints:
            hist = inputs[-1]
            x = join_global_hint(x, hist, units=channels(GLOBAL_HINT_UNITS * width), kernel_initializer=KERNEL_INIT)
        skips.append(x)
    # Up from the bottleneck, joining the encoder's maps from the innermost but one out to 1/2.
    for index, (up, skip) in enumerate(zip(up_stack, reversed(skips[:-1]))):
        x = up(x, skip, apply_dropout=index < DROPOUT_BLOCKS)
    x = Conv2DTranspose(
        AB_CHANNELS, 4, strides=2, padding="same", kernel_initializer=KERNEL_INIT, name="up0_conv"
    )(x)  # back to the input size
    ab = layers.Activation("tanh", dtype="float32", name="ab")(x)
    return keras.Model(inputs, ab, name=name)


# --- PatchGAN discriminator -----------------------------------------------------------------


def patchgan_required_multiple(depth: int = PATCHGAN_DEPTH) -> int:
    """Sides must be multiples of 2**depth (so "same" padding matches PyTorch's)."""
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
    seed_weights(seed)
    down_stack = [
        downsample(64 * width, "block1", apply_batchnorm=False, use_bias=True),  # C64: 1/2
        downsample(128 * width, "block2"),  # C128: 1/4
        downsample(256 * width, "block3"),  # C256: 1/8
        downsample(512 * width, "block4"),  # C512: 1/16 (deeper than pix2pix from here)
        downsample(512 * width, "block5"),  # 1/32
        downsample(512 * width, "block6"),  # 1/64
    ][:depth]

    l_input = keras.Input(input_shape, name="l")
    ab_input = keras.Input((*tuple(input_shape)[:2], AB_CHANNELS), name="ab")
    x = layers.Concatenate(name="l_ab")([l_input, ab_input])
    for down in down_stack:
        x = down(x)
    # One stride-1 block with the filters doubled once more (C512 after C256), then the logits.
    # Each pads one pixel per side as PyTorch does ("same" would pad 1 + 2 for an even kernel),
    # so each shrinks the map by one.
    block = f"block{depth + 1}"
    x = layers.ZeroPadding2D(1, name=f"{block}_pad")(x)
    x = layers.Conv2D(
        channels(min(64 * 2**depth, 512) * width), 4, use_bias=False, kernel_initializer=KERNEL_INIT,
        name=f"{block}_conv",
    )(x)
    x = batch_norm(f"{block}_bn", gamma_initializer=GAMMA_INIT)(x)
    x = layers.LeakyReLU(LEAKY_SLOPE, name=f"{block}_act")(x)
    x = layers.ZeroPadding2D(1, name="logits_pad")(x)
    logits = layers.Conv2D(1, 4, kernel_initializer=KERNEL_INIT, dtype="float32", name="logits")(x)
    return keras.Model([l_input, ab_input], logits, name=name)
