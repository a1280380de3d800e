"""The ``fit`` recipes: regression (L2/L1 on ab) and Zhang's classification
(rebalanced cross-entropy over ab bins), trained with Keras ``fit`` and the
callbacks that make a run folder: the epoch records (checkpoints, history,
sample grids, resume state; ``records.py``), TensorBoard logs, and a guard that
stops at the first non-finite loss.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras

from colorkit import losses, quantize, runs
from colorkit.errors import ColorkitError
from colorkit.experiments import TrainConfig
from colorkit.training.records import EpochRecords
from colorkit.training.setup import (
    build_model, classification_bins, fixed_validation_batch, jit_setting, make_datasets, make_optimizer, make_strategy,
    precision_policy, prepare_run, probe_split, record_start, write_sample_grid,
)


class NonFiniteGuard(keras.callbacks.Callback):
    """Stop at the first batch whose loss is nan or inf.

    It raises instead of setting ``stop_training`` so that no end-of-epoch
    callback runs: the records committed stay those of the previous epoch."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise ColorkitError(
                f"training diverged (loss={float(loss)}) at batch {batch}; the last good checkpoint is kept; "
                "lower the learning rate or use float32"
            )


def regression_colorizer(model):
    return model


def classification_colorizer(temperature, bins):
    def wrap(model):
        from colorkit.models.zhang import zhang_inference_model

        return zhang_inference_model(model, temperature=temperature, bins=bins)

    return wrap


def compile_model(model, config: TrainConfig, class_weights=None, bins=None):
    if config.loss == "rebalanced_ce":
        loss = losses.RebalancedCrossEntropy(class_weights, from_logits=True, bins=bins)
    else:
        loss = config.loss
    model.compile(optimizer=make_optimizer(config), loss=loss, jit_compile=jit_setting(config))
    return model


def fit(config: TrainConfig, resume: bool = False, verbose: int = 1, extra_callbacks=(), build=None) -> Path:
    """Train a regression or classification model with Keras ``fit``; returns the run folder.

    ``build``: a function ``config -> keras.Model`` to train instead of the model
    ``config.model`` names (a notebook's edited architecture); it is called
    inside the distribution strategy and precision policy, as models must be."""
    run_dir, config, split = prepare_run(config, resume)
    strategy = make_strategy(config.strategy)
    with precision_policy(config.mixed_precision), strategy.scope():
        model = (build or build_model)(config)
    files = probe_split(split)
    train, val = make_datasets(config, files)
    if config.steps_per_epoch:
        train = train.repeat()
    sample_rgb = fixed_validation_batch(config, files)
    record_start(run_dir, config, split, model)

    bins = classification_bins(config) if config.loss == "rebalanced_ce" else None
    class_weights, colorizer = None, regression_colorizer
    if bins is not None:
        prior = runs.prior(run_dir, config, files, bins)
        class_weights = quantize.rebalance_weights(prior, lam=config.rebalance_lambda)
        colorizer = classification_colorizer(config.temperature, bins)
    with precision_policy(config.mixed_precision), strategy.scope():
        compile_model(model, config, class_weights, bins)

    grid = lambda model, path: write_sample_grid(colorizer(model), sample_rgb, path)  # noqa: E731
    records = EpochRecords(run_dir, colorizer=colorizer, sample_grid=grid, sample_every=config.sample_every,
                           keep=config.keep)
    tensorboard = keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False, profile_batch=0)
    model.fit(
        train, validation_data=val, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch,
        initial_epoch=records.epochs_done, callbacks=[NonFiniteGuard(), records, tensorboard, *extra_callbacks],
        verbose=verbose,
        shuffle=False,  # the pipeline reshuffles every epoch itself (seeded)
    )
    return run_dir
