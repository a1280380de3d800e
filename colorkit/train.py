"""Training: Keras ``fit`` recipes for the regression and classification models,
and the explicit ``@tf.function`` loop of the conditional GAN.

Every run writes one folder::

    RUN/config.json        all hyper-parameters, seed, package versions, git commit, data + split
    RUN/split.json         the split manifest (which file went where)
    RUN/checkpoints/       best.keras and last.keras (fit), or tf.train checkpoints (GAN)
    RUN/backup/            BackupAndRestore state: a killed fit run resumes from its last epoch
    RUN/history.csv        one row per epoch (fit) or per step (GAN), appended on resume
    RUN/logs/              TensorBoard
    RUN/samples/           colorizations of a fixed validation batch, every few epochs

A run folder that already holds a run is only reused with ``resume=True``; the
saved ``config.json`` then wins over anything passed in, except ``epochs``
(so a finished run can be extended).
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from colorkit import color, hints, losses, models, quantize, report
from colorkit.data import sources, splits
from colorkit.data import pipeline
from colorkit.errors import ColorkitError
from colorkit.experiments import TrainConfig, experiment_config
from colorkit.io import atomic_path, atomic_write_text

CHOICES = {
    "trainer": ("fit", "gan"),
    "loss": ("mse", "mae", "rebalanced_ce"),
    "optimizer": ("adam", "rmsprop"),
    "strategy": ("default", "mirrored", "multi_worker"),
    "mixed_precision": ("float32", "mixed_float16", "mixed_bfloat16"),
    "jit_compile": ("auto", "on", "off"),
    "gan_loss": ("bce", "lsgan"),
}
SAMPLE_COUNT = 6  # images in each sample grid
#: The families with a user-guided (hint) variant; global hints only on the U-Net.
HINT_MODELS = ("unet_generator", "strided_cnn")


# --- Checking a configuration before any work starts --------------------------


def validate(config: TrainConfig) -> None:
    """Refuse absurd values with one clear sentence, before data or models load."""
    for name, allowed in CHOICES.items():
        if getattr(config, name) not in allowed:
            raise ColorkitError(f"--{name.replace('_', '-')} must be one of {allowed}, got {getattr(config, name)!r}")
    if config.model not in models.available():
        raise ColorkitError(f"unknown model {config.model!r}; available: {', '.join(models.available())}")
    _check_range("epochs", config.epochs, 1, 100_000)
    _check_range("batch_size", config.batch_size, 1, 4096)
    _check_range("image_size", config.image_size, 8, 4096)
    _check_range("learning_rate", config.learning_rate, 1e-8, 10.0)
    _check_range("pretrain_epochs", config.pretrain_epochs, 0, 100_000)
    _check_range("l1_weight", config.l1_weight, 0.0, 1e6)
    _check_range("temperature", config.temperature, 1e-3, 10.0)
    _check_range("rebalance_lambda", config.rebalance_lambda, 0.0, 1.0)
    if config.steps_per_epoch is not None:
        _check_range("steps_per_epoch", config.steps_per_epoch, 1, 10_000_000)
    multiple = models.required_multiple(config.model, **config.model_options)
    if config.image_size % multiple:
        raise ColorkitError(
            f"--image-size {config.image_size} cannot go through {config.model}: use a multiple of {multiple}"
        )
    if config.trainer == "gan" and config.loss == "rebalanced_ce":
        raise ColorkitError("the GAN trainer regresses ab with L1; the rebalanced cross-entropy is for zhang_eccv16")
    if config.loss == "rebalanced_ce" and not _is_classifier(config.model, config.model_options):
        what = f"{config.model} with head=regression" if config.model.startswith("zhang") else config.model
        raise ColorkitError(f"--loss rebalanced_ce needs a classification model (zhang_eccv16), not {what}")
    if config.loss != "rebalanced_ce" and _is_classifier(config.model, config.model_options):
        raise ColorkitError(
            f"{config.model} predicts ab bins: train it with --loss rebalanced_ce, or regress ab with "
            f"--loss {config.loss} and --model-option head=regression"
        )
    if config.hints and config.model not in HINT_MODELS:
        raise ColorkitError(f"--hints needs a model with a hint variant ({', '.join(HINT_MODELS)}), not {config.model}")
    if config.global_hints and (not config.hints or config.model != "unet_generator"):
        raise ColorkitError("--global-hints needs --hints and the unet_generator model")
    if config.hint_location not in hints.LOCATIONS:
        raise ColorkitError(f"--hint-location must be one of {hints.LOCATIONS}, got {config.hint_location!r}")
    if config.jit_compile == "on" and config.strategy != "default":
        raise ColorkitError("--jit-compile on cannot be forced together with a distribution strategy; use auto")


def _check_range(name, value, low, high):
    if not isinstance(value, (int, float)) or not (low <= value <= high) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        raise ColorkitError(f"--{name.replace('_', '-')} must be between {low} and {high}, got {value!r}")


def _is_classifier(model_name: str, model_options=None) -> bool:
    """Whether the model predicts ab bins (Zhang's head) rather than ab itself."""
    return model_name.startswith("zhang") and (model_options or {}).get("head", "classification") != "regression"


# --- Run folder -----------------------------------------------------------------


#: Environment variable naming the folder that holds run folders (default: the repository's runs/).
RUNS_ENV = "COLORKIT_RUNS_DIR"


def runs_root() -> Path:
    """Where runs go when no ``out`` is given: ``$COLORKIT_RUNS_DIR`` or the repository's ``runs/``."""
    return Path(os.environ.get(RUNS_ENV) or Path(__file__).resolve().parents[1] / "runs")


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return runs_root() / f"{config.model}-{stamp}"


def resolve_run(config: TrainConfig, resume: bool) -> tuple[Path, TrainConfig]:
    """The run folder and the config to train with; touches nothing on disk.

    A folder holding a run is only reused with ``resume``; its saved config then
    wins over ``config`` except for ``epochs`` (so a finished run can be extended)."""
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    config_path = run_dir / "config.json"
    if config_path.exists():
        if not resume:
            raise ColorkitError(f"{run_dir} already holds a run: pass --resume to continue it or choose another --out")
        saved = json.loads(config_path.read_text())["config"]
        config = TrainConfig.from_dict({**saved, "epochs": config.epochs, "out": str(run_dir)})
    elif resume:
        raise ColorkitError(f"nothing to resume: {config_path} does not exist")
    return run_dir, config.replace(out=str(run_dir))


def prepare_run_dir(config: TrainConfig, resume: bool) -> tuple[Path, TrainConfig]:
    """``resolve_run``, then create the run folder's sub-folders."""
    run_dir, config = resolve_run(config, resume)
    for sub in ("checkpoints", "samples", "logs"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    return run_dir, config


def start_run(config: TrainConfig, resume: bool) -> tuple[Path, TrainConfig, dict]:
    """Everything before the first step, in the order that keeps mistakes cheap:
    check the values and the data first, and only then create the run folder,
    seed, and write ``split.json`` and ``config.json``. Returns (folder, config, split)."""
    run_dir, config = resolve_run(config, resume)
    validate(config)
    split = load_data_split(config)
    run_dir, config = prepare_run_dir(config, resume)
    keras.utils.set_random_seed(config.seed)
    splits.write_manifest(split, run_dir / "split.json", dataset=config.dataset, seed=config.seed)
    write_config(run_dir, config, split)
    return run_dir, config, split


def environment_info() -> dict:
    """Package versions and the git commit, so a result can be traced to its code."""
    import matplotlib
    import pandas
    import PIL
    import skimage

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scikit-image": skimage.__version__,
        "matplotlib": matplotlib.__version__,
        "pandas": pandas.__version__,
        "pillow": PIL.__version__,
        "git_commit": _git_commit(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_config(run_dir: Path, config: TrainConfig, split: dict) -> None:
    info = {
        "config": config.to_dict(),
        "environment": environment_info(),
        "data": {"dataset": config.dataset, "root": config.root, "counts": {k: len(v) for k, v in split.items()}},
        "split_manifest": "split.json",
    }
    atomic_write_text(run_dir / "config.json", json.dumps(info, indent=2))


def load_run_config(run_dir) -> TrainConfig:
    """The ``TrainConfig`` saved in a run folder (for evaluate, colorize, export)."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise ColorkitError(f"{run_dir} is not a run folder: {path} is missing")
    return TrainConfig.from_dict(json.loads(path.read_text())["config"])


# --- Data -------------------------------------------------------------------------


def load_data_split(config: TrainConfig) -> dict:
    """The run's train/val/test file lists (the sample set is built if missing)."""
    return sources.load_split(config.dataset, config.root, seed=config.seed, **config.dataset_options)


def make_datasets(config: TrainConfig, split: dict):
    """(train, val) tf.data pipelines of (normalised L, target).

    Regression targets are ``ab / 110`` at full resolution. The classification
    head's target is ``ab / 110`` averaged down to its quarter resolution: the
    rebalanced loss soft-encodes it next to the model (2 numbers per pixel
    travel through the pipeline instead of Q)."""
    common = dict(image_size=config.image_size, batch_size=config.batch_size, seed=config.seed)
    train = pipeline.make_dataset(split["train"], augment=config.augment, shuffle=True, repeat=False, **common)
    val = pipeline.make_dataset(split["val"] or split["train"], augment=False, shuffle=False, **common)
    if config.loss == "rebalanced_ce":
        train = train.map(_quarter_resolution_target, num_parallel_calls=tf.data.AUTOTUNE)
        val = val.map(_quarter_resolution_target)
    if config.hints:
        simulate = dict(global_hints=config.global_hints, location=config.hint_location)
        train = hints.with_simulated_hints(train, seed=config.seed, **simulate)
        val = hints.with_simulated_hints(val, seed=config.seed + 1, new_each_epoch=False, **simulate)
    return train, val


def _quarter_resolution_target(l_norm, ab_norm):
    """The classification head predicts at 1/4 resolution: its target ab is the mean of each 4x4 block."""
    return l_norm, tf.nn.avg_pool2d(ab_norm, 4, 4, "VALID")


def fixed_validation_batch(config: TrainConfig, split: dict) -> np.ndarray:
    """The RGB images every sample grid shows, the same at every epoch: evenly
    spread over the (sorted) validation split, so a split holding several kinds
    of image (the sample set's photos and shapes) shows each of them."""
    candidates = split["val"] or split["train"]
    paths = candidates[:: max(1, len(candidates) // SAMPLE_COUNT)][:SAMPLE_COUNT]
    rgb = pipeline.make_rgb_dataset(paths, image_size=config.image_size, batch_size=len(paths))
    return next(iter(rgb)).numpy()


# --- Hardware options ---------------------------------------------------------------


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``mirrored`` uses every GPU of this machine (every logical CPU when there is
    none, which is how the tests exercise it); ``multi_worker`` reads TF_CONFIG."""
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def precision_policy(name: str):
    """Build models under a mixed-precision policy, then restore the global one
    (Keras keeps it in a global, which would leak into the next run otherwise)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def jit_setting(config: TrainConfig):
    """Keras' jit_compile value: never forced on under a distribution strategy."""
    if config.strategy != "default":
        return False
    return {"auto": "auto", "on": True, "off": False}[config.jit_compile]


def make_optimizer(config: TrainConfig, learning_rate=None) -> keras.optimizers.Optimizer:
    lr = learning_rate or config.learning_rate
    if config.optimizer == "rmsprop":
        optimizer = keras.optimizers.RMSprop(lr)
    else:
        optimizer = keras.optimizers.Adam(lr, beta_1=config.beta_1)
    if config.mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def build_model(config: TrainConfig) -> keras.Model:
    """The model ``config`` names, at the run's image size (the default ``build``
    of ``fit`` and ``train_gan``; a notebook can pass its own function instead)."""
    options = dict(config.model_options)
    if config.hints:
        options["hints"] = True
    if config.global_hints:
        options["global_hints"] = True
    return models.build(config.model, input_shape=(config.image_size, config.image_size, 1), seed=config.seed, **options)


# --- Callbacks for fit ----------------------------------------------------------------


class NonFiniteGuard(keras.callbacks.Callback):
    """Stop at the first batch whose loss is nan or inf.

    It raises instead of setting ``stop_training`` so that no end-of-epoch
    callback runs: the last good checkpoint and the BackupAndRestore state stay
    those of the previous epoch."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise ColorkitError(
                f"training diverged (loss={float(loss)}) at batch {batch}; the last good checkpoint is kept; "
                "lower the learning rate or use float32"
            )


class AtomicCheckpoint(keras.callbacks.Callback):
    """Save the model to ``path`` as ``.keras`` at the end of each epoch, or only
    when ``monitor`` improves. Written to a temporary file and renamed, so a
    crash mid-save never leaves a broken checkpoint behind."""

    def __init__(self, path, monitor=None):
        super().__init__()
        self.path, self.monitor = Path(path), monitor
        self.best = math.inf

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is not None:
            value = (logs or {}).get(self.monitor)
            if value is None or not value < self.best:
                return
            self.best = float(value)
        with atomic_path(self.path) as tmp:
            self.model.save(tmp)


class SampleGrid(keras.callbacks.Callback):
    """Every ``every`` epochs, colorize a fixed validation batch and save a grid
    gray | prediction | truth, so a student can watch the colours appear."""

    def __init__(self, rgb_batch, folder, every=1, colorizer=None):
        super().__init__()
        self.rgb, self.folder, self.every = rgb_batch, Path(folder), max(1, every)
        self.colorizer = colorizer

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            write_sample_grid(self.colorizer(self.model), self.rgb, self.folder / f"epoch_{epoch + 1:04d}.png")


#: A hint model's sample grids show it with this many points drawn from the truth.
SAMPLE_HINTS = 10


def write_sample_grid(colorizer: keras.Model, rgb: np.ndarray, path: Path) -> None:
    """Colorize ``rgb`` from its L (BatchNorm in inference mode) and save a grid;
    a hint model also gets ``SAMPLE_HINTS`` points drawn from the true colours."""
    l_norm, ab_true = color.rgb_to_model_io(rgb)
    feed = hints.feed_with_true_hints(colorizer, l_norm.numpy(), ab_true, SAMPLE_HINTS if hints.takes_hints(colorizer) else 0)
    ab_norm = colorizer(feed, training=False)
    pred = color.model_io_to_rgb(l_norm, tf.cast(ab_norm, tf.float32)).numpy()
    report.colorization_grid(color.rgb_to_gray(rgb), pred, rgb, path)


def regression_colorizer(model):
    return model


def classification_colorizer(temperature, bins):
    def wrap(model):
        from colorkit.models.zhang import zhang_inference_model

        return zhang_inference_model(model, temperature=temperature, bins=bins)

    return wrap


# --- The fit recipes ---------------------------------------------------------------------


def compile_model(model, config: TrainConfig, class_weights=None, bins=None):
    if config.loss == "rebalanced_ce":
        loss = losses.RebalancedCrossEntropy(class_weights, from_logits=True, bins=bins)
    else:
        loss = config.loss
    model.compile(optimizer=make_optimizer(config), loss=loss, jit_compile=jit_setting(config))
    return model


def fit_callbacks(run_dir: Path, config: TrainConfig, sample_rgb, colorizer):
    return [
        NonFiniteGuard(),
        # Kept after the last epoch, so resuming a finished run trains nothing and
        # raising ``epochs`` continues from the end instead of starting over.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        AtomicCheckpoint(run_dir / "checkpoints" / "best.keras", monitor="val_loss"),
        AtomicCheckpoint(run_dir / "checkpoints" / "last.keras"),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False, profile_batch=0),
        SampleGrid(sample_rgb, run_dir / "samples", every=config.sample_every, colorizer=colorizer),
    ]


def training_prior(run_dir: Path, config: TrainConfig, split: dict, bins) -> np.ndarray:
    """The empirical prior over the ab bins from the training pixels. Saved in the
    run folder, so resuming, evaluating (rebalanced AuC) and the notebook reuse it."""
    path = Path(run_dir) / "prior.npy"
    if path.exists():
        return np.load(path)
    train_rgb = pipeline.make_dataset(split["train"], image_size=config.image_size, batch_size=32)
    prior = quantize.empirical_prior((color.denormalize_ab(ab) for _, ab in train_rgb), bins=bins)
    with atomic_path(path) as tmp:
        np.save(tmp, prior)
    return prior


def fit(config: TrainConfig, resume: bool = False, verbose: int = 1, extra_callbacks=(), build=None) -> Path:
    """Train a regression or classification model with Keras ``fit``; returns the run folder.

    ``build``: a function ``config -> keras.Model`` to train instead of the model
    ``config.model`` names (a notebook's edited architecture); it is called
    inside the distribution strategy and precision policy, as models must be."""
    run_dir, config, split = start_run(config, resume)

    bins = quantize.ab_bins() if config.loss == "rebalanced_ce" else None
    class_weights = None
    colorizer = regression_colorizer
    if bins is not None:
        prior = training_prior(run_dir, config, split, bins)
        class_weights = quantize.rebalance_weights(prior, lam=config.rebalance_lambda)
        colorizer = classification_colorizer(config.temperature, bins)

    train, val = make_datasets(config, split)
    if config.steps_per_epoch:
        train = train.repeat()
    strategy = make_strategy(config.strategy)
    with precision_policy(config.mixed_precision), strategy.scope():
        model = compile_model((build or build_model)(config), config, class_weights, bins)
    callbacks = fit_callbacks(run_dir, config, fixed_validation_batch(config, split), colorizer)
    model.fit(
        train, validation_data=val, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch,
        callbacks=callbacks + list(extra_callbacks), verbose=verbose,
        shuffle=False,  # the pipeline reshuffles every epoch itself (seeded)
    )
    return run_dir


# --- The GAN trainer (pix2pix, as the IJFANS report) --------------------------------------


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
    """The explicit training loop around ``make_gan_train_step``.

    Adds what the TF pix2pix tutorial lacks: a CheckpointManager that resumes
    with its step counter, per-step CSV and TensorBoard scalars, a progress bar,
    sample grids with BatchNorm in inference mode, and a nan/inf guard that stops
    before a poisoned checkpoint is written."""

    def __init__(self, config: TrainConfig, run_dir: Path, split: dict, build=None, make_step=None):
        """``build``: a function ``config -> generator`` (default ``build_model``);
        ``make_step``: a replacement for ``make_gan_train_step`` with its signature
        (a notebook's edited step)."""
        self.config, self.run_dir = config, run_dir
        self.strategy = make_strategy(config.strategy)
        self.train_data, _ = make_datasets(config, split)
        self.sample_rgb = fixed_validation_batch(config, split)
        self.steps_per_epoch = config.steps_per_epoch or _count_batches(self.train_data)
        if config.steps_per_epoch:
            self.train_data = self.train_data.repeat()
        jit = jit_setting(config) is True
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
        self.gan_step = self._distributed(
            (make_step or make_gan_train_step)(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer,
                                config.l1_weight, config.gan_loss, jit)
        )
        self.pretrain_step = self._distributed(make_l1_pretrain_step(self.generator, self.g_optimizer, jit))
        checkpoint = tf.train.Checkpoint(
            generator=self.generator, discriminator=self.discriminator,
            g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer, step=self.step,
        )
        self.manager = tf.train.CheckpointManager(
            checkpoint, str(run_dir / "checkpoints"), max_to_keep=config.max_to_keep
        )
        if self.manager.latest_checkpoint:
            checkpoint.restore(self.manager.latest_checkpoint).expect_partial()
        self.writer = tf.summary.create_file_writer(str(run_dir / "logs"))

    def _distributed(self, step_fn):
        """Run a step on every replica and average its losses (plain call without a strategy)."""
        if self.config.strategy == "default":
            return step_fn

        def run(l_norm, ab_true):
            per_replica = self.strategy.run(step_fn, args=(l_norm, ab_true))
            return {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in per_replica.items()}

        return run

    @property
    def total_steps(self) -> int:
        return (self.config.pretrain_epochs + self.config.epochs) * self.steps_per_epoch

    def train(self, verbose: int = 1) -> int:
        """Train until ``total_steps``; returns the number of steps run in this call."""
        start = int(self.step.numpy())
        if start >= self.total_steps:
            return 0
        data = self.train_data
        if self.config.strategy != "default":
            data = self.strategy.experimental_distribute_dataset(data)
        # Every logged value is the current step's, not a running average: all "stateful".
        progress = keras.utils.Progbar(self.total_steps, verbose=verbose,
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


def _count_batches(dataset) -> int:
    count = int(dataset.cardinality().numpy())
    if count < 0:
        count = sum(1 for _ in dataset)
    if count == 0:
        raise ColorkitError("the training split is empty: add images or lower --batch-size")
    return count


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
    run_dir, config, split = start_run(config, resume)
    trainer = GanTrainer(config, run_dir, split, build=build, make_step=make_step)
    trainer.train(verbose=verbose)
    with atomic_path(run_dir / "checkpoints" / "generator.keras") as tmp:
        trainer.generator.save(tmp)
    return run_dir


def experiment_run_dir(name: str, scale: str, variant: str | None = None) -> Path:
    """``runs/<scale>/<name>[-<variant>]``: where ``run_experiment`` keeps a report
    experiment's run, so every notebook (and 06_compare) finds the same one."""
    return runs_root() / scale / (f"{name}-{variant}" if variant else name)


def run_experiment(name: str, scale: str = "quick", variant: str | None = None, resume: bool = True,
                   data_root=None, verbose: int = 1, build=None, make_step=None, **overrides) -> Path:
    """Train the report experiment ``name`` (see ``colorkit.experiments``) at ``scale``
    into ``experiment_run_dir(name, scale, variant)``; returns the run folder.

    With ``resume`` a run already there continues where it stopped, or is
    reused as it is when finished (re-running a notebook cell costs nothing);
    without it the old run is deleted and training starts over (do that after
    editing an architecture or a hyper-parameter: a resumed run keeps the
    configuration it was started with)."""
    config = experiment_config(name, scale, data_root=data_root, **overrides)
    out = experiment_run_dir(name, scale, variant)
    exists = (out / "config.json").exists()
    if exists and not resume:
        shutil.rmtree(out)
    custom = {key: value for key, value in (("build", build), ("make_step", make_step)) if value is not None}
    return train(config.replace(out=str(out)), resume=exists and resume, verbose=verbose, **custom)


def train(config: TrainConfig, resume: bool = False, verbose: int = 1, **custom) -> Path:
    """Train with the configured trainer; returns the run folder. ``custom``: ``build``
    (both trainers) or ``make_step`` (the GAN), see ``fit`` and ``GanTrainer``."""
    return (train_gan if config.trainer == "gan" else fit)(config, resume=resume, verbose=verbose, **custom)
