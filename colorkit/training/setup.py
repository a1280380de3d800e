"""What both trainers (``fit.py`` and ``gan.py``) need before their first step:
the run folder started, the datasets, the strategy and precision, whether XLA
compiles the step (``decide_jit``), the optimiser, the model, and the sample
grids they write while training.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from colorkit import cluster, color, hints, models, pretrained, quantize, report, runs
from colorkit.data import pipeline, splits
from colorkit.experiments import PRETRAINED, TrainConfig
from colorkit.io import atomic_write_text

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
        simulate = dict(global_hints=config.global_hints, location=config.hint_location, p=config.hint_p)
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


#: ``--jit-compile auto`` times this many training steps each way, alternating, after an
#: untimed one each that traces the step (and compiles it, with XLA).
JIT_TRIAL_STEPS = 5
#: A run of fewer steps trains without XLA untimed: compiling would cost more than it could save.
JIT_TRIAL_MIN_STEPS = 100
#: XLA is chosen only when its step is faster by more than this fraction: closer than that the
#: two tie within the noise, and without XLA a run starts sooner.
JIT_MIN_GAIN = 0.05


def decide_jit(config: TrainConfig, total_steps: int | None, make_trial_step, variables) -> dict:
    """Whether to compile the training step with XLA, and why: the record that goes
    into config.json (``record_jit_choice``), ``{"asked", "jit_compile", "reason"}``
    and, when it measured, ``"seconds_per_step"`` each way.

    "on" and "off" are obeyed; under a distribution strategy XLA stays off. "auto"
    measures on this machine, because which is faster depends on the model, the
    image size and the processor: ``make_trial_step(jit)`` returns a function that
    runs one training step, with or without XLA, on a fixed batch and waits for it.
    Steps of the two kinds alternate, so that a machine busy with other work slows
    both alike. ``variables`` (the models' and the optimisers' that the steps
    change) are put back as they were, so the run starts from where it would have."""
    asked = config.jit_compile
    decision = {"asked": asked}
    if config.strategy != "default":
        return {**decision, "jit_compile": False, "reason": f"XLA stays off under the {config.strategy} strategy"}
    if asked != "auto":
        return {**decision, "jit_compile": asked == "on", "reason": "as asked"}
    if total_steps is not None and total_steps < JIT_TRIAL_MIN_STEPS:
        return {**decision, "jit_compile": False,
                "reason": f"{total_steps} steps: too few to win back compiling, so not timed"}
    saved = [variable.numpy() for variable in variables]
    try:
        seconds = _time_alternately({"off": make_trial_step(False), "on": make_trial_step(True)})
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
        return {**decision, "jit_compile": False, "reason": f"XLA could not compile the step ({type(error).__name__})"}
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)
    faster = seconds["on"] < (1 - JIT_MIN_GAIN) * seconds["off"]
    verdict = "XLA was faster" if faster else f"XLA was not faster by {JIT_MIN_GAIN:.0%}"
    return {**decision, "jit_compile": faster, "seconds_per_step": seconds,
            "reason": f"timed {JIT_TRIAL_STEPS} steps each way: {verdict}"}


def _time_alternately(steps: dict) -> dict:
    """The median seconds of ``JIT_TRIAL_STEPS`` calls of each of ``steps`` (name -> function),
    called in turn, after one untimed call each."""
    for step in steps.values():
        step()
    seconds = {name: [] for name in steps}
    for _ in range(JIT_TRIAL_STEPS):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


def trial_batch(dataset, batch_size: int):
    """The first batch of ``dataset`` (the validation split: reading it leaves the training
    order alone), repeated up to ``batch_size`` examples: what ``decide_jit`` times."""
    first = next(iter(dataset))

    def fill(tensor):
        copies = -(-batch_size // int(tensor.shape[0]))
        return tf.concat([tensor] * copies, axis=0)[:batch_size]

    return tf.nest.map_structure(fill, first)


def record_jit_choice(run_dir: Path, decision: dict) -> None:
    """Add ``decide_jit``'s record to the run's config.json, under "jit_compile"."""
    record = runs.read_record(run_dir)
    record["jit_compile"] = decision
    atomic_write_text(Path(run_dir) / "config.json", json.dumps(record, indent=2))


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
    of both trainers; a notebook can pass its own function instead); with
    ``config.init``, the released ECCV16's logits with the authors' weights."""
    if config.init:
        return pretrained.logits_model(pretrained.load_spec(config.init.removeprefix(PRETRAINED)))
    options = dict(config.model_options)
    if config.hints:
        options["hints"] = True
    if config.global_hints:
        options["global_hints"] = True
    return models.build(config.model, input_shape=(config.image_size, config.image_size, 1), seed=config.seed, **options)


def classification_bins(config: TrainConfig) -> np.ndarray:
    """The ab bins a classification run predicts: the kit's, or the released model's own 313."""
    if config.init:
        return pretrained.bin_centres(pretrained.load_spec(config.init.removeprefix(PRETRAINED)))
    return quantize.ab_bins()


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
