"""The conditional GAN (pix2pix, as the IJFANS report trains it): the adversarial
step written as an explicit ``@tf.function`` with two tapes, and the loop around
it, which adds what the TF pix2pix tutorial lacks: a CheckpointManager that
resumes with its step counter, per-step CSV and TensorBoard scalars, a progress
bar, sample grids with BatchNorm in inference mode, and a guard that stops
before a non-finite loss reaches a checkpoint. Under a strategy the step runs
on every replica (``setup.on_replicas``); across machines every worker runs
this loop (``distributed`` says what differs between them).
"""

from __future__ import annotations

import contextlib
import csv
import math
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from colorkit import losses, models
from colorkit.errors import ColorkitError
from colorkit.experiments import TrainConfig
from colorkit.io import atomic_path, atomic_write_text
from colorkit.training import distributed
from colorkit.training.setup import (
    build_model, decide_jit, fixed_validation_batch, make_optimizer, make_strategy, on_replicas, precision_policy,
    probe_split, record_jit_choice, record_start, steps_per_epoch, trial_batch, write_sample_grid,
)


def make_gan_train_step(generator, discriminator, g_optimizer, d_optimizer, l1_weight, gan_loss, jit_compile=False):
    """One adversarial step, written to be read aloud.

    The discriminator sees (L, real ab) and (L, fake ab); the generator is pushed
    to fool it while staying close to the truth in L1 (weighted by lambda).
    ``_gradient_loss`` handles the two technicalities: replicas of a
    distribution strategy sum their gradients, and mixed float16 scales the loss
    (a multiplication the LossScaleOptimizer undoes when applying gradients).
    It is called inside the tapes: a tape only differentiates what it recorded."""

    @tf.function(jit_compile=jit_compile)
    def train_step(inputs, ab_true):
        l_norm = inputs["l"] if isinstance(inputs, dict) else inputs  # a hint model also takes its hints
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            ab_fake = generator(inputs, training=True)
            real_logits = discriminator([l_norm, ab_true], training=True)
            fake_logits = discriminator([l_norm, ab_fake], training=True)

            g_adversarial = losses.generator_adversarial_loss(fake_logits, kind=gan_loss)
            g_l1 = losses.l1(ab_true, ab_fake)
            g_total = g_adversarial + l1_weight * g_l1
            d_total = losses.discriminator_loss(real_logits, fake_logits, kind=gan_loss)
            g_objective = _gradient_loss(g_optimizer, g_total)
            d_objective = _gradient_loss(d_optimizer, d_total)

        g_grads = g_tape.gradient(g_objective, generator.trainable_variables)
        d_grads = d_tape.gradient(d_objective, discriminator.trainable_variables)
        g_optimizer.apply_gradients(zip(g_grads, generator.trainable_variables))
        d_optimizer.apply_gradients(zip(d_grads, discriminator.trainable_variables))
        return {"d_loss": d_total, "g_loss": g_adversarial, "g_l1": g_l1, "g_total": g_total}

    return train_step


def make_l1_pretrain_step(generator, g_optimizer, jit_compile=False):
    """Generator-only L1 step: the optional warm-up before the adversarial phase."""

    @tf.function(jit_compile=jit_compile)
    def pretrain_step(inputs, ab_true):
        with tf.GradientTape() as tape:
            g_l1 = losses.l1(ab_true, generator(inputs, training=True))
            objective = _gradient_loss(g_optimizer, g_l1)
        grads = tape.gradient(objective, generator.trainable_variables)
        g_optimizer.apply_gradients(zip(grads, generator.trainable_variables))
        return {"g_l1": g_l1}

    return pretrain_step


def _gradient_loss(optimizer, loss):
    """The loss to differentiate: divided by the number of replicas (their
    gradients are summed when applied), then loss-scaled for float16."""
    loss = loss / tf.distribute.get_strategy().num_replicas_in_sync
    return optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss


class GanTrainer:
    """The explicit training loop around ``make_gan_train_step`` (see the module docstring)."""

    def __init__(self, config: TrainConfig, run_dir: Path, split: dict, build=None, make_step=None, worker=None):
        """``build``: a function ``config -> generator`` (default ``build_model``);
        ``make_step``: a replacement for ``make_gan_train_step`` with its signature
        (a notebook's edited step); ``worker``: this process's ``distributed.Worker``
        (default: the only process)."""
        self.config, self.run_dir = config, run_dir
        self.strategy = make_strategy(config.strategy)
        self.worker = worker or distributed.Worker(self.strategy)
        files = probe_split(split)
        self.train_data, val_data = self.worker.datasets(config, files)
        self.sample_rgb = fixed_validation_batch(config, files)
        self.steps_per_epoch = steps_per_epoch(config, files, self.strategy.num_replicas_in_sync)
        with precision_policy(config.mixed_precision), self.strategy.scope():
            self.generator = (build or build_model)(config)
            self.discriminator = models.build(
                "patchgan", input_shape=(config.image_size, config.image_size, 1), seed=config.seed + 1,
                **config.discriminator_options,
            )
            self.g_optimizer = make_optimizer(config)
            self.d_optimizer = make_optimizer(config)
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        record_start(run_dir, config, split, self.generator)
        make_step = make_step or make_gan_train_step
        self.jit = self._decide_jit(make_step, val_data)
        record_jit_choice(run_dir, self.jit)
        jit = self.jit["jit_compile"]
        self.gan_step = self._distributed(
            make_step(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer, config.l1_weight,
                      config.gan_loss, jit)
        )
        self.pretrain_step = self._distributed(make_l1_pretrain_step(self.generator, self.g_optimizer, jit))
        checkpoint = tf.train.Checkpoint(
            generator=self.generator, discriminator=self.discriminator,
            g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer, step=self.step,
        )
        _remove_unfinished_checkpoints(run_dir / "checkpoints")
        self.manager = tf.train.CheckpointManager(
            checkpoint, str(run_dir / "checkpoints"), max_to_keep=config.max_to_keep
        )
        if self.manager.latest_checkpoint:
            checkpoint.restore(self.manager.latest_checkpoint).expect_partial()
        self.worker.sync(self.generator.weights + self.discriminator.weights + list(self.g_optimizer.variables)
                         + list(self.d_optimizer.variables) + [self.step])  # the chief's checkpoint, everywhere
        self.writer = tf.summary.create_file_writer(str(run_dir / "logs"))

    def _decide_jit(self, make_step, val_data) -> dict:
        """``decide_jit`` for the adversarial step: the trial runs it on a validation batch
        with both networks and both optimisers, which are put back as they were."""
        config = self.config

        def trial_step(jit):
            step = make_step(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer,
                             config.l1_weight, config.gan_loss, jit)
            inputs, ab_true = trial_batch(val_data, config.batch_size)
            return lambda: {name: float(value) for name, value in step(inputs, ab_true).items()}

        variables = [*self.generator.variables, *self.discriminator.variables, *self.g_optimizer.variables,
                     *self.d_optimizer.variables]
        return decide_jit(config, self.total_steps, trial_step, variables)

    def _distributed(self, step_fn):
        """Run a step on every replica and average its losses (plain call without a strategy)."""
        return step_fn if self.config.strategy == "default" else on_replicas(self.strategy, step_fn)

    @property
    def total_steps(self) -> int:
        return (self.config.pretrain_epochs + self.config.epochs) * self.steps_per_epoch

    def train(self, verbose: int = 1) -> int:
        """Train until ``total_steps``; returns the number of steps run in this call."""
        start = int(self.step.numpy())
        if start >= self.total_steps:
            return 0
        data = self.train_data  # a multi-worker run's is distributed already
        if self.config.strategy == "mirrored":
            data = self.strategy.experimental_distribute_dataset(data)
        # Every logged value is the current step's, not a running average: all "stateful".
        progress = keras.utils.Progbar(self.total_steps, verbose=self.worker.verbose(verbose),
                                       stateful_metrics=["d_loss", "g_loss", "g_l1", "g_total"])
        progress.update(start)  # a resumed run's bar starts where it stopped
        with self._history_writer() as history:
            while int(self.step.numpy()) < self.total_steps:
                for l_norm, ab_true in data:
                    step = int(self.step.numpy())
                    if step >= self.total_steps:
                        break
                    pretraining = step < self.config.pretrain_epochs * self.steps_per_epoch
                    logs = {k: float(v) for k, v in (self.pretrain_step if pretraining else self.gan_step)(l_norm, ab_true).items()}
                    self._guard(step, logs)
                    self.step.assign_add(1)
                    self._log(step + 1, "pretrain" if pretraining else "gan", logs, history)
                    progress.update(step + 1, values=list(logs.items()))
                    self._periodic(step + 1)
        self.manager.save(checkpoint_number=int(self.step.numpy()))
        return int(self.step.numpy()) - start

    def _guard(self, step, logs):
        bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
        if bad:
            kept = self.manager.latest_checkpoint or "none yet"
            raise ColorkitError(
                f"GAN training diverged at step {step + 1} ({bad}); stopped without saving: the last good checkpoint "
                f"is {kept}; lower the learning rate or use float32"
            )

    def _periodic(self, step):
        if step % self.config.checkpoint_every == 0:
            self.manager.save(checkpoint_number=step)
        if step % (self.steps_per_epoch * self.config.sample_every) == 0:
            epoch = step // self.steps_per_epoch
            write_sample_grid(self.generator, self.sample_rgb, self.run_dir / "samples" / f"epoch_{epoch:04d}.png")

    @contextlib.contextmanager
    def _history_writer(self):
        """Per-step CSV, appended on resume (rows past the restored step are dropped
        first, so a killed run never leaves duplicated steps)."""
        path = self.run_dir / "history.csv"
        fields = ["step", "phase", "d_loss", "g_loss", "g_l1", "g_total"]
        _truncate_history(path, int(self.step.numpy()))
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="")
            if new:
                writer.writeheader()
            yield (f, writer)

    def _log(self, step, phase, logs, history):
        f, writer = history
        writer.writerow({"step": step, "phase": phase, **logs})
        f.flush()
        with self.writer.as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(name, value)


def _remove_unfinished_checkpoints(folder: Path) -> None:
    """TensorFlow writes a checkpoint into ``ckpt-N_temp*`` and then moves it into
    place; a process killed in between leaves that folder behind. Nothing refers
    to it (the ``checkpoint`` index names only finished ones), so it goes."""
    for leftover in folder.glob("ckpt-*_temp*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink()


def _truncate_history(path: Path, last_step: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= last_step]
    if len(kept) != len(rows):
        atomic_write_text(path, "".join(",".join(r) + "\n" for r in kept))


def train_gan(config: TrainConfig, resume: bool = False, verbose: int = 1, build=None, make_step=None) -> Path:
    """Train the U-Net generator against the PatchGAN; returns the run folder
    (``build`` and ``make_step``: see ``GanTrainer``)."""
    strategy = make_strategy(config.strategy)
    with distributed.worker(strategy) as worker:
        run_dir, config, split = worker.prepare_run(config, resume)
        trainer = GanTrainer(config, run_dir, split, build=build, make_step=make_step, worker=worker)
        trainer.train(verbose=verbose)
        with atomic_path(run_dir / "checkpoints" / "generator.keras") as tmp:
            trainer.generator.save(tmp)
    return worker.run_folder
