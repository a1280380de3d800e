"""Item 7: Zhang et al.'s released networks, Keras (colorkit.pretrained) vs the reference PyTorch.

One photo, its L at the photo's own size (256 x 256, and 1024 x 768 as a
camera gives it), through each released network: the network alone, in
milliseconds, no pre- or post-processing (item 5 measures those). The
reference is the authors' package (rz-colorization) on torch's CPU build,
called as its demo does but under ``torch.no_grad()``; the kit's models are
built by ``colorkit.pretrained`` and filled from the reference's own state
dict through the kit's reader, so both compute the same thing (the notes give
the largest difference, in Lab units). Random weights: the time of a network
does not depend on them. Both use every core of the machine, in the same
process, timed alternately.

Keras rows: the model called as ``colorkit.colorize`` calls it (op by op),
and the same call compiled by XLA (``tf.function(jit_compile=True)``; the
warm-up pays the compilation, once per image size).

The released SIGGRAPH17 ``forward`` runs its last two decoder stages twice
(a block of its code is repeated; the second result is the one returned).
The baseline therefore runs the reference's own modules once each, in the
released order (``siggraph17_forward_once``), so both sides do the same work;
the notes give the time of one call of the released ``forward`` as well.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench.common import Comparison, interleaved, photo_crops, time_repeats
from colorkit import color, pretrained

ITEM = "8 released models"
#: The issue's goal: Keras at least as fast as the reference.
TARGET = 1.0


def reference_and_keras(name: str, folder: Path):
    """The reference network with random weights, and the kit's model holding the same weights."""
    import colorizers
    import torch

    reference = getattr(colorizers, name)(pretrained=False).eval()
    path = folder / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    return reference, pretrained.convert(name, path)


def photo_inputs(name: str, width: int, height: int):
    """One photo's inputs for both: (the kit's feed, the reference's arguments), no hints."""
    import torch

    rgb = photo_crops(1, width, height, seed=7)[0].astype(np.float32) / 255.0
    lightness = np.asarray(color.rgb_to_lab(rgb)[..., :1])[None]  # [1, H, W, 1], L in [0, 100]
    l_norm = np.asarray(color.normalize_l(lightness))
    torch_l = torch.from_numpy(np.ascontiguousarray(lightness.transpose(0, 3, 1, 2)))
    if name == "eccv16":
        return l_norm, (torch_l,)
    no_ab, no_mask = np.zeros((1, height, width, 2), np.float32), np.zeros((1, height, width, 1), np.float32)
    # the release's own units: ab in Lab units, mask - 0.5
    no_hints = (torch.zeros(1, 2, height, width), torch.full((1, 1, height, width), -0.5))
    return [l_norm, no_ab, no_mask], (torch_l, *no_hints)


def siggraph17_forward_once(reference, input_l, input_ab, input_mask):
    """The reference SIGGRAPH17's ``forward`` with each module run once (see the module docstring)."""
    import torch

    r = reference
    conv1_2 = r.model1(torch.cat((r.normalize_l(input_l), r.normalize_ab(input_ab), input_mask), dim=1))
    conv2_2 = r.model2(conv1_2[:, :, ::2, ::2])
    conv3_3 = r.model3(conv2_2[:, :, ::2, ::2])
    conv7_3 = r.model7(r.model6(r.model5(r.model4(conv3_3[:, :, ::2, ::2]))))
    conv8_3 = r.model8(r.model8up(conv7_3) + r.model3short8(conv3_3))
    conv9_3 = r.model9(r.model9up(conv8_3) + r.model2short9(conv2_2))
    conv10_2 = r.model10(r.model10up(conv9_3) + r.model1short10(conv1_2))
    return r.unnormalize_ab(r.model_out(conv10_2))


def largest_difference(keras_ab_norm, reference_ab) -> float:
    """max |Keras - reference| over every pixel, in Lab units."""
    return float(np.abs(np.asarray(keras_ab_norm) * 110.0 - reference_ab.numpy().transpose(0, 2, 3, 1)).max())


def model_rows(name: str, reference, model, scale) -> list[dict]:
    import tensorflow as tf
    import torch

    compiled = tf.function(lambda feed: model(feed, training=False), jit_compile=True)
    rows = []
    for width, height in scale.pretrained_sizes:
        feed, arguments = photo_inputs(name, width, height)

        forward = siggraph17_forward_once if name == "siggraph17" else type(reference).__call__

        def run_reference(forward=forward):
            with torch.no_grad():
                return forward(reference, *arguments)

        runs = {"reference": run_reference, "keras": lambda: model(feed, training=False),
                "xla": lambda: compiled(feed)}
        outputs = {method: run() for method, run in runs.items()}  # the warm-up, whose outputs are compared
        timings = interleaved(runs, scale.pretrained_repeats, warmup=0)
        notes = {method: f"max |difference| {largest_difference(outputs[method], outputs['reference']):.2g} Lab"
                 for method in ("keras", "xla")}
        method, base_note = "PyTorch reference (rz-colorization), torch.no_grad()", ""
        if name == "siggraph17":
            released = time_repeats(lambda: run_reference(type(reference).__call__), 1, warmup=0)
            method += ", each module once"
            base_note = f"the released forward (decoder end twice): {1000 * released.median:.0f} ms, one call"
        comparison = Comparison(ITEM, f"{name}, one {width}x{height} photo, the network alone", target=TARGET)
        comparison.baseline(method, 1000 * timings["reference"].median, "ms", timings["reference"], base_note)
        comparison.kit("colorkit.pretrained, model(x) as colorize calls it", 1000 * timings["keras"].median, "ms",
                       timings["keras"], notes["keras"])
        comparison.kit("colorkit.pretrained, tf.function(jit_compile=True)", 1000 * timings["xla"].median, "ms",
                       timings["xla"], notes["xla"])
        rows += comparison.rows
    return rows


def run(scale) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in scale.pretrained_models:
            reference, model = reference_and_keras(name, Path(tmp))
            rows += model_rows(name, reference, model, scale)
    return rows
