"""What both trainers (``fit.py`` and ``gan.py``) need before their first step:
the run folder started, the datasets, the strategy and precision, the optimiser,
the model, and the sample grids they write while training.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from colorkit import cluster, color, hints, models, report, runs
from colorkit.data import pipeline, splits
from colorkit.experiments import TrainConfig

SAMPLE_COUNT = 6  # images in each sample grid
#: A hint model's sample grids show it with this many points drawn from the truth.
SAMPLE_HINTS = 10


def prepare_run(config: TrainConfig, resume: bool) -> tuple[Path, TrainConfig, dict]:
    """The run folder, the config to train with and the split, checked before
    anything is written: a bad value or a missing dataset leaves no trace on disk.
    Seeds Python, numpy and TensorFlow with the run's seed. A resumed run keeps
    its saved configuration but the strategy asked for now: the hardware is the
    invocation's (a run started on one machine may continue on several)."""
    run_dir, resolved = runs.resolve(config, resume)
    config = resolved.replace(strategy=config.strategy)
    config.check()
    split = runs.load_split(config)
    keras.utils.set_random_seed(config.seed)
    return run_dir, config, split


def record_start(run_dir: Path, config: TrainConfig, split: dict, model: keras.Model) -> None:
    """Create the run folder and write ``split.json`` and ``config.json`` (with the
    model's fingerprint), once the model is built: building checks its options."""
    runs.create(run_dir)
    splits.write_manifest(split, run_dir / "split.json", dataset=config.dataset, seed=config.seed)
    runs.write_config(run_dir, config, split, model)


# --- Data -------------------------------------------------------------------------


def probe_split(split: dict) -> dict:
    """The training and validation files, each probed once for every dataset the
    run makes from them (the validation split falls back to the training one when empty)."""
    train = pipeline.probe_files(split["train"])
    return {"train": train, "val": pipeline.probe_files(split["val"]) if split["val"] else train}


def make_datasets(config: TrainConfig, files: dict, shard: pipeline.Shard | None = None):
    """(train, val) tf.data pipelines of (normalised L, target) from ``probe_split``'s files;
    the training one repeats when the config counts ``steps_per_epoch`` (each
    epoch then takes that many batches). ``shard``: this input pipeline's part
    of a distributed run (``pipeline.Shard``).

    Regression targets are ``ab / 110`` at full resolution. The classification
    head's target is ``ab / 110`` averaged down to its quarter resolution: the
    rebalanced loss soft-encodes it next to the model (2 numbers per pixel
    travel through the pipeline instead of Q)."""
    common = dict(image_size=config.image_size, batch_size=config.batch_size, seed=config.seed, shard=shard)
    train = pipeline.make_dataset(files["train"], augment=config.augment, shuffle=True, repeat=False, **common)
    val = pipeline.make_dataset(files["val"], augment=False, shuffle=False, **common)
    if config.steps_per_epoch:
        train = train.repeat()
    if config.loss == "rebalanced_ce":
        train = train.map(_quarter_resolution_target, num_parallel_calls=tf.data.AUTOTUNE)
        val = val.map(_quarter_resolution_target)
    if config.hints:
        simulate = dict(global_hints=config.global_hints, location=config.hint_location)
        train = hints.with_simulated_hints(train, seed=config.seed, **simulate)
        val = hints.with_simulated_hints(val, seed=config.seed + 1, new_each_epoch=False, **simulate)
    return train, val


def steps_per_epoch(config: TrainConfig, files: dict, replicas: int = 1) -> int:
    """The training steps of one epoch: the config's ``steps_per_epoch``, else one
    pass over the training files in global batches (``pipeline.epoch_batch_sizes``)."""
    return config.steps_per_epoch or len(pipeline.epoch_batch_sizes(len(files["train"]), config.batch_size, replicas))


def _quarter_resolution_target(l_norm, ab_norm):
    """The classification head predicts at 1/4 resolution: its target ab is the mean of each 4x4 block."""
    return l_norm, tf.nn.avg_pool2d(ab_norm, 4, 4, "VALID")


def fixed_validation_batch(config: TrainConfig, files: dict) -> np.ndarray:
    """The RGB images every sample grid shows, the same at every epoch: evenly
    spread over the (sorted) validation files, so a split holding several kinds
    of image (the sample set's photos and shapes) shows each of them."""
    candidates = files["val"]
    chosen = candidates[:: max(1, len(candidates) // SAMPLE_COUNT)][:SAMPLE_COUNT]
    rgb = pipeline.make_rgb_dataset(chosen, image_size=config.image_size, batch_size=len(chosen))
    return next(iter(rgb)).numpy()


# --- Hardware options ---------------------------------------------------------------


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``mirrored`` uses every GPU of this machine (every logical CPU when there is
    none, which is how the tests exercise it); ``multi_worker`` is the cluster
    this process joined (``colorkit.cluster``: TF_CONFIG, and before TensorFlow's first op)."""
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return cluster.join()
    return tf.distribute.get_strategy()


def on_replicas(strategy: tf.distribute.Strategy, step):
    """``step(*batch)`` run on every replica of ``strategy`` and its outputs (a dict
    of scalars) averaged over them, as one graph: what Keras' ``fit`` does with a
    step under a strategy. Replicas hold equal shares of the global batch, so
    the mean of their means is the global batch's mean."""

    @tf.function(reduce_retracing=True)
    def run(*batch):
        outputs = strategy.run(step, args=batch)
        return {name: strategy.reduce("MEAN", value, axis=None) for name, value in outputs.items()}

    return run


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
    of both trainers; a notebook can pass its own function instead)."""
    options = dict(config.model_options)
    if config.hints:
        options["hints"] = True
    if config.global_hints:
        options["global_hints"] = True
    return models.build(config.model, input_shape=(config.image_size, config.image_size, 1), seed=config.seed, **options)


# --- Sample grids -------------------------------------------------------------------


def write_sample_grid(colorizer: keras.Model, rgb: np.ndarray, path: Path) -> None:
    """Colorize ``rgb`` from its L (BatchNorm in inference mode) and save a grid
    gray | prediction | truth; a hint model also gets ``SAMPLE_HINTS`` points
    drawn from the true colours."""
    l_norm, ab_true = color.rgb_to_model_io(rgb)
    count = SAMPLE_HINTS if hints.takes_hints(colorizer) else 0
    feed = hints.feed_with_true_hints(colorizer, l_norm.numpy(), ab_true, count)
    ab_norm = colorizer(feed, training=False)
    pred = color.model_io_to_rgb(l_norm, tf.cast(ab_norm, tf.float32)).numpy()
    report.colorization_grid(color.rgb_to_gray(rgb), pred, rgb, path)
