"""The model ladder: one builder per family, reached by name.

    >>> from colorkit import models
    >>> models.available()                    # name -> one-line description
    >>> model = models.build("strided_cnn", input_shape=(64, 64, 1), width=0.25, seed=0)

Every model is a functional ``keras.Model`` whose input is named "l" (normalised
L, shape (height, width, 1)) and whose output is named ("ab", or "logits" for
the PatchGAN, or the Zhang head's). Height and width must be multiples of
``required_multiple(name, **options)``; ``build`` refuses other sizes before
building anything. The same ``seed`` gives the same initial weights; builds
never reset global random state.

The families live one per file (strided_cnn.py, resnet.py, zhang.py,
pix2pix.py; fusion.py is the fusion layer, blocks.py the shared helpers).
Importing this package registers their custom layers for ``.keras`` loading.
"""

from __future__ import annotations

import inspect
from typing import Callable, NamedTuple

import keras

from colorkit.errors import ColorkitError
from colorkit.models import pix2pix, resnet, strided_cnn
from colorkit.models.blocks import check_input_shape, inbound_layers, receptive_field

__all__ = ["available", "build", "required_multiple", "receptive_field", "inbound_layers"]

#: Zhang et al.'s network halves three times (conv1-conv3) before its 1/4-resolution head.
ZHANG_REQUIRED_MULTIPLE = 8


class _Family(NamedTuple):
    load: Callable[[], Callable[..., keras.Model]]  # returns the builder function
    description: str
    multiple: Callable[[dict], int]  # build options -> required multiple of the sides


def _zhang_builder():
    """Imported on first use, so the rest of the zoo does not depend on zhang.py
    (and on the quantisation machinery it brings in) being importable."""
    from colorkit.models.zhang import build_zhang_eccv16

    return build_zhang_eccv16


_FAMILIES = {
    "strided_cnn": _Family(
        lambda: strided_cnn.build_strided_cnn,
        "Huang et al. 2018: 12 strided 3x3 convs + 3 upsamplings, ab regression (6.1 M parameters)",
        lambda options: strided_cnn.REQUIRED_MULTIPLE,
    ),
    "resnet18_decoder": _Family(
        lambda: resnet.build_resnet18_decoder,
        "Bhatkande 2023: ResNet-18 stem+layer1+layer2 trunk and upsampling decoder, ab regression (0.95 M)",
        lambda options: resnet.REQUIRED_MULTIPLE,
    ),
    "zhang_eccv16": _Family(
        _zhang_builder,
        "Zhang et al. ECCV 2016: ab classification over quantised bins at 1/4 resolution, annealed-mean decode "
        "(head=regression: the L2 variant)",
        lambda options: ZHANG_REQUIRED_MULTIPLE,
    ),
    "unet_generator": _Family(
        lambda: pix2pix.build_unet_generator,
        "Gunnam et al. 2022 / pix2pix: U-Net-256 generator with skips and dropout noise, tanh ab (54.4 M)",
        lambda options: pix2pix.unet_required_multiple(options.get("depth")),
    ),
    "patchgan": _Family(
        lambda: pix2pix.build_patchgan,
        "pix2pix 70x70 PatchGAN discriminator on L and ab: one real/fake logit per patch (2.77 M)",
        lambda options: pix2pix.patchgan_required_multiple(options.get("depth", pix2pix.PATCHGAN_DEPTH)),
    ),
}


def available() -> dict[str, str]:
    """Model names and a one-line description of each."""
    return {name: family.description for name, family in _FAMILIES.items()}


def _family(name: str) -> _Family:
    if name not in _FAMILIES:
        raise ColorkitError(f"unknown model {name!r}; available: {', '.join(_FAMILIES)}")
    return _FAMILIES[name]


def required_multiple(name: str, **options) -> int:
    """Height and width given to ``build(name, **options)`` must be multiples of this."""
    return _family(name).multiple(options)


def build(name: str, **options) -> keras.Model:
    """Build model ``name`` (see ``available()``) with its builder's keyword options.

    Common options: ``input_shape`` (default (None, None, 1): any valid size),
    ``width`` (channel multiplier), ``seed`` (initial weights). An unknown
    option or a size that is not a multiple of ``required_multiple`` raises
    ``ColorkitError`` before any layer is made."""
    family = _family(name)
    check_input_shape(options.get("input_shape", (None, None, 1)), family.multiple(options), name)
    builder = family.load()
    try:
        inspect.signature(builder).bind(**options)
    except TypeError as error:
        accepted = ", ".join(inspect.signature(builder).parameters)
        raise ColorkitError(f"{name} does not take these options ({error}); it accepts: {accepted}") from None
    return builder(**options)
