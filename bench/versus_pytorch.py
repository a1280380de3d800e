"""Item 4c: the GAN step and inference against PyTorch implementations of the same networks.

The kit's U-Net generator with its PatchGAN (one adversarial step: both
networks forward, both tapes, both Adam steps; 64 px, batch 16, the report's
full widths) and the U-Net and ECCV16 networks alone in inference (256 px, one
image), each against ``bench.torch_reference``: the same layers written in
PyTorch, run in the same process on the same cores, alternating with the
kit's (``common.interleaved``). Figures are milliseconds per call; the notes
give the CPU time per call too, which the other jobs on a shared machine
disturb less than the wall clock.

The kit's rows: its models as they are (``colorkit.models.transposed``'s
Conv2DTranspose), then the same weights with ``keras.layers.Conv2DTranspose``
(TensorFlow's own kernel, as the kit computed before), and for inference the
forward pass compiled with ``tf.function`` next to the plain ``model(x)`` call
that ``colorize`` makes.

PyTorch's OpenMP threads are told to sleep while they wait
(``OMP_WAIT_POLICY=PASSIVE``, unless set otherwise): by default they spin, and
on a machine whose cores other jobs share a spinning thread waits for one that
is descheduled, which makes PyTorch several times slower and would flatter the kit.
"""

from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf

from bench.common import Comparison, Timing, interleaved
from bench.training import photo_batch, recipe
from colorkit import models
from colorkit.models.pix2pix import unet_depth
from colorkit.models.blocks import with_keras_layers
from colorkit.training import gan, setup

ITEM = "4c versus PyTorch"
#: The issue's goal: at least as fast as PyTorch.
TARGET = 1.0


def torch_module():
    """``bench.torch_reference``, imported with PyTorch's threads set up (see the module docstring)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from bench import torch_reference

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))
    torch.manual_seed(0)
    return torch_reference


def with_cpu_time(run):
    """``run`` wrapped so that each call also appends its process CPU seconds to ``.cpu``."""

    def timed():
        start = time.process_time()
        run()
        timed.cpu.append(time.process_time() - start)

    timed.cpu = []
    return timed


def cpu_note(runs: dict, name: str) -> str:
    """The median CPU milliseconds per timed call of ``runs[name]`` (the warm-up left out)."""
    seconds = runs[name].cpu[1:] or runs[name].cpu
    return f"{1000 * np.median(seconds):.0f} CPU-ms per call"


def compare(case: str, runs: dict, repeats: int, labels: dict) -> list[dict]:
    """Time ``runs`` (name -> callable; "torch" first) alternating; one row each, PyTorch the baseline."""
    runs = {name: with_cpu_time(run) for name, run in runs.items()}
    timings: dict[str, Timing] = interleaved(runs, repeats)
    comparison = Comparison(ITEM, case, target=TARGET)
    for name, method in labels.items():
        add = comparison.baseline if name == "torch" else comparison.kit
        add(method, 1000 * timings[name].median, "ms", timings[name], notes=cpu_note(runs, name))
    return comparison.rows


def gan_rows(scale) -> list[dict]:
    """One adversarial step, the kit's (as ``train`` builds it) and PyTorch's."""
    reference = torch_module()
    size, batch = scale.versus_gan_size, scale.batch_size
    config = recipe("unet_generator", size, batch, jit=False, policy="float32", options={"width": scale.versus_width})
    config = config.replace(discriminator_options={"width": scale.versus_width})
    l_norm, ab_norm = photo_batch(size, batch)

    def kit_step(keras_layers: bool):
        generator = setup.build_model(config)
        generator = with_keras_layers(generator) if keras_layers else generator
        discriminator = models.build("patchgan", input_shape=(size, size, 1), seed=config.seed + 1,
                                     **config.discriminator_options)
        step = gan.make_gan_train_step(generator, discriminator, setup.make_optimizer(config),
                                       setup.make_optimizer(config), config.l1_weight, config.gan_loss)
        return lambda: float(step(l_norm, ab_norm)["g_total"])

    depth = unet_depth((size, size, 1))
    torch_step = reference.make_gan_step(
        reference.UNetGenerator(depth=depth, width=scale.versus_width), reference.PatchGAN(width=scale.versus_width),
        config.learning_rate, config.beta_1, config.l1_weight,
    )
    l_torch, ab_torch = reference.nchw(l_norm), reference.nchw(ab_norm)
    runs = {"torch": lambda: torch_step(l_torch, ab_torch), "kit": kit_step(False), "before": kit_step(True)}
    case = (f"GAN step: U-Net generator (depth {depth}) + PatchGAN, {size} px, batch {batch}, "
            f"width {scale.versus_width:g}")
    return compare(case, runs, scale.versus_repeats, {
        "torch": "PyTorch, the same layers (bench.torch_reference)",
        "kit": "colorkit's GAN step (make_gan_train_step)",
        "before": "the same with keras.layers.Conv2DTranspose (before)",
    })


def inference_rows(scale, name: str) -> list[dict]:
    """One image through the network alone, the kit's ways and PyTorch's."""
    reference = torch_module()
    size = scale.versus_inference_size
    model = models.build(name, input_shape=(size, size, 1), width=scale.versus_width, seed=0)
    before = with_keras_layers(model)
    if name == "unet_generator":
        module = reference.UNetGenerator(depth=unet_depth((size, size, 1)), width=scale.versus_width)
    else:
        module = reference.ZhangECCV16(num_bins=model.output.shape[-1], width=scale.versus_width)
    reference.copy_weights(model, module)
    l_norm = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 1)).astype(np.float32)
    torch_run, l_torch = reference.make_inference(module), reference.nchw(l_norm)
    compiled = tf.function(lambda x: model(x, training=False))
    runs = {
        "torch": lambda: torch_run(l_torch),
        "kit": lambda: np.asarray(model(l_norm, training=False)),
        "compiled": lambda: compiled(l_norm).numpy(),
        "before": lambda: np.asarray(before(l_norm, training=False)),
    }
    case = f"inference: {name}, {size} px, batch 1, width {scale.versus_width:g}"
    return compare(case, runs, scale.versus_repeats, {
        "torch": "PyTorch, the same layers, inference_mode",
        "kit": "colorkit model(x, training=False), as colorize calls it",
        "compiled": "the same forward pass in a tf.function",
        "before": "model(x) with keras.layers.Conv2DTranspose (before)",
    })


def run(scale) -> list[dict]:
    rows = gan_rows(scale)
    for name in scale.versus_inference_models:
        rows += inference_rows(scale, name)
    return rows
