"""The model ladder: one builder per family, reached by name.

    >>> from colorkit import models
    >>> models.available()                    # name -> one-line description
    >>> model = models.build("strided_cnn", input_shape=(64, 64, 1), width=0.25, seed=0)

Every model is a functional ``keras.Model`` whose input is named "l" (normalised
L, shape (height, width, 1)) and whose output is named ("ab", or "logits" for
the PatchGAN, or the Zhang head's). Height and width must be multiples of
``required_multiple(name, **options)``. The same ``seed`` gives the same initial
weights; builds never reset global random state.

``build`` is the edge: it checks every option against the table below and refuses
a bad one with one sentence before any layer exists; the builders trust their
arguments. The families live one per file (strided_cnn.py, resnet.py, zhang.py,
pix2pix.py; fusion.py is the fusion layer, inputs.py the hint inputs, blocks.py the
shared pieces). Importing this package registers their custom layers for ``.keras`` loading.
"""

from __future__ import annotations

import inspect
import os
from typing import Callable, NamedTuple

import keras

from colorkit.checks import check_flag, check_real, check_whole, is_whole
from colorkit.errors import ColorkitError
from colorkit.models import pix2pix, resnet, strided_cnn, zhang
from colorkit.models.blocks import L_CHANNELS, inbound_layers, receptive_field

__all__ = ["available", "build", "required_multiple", "receptive_field", "inbound_layers"]

#: The largest width multiplier (16 times the report's channels is far beyond any use).
MAX_WIDTH = 16
#: The largest seed, as numpy's and ``keras.utils.set_random_seed``'s.
MAX_SEED = 2**32 - 1
#: Zhang's bins and the global hint's histogram need a few bins to mean anything.
MIN_BINS = 3


# --- Checks of one option: check(value, label) raises ColorkitError naming ``label`` ---------


def _one_of(*choices):
    def check(value, label):
        if value not in choices:
            raise ColorkitError(f"{label} must be one of {', '.join(choices)}, got {value!r}")

    return check


def _whole(low, high=None):
    return lambda value, label: check_whole(value, label, low, high)


def _optional(check):
    """``check``, or None (the builder's default)."""
    return lambda value, label: value is None or check(value, label)


def _text(value, label):
    if not isinstance(value, str) or not value:
        raise ColorkitError(f"{label} must be a non-empty string, got {value!r}")


def _path(value, label):
    if not isinstance(value, (str, os.PathLike)):
        raise ColorkitError(f"{label} must be a file path, got {value!r}")


#: Options every builder takes, besides ``input_shape`` (checked with the family's multiple).
_COMMON_CHECKS = {
    "width": lambda value, label: check_real(value, label, 0, MAX_WIDTH, low_open=True),
    "seed": _whole(0, MAX_SEED),
    "name": _text,
}


# --- Checks that involve several options: check(arguments, model) --------------------------------


def _hints_need_each_other(arguments, model):
    if arguments["global_hints"] and not arguments["hints"]:
        raise ColorkitError(f"{model}: global_hints=True needs hints=True (a user-guided model)")
    if arguments["num_bins"] is not None and not arguments["global_hints"]:
        raise ColorkitError(f"{model}: num_bins is the size of the global hint; it needs global_hints=True")


def _bins_only_for_classification(arguments, model):
    if arguments["head"] == "regression" and arguments["num_bins"] is not None:
        raise ColorkitError(f"{model}: num_bins sizes the classification head; head='regression' predicts 2 channels")


class _Family(NamedTuple):
    builder: Callable[..., keras.Model]
    description: str
    checks: dict  # the family's own options -> check(value, label)
    multiple: Callable[[dict], int]  # the build's arguments -> required multiple of the sides
    smallest: int = 1  # the smallest side, in multiples
    together: Callable[[dict, str], None] = lambda arguments, model: None  # checks across options


_FAMILIES = {
    "strided_cnn": _Family(
        strided_cnn.build_strided_cnn,
        "Huang et al. 2018: 12 strided 3x3 convs + 3 upsamplings, ab regression (6.1 M parameters)",
        {"output_activation": _one_of(*strided_cnn.OUTPUT_ACTIVATIONS), "init": _one_of(*strided_cnn.KERNEL_INITS),
         "hints": check_flag},
        lambda arguments: strided_cnn.REQUIRED_MULTIPLE,
    ),
    "resnet18_decoder": _Family(
        resnet.build_resnet18_decoder,
        "Bhatkande 2023: ResNet-18 stem+layer1+layer2 trunk and upsampling decoder, ab regression (0.95 M)",
        {
            "upsample": _one_of(*resnet.UPSAMPLING),
            "output_activation": _one_of(*resnet.OUTPUT_ACTIVATIONS),
            "fusion": check_flag,
            "trunk_weights": _optional(_path),
        },
        lambda arguments: resnet.REQUIRED_MULTIPLE,
    ),
    "zhang_eccv16": _Family(
        zhang.build_zhang_eccv16,
        "Zhang et al. ECCV 2016: ab classification over quantised bins at 1/4 resolution, annealed-mean decode "
        "(head=regression: the L2 variant)",
        {"num_bins": _optional(_whole(MIN_BINS)), "head": _one_of(*zhang.HEADS)},
        lambda arguments: zhang.REQUIRED_MULTIPLE,
        together=_bins_only_for_classification,
    ),
    "unet_generator": _Family(
        pix2pix.build_unet_generator,
        "Gunnam et al. 2022 / pix2pix: U-Net-256 generator with skips and dropout noise, tanh ab (54.4 M)",
        {
            "depth": _optional(_whole(pix2pix.MIN_DEPTH, pix2pix.MAX_DEPTH)),
            "fusion": check_flag,
            "hints": check_flag,
            "global_hints": check_flag,
            "num_bins": _optional(_whole(MIN_BINS)),
        },
        lambda arguments: pix2pix.unet_required_multiple(arguments["depth"]),
        together=_hints_need_each_other,
    ),
    "patchgan": _Family(
        pix2pix.build_patchgan,
        "pix2pix 70x70 PatchGAN discriminator on L and ab: one real/fake logit per patch (2.77 M)",
        {"depth": _whole(1, pix2pix.PATCHGAN_MAX_DEPTH)},
        lambda arguments: pix2pix.patchgan_required_multiple(arguments["depth"]),
        # Two stride-1 4x4 convolutions shrink the strided map by one unit each: 3 units leave one logit.
        smallest=3,
    ),
}


def available() -> dict[str, str]:
    """Model names and a one-line description of each."""
    return {name: family.description for name, family in _FAMILIES.items()}


def required_multiple(name: str, /, **options) -> int:
    """Height and width given to ``build(name, **options)`` must be multiples of this.

    Each option is checked as ``build`` checks it; how they go together is left to
    ``build``, which gets them all."""
    family, arguments = _checked_arguments(name, options)
    return family.multiple(arguments)


def build(name: str, /, **options) -> keras.Model:
    """Build model ``name`` (see ``available()``) with its builder's keyword options.

    Common options: ``input_shape`` (default (None, None, 1): any valid size),
    ``width`` (channel multiplier), ``seed`` (initial weights), ``name`` (the
    model's own; the first argument names the family). An unknown or bad option,
    or a size that is not a multiple of ``required_multiple``, raises
    ``ColorkitError`` before any layer is made."""
    family, arguments = _checked_arguments(name, options)
    family.together(arguments, name)
    multiple = family.multiple(arguments)
    _check_input_shape(arguments["input_shape"], multiple, family.smallest * multiple, name)
    return family.builder(**options)


def _checked_arguments(name: str, options: dict) -> tuple[_Family, dict]:
    """The family of ``name`` and every argument its builder will get (``options`` and the
    defaults), each checked on its own; ``input_shape`` is left to the caller."""
    if name not in _FAMILIES:
        raise ColorkitError(f"unknown model {name!r}; available: {', '.join(_FAMILIES)}")
    family = _FAMILIES[name]
    signature = inspect.signature(family.builder)
    try:
        bound = signature.bind(**options)
    except TypeError as error:
        accepted = ", ".join(signature.parameters)
        raise ColorkitError(f"{name} does not take these options ({error}); it accepts: {accepted}") from None
    bound.apply_defaults()
    checks = {**_COMMON_CHECKS, **family.checks}
    for option, value in bound.arguments.items():
        if option != "input_shape":
            checks[option](value, f"{name}: {option}")
    return family, bound.arguments


def _check_input_shape(input_shape, multiple: int, smallest: int, model: str) -> None:
    """``input_shape`` must be (height, width, 1), each side None (any size at call time) or a
    multiple of ``multiple`` of at least ``smallest``: another size would make the decoder's
    output a different size from its input, or fail deep inside Keras."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3 or input_shape[-1] != L_CHANNELS:
        raise ColorkitError(f"{model} takes normalised L of shape (height, width, 1), got {input_shape!r}")
    height, width = input_shape[:2]
    for side in (height, width):
        if side is not None and (not is_whole(side) or side < smallest or side % multiple):
            at_least = f" and at least {smallest}" if smallest > multiple else ""
            raise ColorkitError(
                f"{model} needs a height and width that are multiples of {multiple}{at_least}, "
                f"got {height}x{width}: resize or crop the images to such a size"
            )
