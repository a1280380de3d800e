"""Item 4: training throughput of every model on this CPU, XLA off and on.

Each model is trained the way ``colorkit.train`` trains it (its report's quick
recipe: optimiser, learning rate, loss; the GAN's explicit two-tape step for
the U-Net generator with its PatchGAN), on batches of 16 real photos held in
memory, so only the model's step is timed (item 2 times the input pipeline).
The PatchGAN is also timed alone, as a discriminator step. One width (0.25)
for every model keeps the 256 px runs inside the time limit; the figures are
images per second and the peak memory of the process while training.

Baseline: ``jit_compile`` off; the kit's row: on. The first step (tracing,
and XLA compilation when on) is left out of the figure and given in the notes.
Where both are timed, a third comparison judges the kit's default,
``--jit-compile auto``: its trial (``setup.decide_jit``, a few steps timed each
way, as a run starts) picks one, whose speed measured here is set against the
faster of the two.
XLA is timed at the sizes and for the models the scale names
(``train_jit_sizes``, ``train_jit_models``: every one at full scale; compiling
a step takes 4 to 18 s on 2 cores, given as the first step in the notes).
"""

from __future__ import annotations

import gc
import time

import keras
import numpy as np
import tensorflow as tf

from bench.common import Comparison, Timing, peak_rss_mib, photo_crops, reset_peak_rss, rss_mib
from colorkit import color, experiments, models
from colorkit.training import gan, setup
from colorkit.training.fit import compile_model

ITEM = "4 training"
#: ``--jit-compile auto`` should train at the faster setting's speed, within the noise of two timings.
AUTO_TARGET = 0.9
#: The GAN pair is timed as one step under the generator's name.
GAN_GENERATOR, DISCRIMINATOR = "unet_generator", "patchgan"


def recipe(model_name: str, size: int, batch: int, jit: bool, policy: str, options: dict):
    """The ``TrainConfig`` colorkit's ``train --model NAME`` would use, at this size and precision."""
    experiment = experiments.default_experiment_for(model_name)
    changes = dict(model=model_name, image_size=size, batch_size=batch, jit_compile="on" if jit else "off",
                   mixed_precision=policy, model_options=dict(options))
    if experiment is None:  # the PatchGAN trains inside the GAN recipe only
        return experiments.experiment_config("unet_gan", "quick", **changes)
    return experiments.experiment_config(experiment, "quick", **changes)


def photo_batch(size: int, batch: int, seed: int = 4):
    """(normalised L, normalised ab) of ``batch`` real photos at ``size`` px."""
    rgb = np.stack(photo_crops(batch, size, size, seed=seed)).astype(np.float32) / 255.0
    l_norm, ab_norm = color.rgb_to_model_io(rgb)
    return l_norm, ab_norm


class TrainingStep:
    """One model's training step, built as ``colorkit.train`` builds it.

    ``run()`` trains one step on the fixed batch and returns the loss as a float
    (reading it waits for the step to finish, so timing it is honest)."""

    def __init__(self, model_name: str, size: int, batch: int, jit: bool, policy: str = "float32",
                 options: dict | None = None, seed: int = 0):
        self.config = recipe(model_name, size, batch, jit, policy, options or {})
        self.l_norm, self.ab_norm = photo_batch(size, batch)
        with setup.precision_policy(policy):
            if model_name == GAN_GENERATOR:
                self.run = self._gan_step(jit)
            elif model_name == DISCRIMINATOR:
                self.run = self._discriminator_step(jit, seed)
            else:
                self.run = self._fit_step()

    def _fit_step(self):
        """``model.train_on_batch`` after ``compile_model``: the step ``fit`` runs."""
        model = compile_model(setup.build_model(self.config), self.config)
        target = self.ab_norm
        if self.config.loss == "rebalanced_ce":  # the classifier's target: ab at its quarter resolution
            target = tf.nn.avg_pool2d(self.ab_norm, 4, 4, "VALID")
        return lambda: float(model.train_on_batch(self.l_norm, target))

    def _gan_step(self, jit: bool):
        """The GAN trainer's adversarial step: generator and PatchGAN, two tapes."""
        config = self.config
        generator = setup.build_model(config)
        discriminator = models.build(DISCRIMINATOR, input_shape=(config.image_size, config.image_size, 1),
                                     seed=config.seed + 1, **config.model_options)
        g_optimizer, d_optimizer = setup.make_optimizer(config), setup.make_optimizer(config)
        step = gan.make_gan_train_step(generator, discriminator, g_optimizer, d_optimizer, config.l1_weight,
                                         config.gan_loss, jit_compile=jit)
        return lambda: float(step(self.l_norm, self.ab_norm)["g_total"])

    def _discriminator_step(self, jit: bool, seed: int):
        """The PatchGAN alone: real (L, ab) pairs against ab shifted by one image, BCE on logits."""
        config = self.config
        model = models.build(DISCRIMINATOR, input_shape=(config.image_size, config.image_size, 1), seed=seed,
                             **config.model_options)
        model.compile(optimizer=setup.make_optimizer(config), loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      jit_compile=jit)
        inputs = [tf.concat([self.l_norm, self.l_norm], 0), tf.concat([self.ab_norm, tf.roll(self.ab_norm, 1, 0)], 0)]
        real = tf.ones_like(model([self.l_norm, self.ab_norm]))
        labels = tf.concat([real, tf.zeros_like(real)], 0)
        return lambda: float(model.train_on_batch(inputs, labels))


def measure(step_factory, steps: int, budget_s: float | None = None) -> dict:
    """Build a step (``step_factory()``), run one untimed step, then ``steps`` timed ones,
    or fewer when they pass ``budget_s`` seconds (at least one is always timed).

    Returns the timing, the losses, the first step's seconds, and the peak
    process memory (MiB) from before the model was built to the last step."""
    keras.backend.clear_session()
    gc.collect()
    reset_peak_rss()
    before = rss_mib()
    start = time.perf_counter()
    step = step_factory()
    losses = [step.run()]
    first = time.perf_counter() - start
    seconds = []
    while len(seconds) < steps and (budget_s is None or not seconds or sum(seconds) < budget_s):
        start = time.perf_counter()
        losses.append(step.run())
        seconds.append(time.perf_counter() - start)
    return {"timing": Timing(seconds), "losses": losses, "first": first, "peak": peak_rss_mib(), "before": before}


def run(scale) -> list[dict]:
    """Images/s and peak memory for every model and size, XLA off (baseline) and on."""
    batch, width, rows = scale.batch_size, scale.train_width, []
    for size in scale.train_sizes:
        for name in scale.train_models:
            if size % models.required_multiple(name, width=width):
                continue
            with_xla = size in scale.train_jit_sizes and name in scale.train_jit_models
            found = {jit: measure(lambda jit=jit: TrainingStep(name, size, batch, jit, options={"width": width}),
                                  scale.train_steps)
                     for jit in ((False, True) if with_xla else (False,))}
            label = f"{name}{' + patchgan (GAN step)' if name == GAN_GENERATOR else ''}"
            case = f"{label}, {size} px, width {width:g}, batch {batch}"
            speed, memory = Comparison(ITEM, f"{case}: speed"), Comparison(ITEM, f"{case}: peak memory")
            for jit, result in found.items():
                on_off = "on" if jit else "off"
                (speed.kit if jit else speed.baseline)(
                    f"jit_compile {on_off}: images/s", batch / result["timing"].median, "images/s", result["timing"],
                    notes=f"first step (tracing{', XLA compilation' if jit else ''}) {result['first']:.1f} s")
                (memory.kit if jit else memory.baseline)(
                    f"jit_compile {on_off}: peak memory", result["peak"], "MiB",
                    notes=f"process RSS; {result['peak'] - result['before']:+.0f} MiB over its size before the build")
            rows += speed.rows + memory.rows
            if with_xla:
                rows += auto_rows(name, size, batch, width, case, found)
    return rows


def auto_rows(name: str, size: int, batch: int, width: float, case: str, found: dict) -> list[dict]:
    """``--jit-compile auto`` against the faster of off and on (``found``: jit -> ``measure``'s result)."""
    config = recipe(name, size, batch, False, "float32", {"width": width}).replace(jit_compile="auto")
    start = time.perf_counter()
    decision = setup.decide_jit(config, None, lambda jit: TrainingStep(name, size, batch, jit, options={"width": width}).run,
                                variables=[])
    trial = time.perf_counter() - start
    speeds = {jit: batch / result["timing"].median for jit, result in found.items()}
    best = max(speeds, key=speeds.get)
    chosen = decision["jit_compile"]
    timed = ", ".join(f"{key} {seconds:.3f} s" for key, seconds in decision.get("seconds_per_step", {}).items())
    comparison = Comparison(ITEM, f"{case}: --jit-compile auto", target=AUTO_TARGET)
    comparison.baseline(f"the faster of off and on (jit_compile {'on' if best else 'off'}): images/s", speeds[best],
                        "images/s", found[best]["timing"])
    comparison.kit(f"auto (chose {'on' if chosen else 'off'}): images/s", speeds[chosen], "images/s",
                   found[chosen]["timing"], notes=f"its trial: {timed} per step; {trial:.0f} s in all")
    return comparison.rows
