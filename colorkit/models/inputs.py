"""The inputs of user-guided networks (Zhang, Zhu, Isola et al., SIGGRAPH 2017).

A hint network is an automatic network whose first layer sees three more channels:
the hint colours (``hint_ab``, normalised ab, zero where there is no hint) and where
they are (``hint_mask``), concatenated with L as the SIGGRAPH17 network does. With
``global_hints`` it also takes a colour distribution (``hint_hist``: Q bin shares, all
zero for "none"), which two dense layers turn into one vector that joins the network's
mid-level features the way the fusion layer joins its global feature (fusion.py).

The input names are ``colorkit.hints``' constants, so a model takes the dict that
``colorkit.hints.model_feed`` or the training pipeline makes; ``colorkit.hints`` has the
hint format and the simulated users.
"""

from __future__ import annotations

import keras
from keras import layers

from colorkit import quantize
from colorkit.hints import HINT_AB, HINT_HIST, HINT_MASK
from colorkit.models.blocks import AB_CHANNELS
from colorkit.models.fusion import fuse

#: Units of the two dense layers that read the global hint (the paper's global hints network).
GLOBAL_HINT_UNITS = 256


def hint_inputs(input_shape, global_hints: bool = False, num_bins: int | None = None):
    """The named inputs of a hint network and the tensor its first layer sees.

    Returns ``(inputs, x)``: ``inputs`` is the list [l, hint_ab, hint_mask] (plus
    hint_hist over ``num_bins`` bins with ``global_hints``; default: colorkit's bin set)
    for ``keras.Model``; ``x`` is L, hint ab and mask concatenated (4 channels)."""
    height, width = tuple(input_shape)[:2]
    l_input = keras.Input(input_shape, name="l")
    hint_ab = keras.Input((height, width, AB_CHANNELS), name=HINT_AB)
    hint_mask = keras.Input((height, width, 1), name=HINT_MASK)
    inputs = [l_input, hint_ab, hint_mask]
    if global_hints:
        inputs.append(keras.Input((num_bins or len(quantize.ab_bins()),), name=HINT_HIST))
    x = layers.Concatenate(name="l_and_hints")([l_input, hint_ab, hint_mask])
    return inputs, x


def join_global_hint(feature_map, hist, *, units: int, kernel_initializer, name: str = "global_hint"):
    """Read the colour distribution with two dense layers and fuse the result into
    ``feature_map`` (same channels out, so nothing downstream changes)."""
    x = layers.Dense(units, activation="relu", kernel_initializer=kernel_initializer, name=f"{name}_dense1")(hist)
    x = layers.Dense(units, activation="relu", kernel_initializer=kernel_initializer, name=f"{name}_dense2")(x)
    return fuse(feature_map, x, kernel_initializer=kernel_initializer, name=name)
