"""The ``fit`` recipes: regression (L2/L1 on ab) and Zhang's classification
(rebalanced cross-entropy over ab bins), trained with Keras ``fit`` and the
callbacks that make a run folder: the epoch records (checkpoints, history,
sample grids, resume state; ``records.py``), TensorBoard logs, and a guard that
stops at the first non-finite loss.

Across machines (``multi_worker``) Keras' ``fit`` fails upstream (it reduces a
batch of data across workers outside a graph: keras-team/keras#20585), so
``fit_across_workers`` runs its loop: the same compiled step
(``Model.train_step``, ``Model.test_step``) on every replica, the same
callbacks, the same logs. The loss is defined once, by ``compile_model``.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import tensorflow as tf

from colorkit import losses, quantize, runs
from colorkit.errors import ColorkitError
from colorkit.experiments import TrainConfig
from colorkit.training import distributed
from colorkit.training.records import EpochRecords
from colorkit.training.setup import (
    build_model, classification_bins, decide_jit, fixed_validation_batch, jit_setting, make_optimizer, make_strategy,
    on_replicas, precision_policy, probe_split, record_jit_choice, record_start, steps_per_epoch, trial_batch,
    write_sample_grid,
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


def compile_model(model, config: TrainConfig, class_weights=None, bins=None, jit_compile=None):
    """Compile ``model`` with the run's optimiser and loss; ``jit_compile``: True or
    False (``decide_jit``'s choice), or None for ``jit_setting(config)``."""
    if config.loss == "rebalanced_ce":
        loss = losses.RebalancedCrossEntropy(class_weights, from_logits=True, bins=bins)
    else:
        loss = config.loss
    jit = jit_setting(config) if jit_compile is None else jit_compile
    model.compile(optimizer=make_optimizer(config), loss=loss, jit_compile=jit)
    return model


def decide_fit_jit(model, config: TrainConfig, steps: int, val, class_weights=None, bins=None) -> dict:
    """``decide_jit`` for a ``fit`` run of ``steps`` batches an epoch: the trial trains
    ``model`` without XLA and a copy of it with, on a validation batch; ``model``'s
    weights are put back afterwards."""

    def trial_step(jit):
        trained = copy_of(model) if jit else model
        compile_model(trained, config, class_weights, bins, jit_compile=jit)
        batch = trial_batch(val, config.batch_size)
        return lambda: trained.train_on_batch(*batch)

    return decide_jit(config, config.epochs * steps if steps > 0 else None, trial_step, model.variables)


def copy_of(model: keras.Model) -> keras.Model:
    """Another model of the same architecture holding the same weights."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def fit(config: TrainConfig, resume: bool = False, verbose: int = 1, extra_callbacks=(), build=None) -> Path:
    """Train a regression or classification model with Keras ``fit``; returns the run folder.

    ``build``: a function ``config -> keras.Model`` to train instead of the model
    ``config.model`` names (a notebook's edited architecture); it is called
    inside the distribution strategy and precision policy, as models must be.
    Under ``multi_worker`` every worker calls this (``distributed`` says what
    differs between them) and the loop is ``fit_across_workers``."""
    strategy = make_strategy(config.strategy)
    with distributed.worker(strategy) as worker:
        run_dir, config, split = worker.prepare_run(config, resume)
        with precision_policy(config.mixed_precision), strategy.scope():
            model = (build or build_model)(config)
        files = probe_split(split)
        train, val = worker.datasets(config, files)
        sample_rgb = fixed_validation_batch(config, files)
        record_start(run_dir, config, split, model)

        bins = classification_bins(config) if config.loss == "rebalanced_ce" else None
        class_weights, colorizer = None, regression_colorizer
        if bins is not None:
            prior = worker.array_from_chief(lambda: runs.prior(run_dir, config, files, bins))
            class_weights = quantize.rebalance_weights(prior, lam=config.rebalance_lambda)
            colorizer = classification_colorizer(config.temperature, bins)
        with precision_policy(config.mixed_precision), strategy.scope():
            steps = steps_per_epoch(config, files, strategy.num_replicas_in_sync)
            jit = decide_fit_jit(model, config, steps, val, class_weights, bins)
            record_jit_choice(run_dir, jit)
            compile_model(model, config, class_weights, bins, jit_compile=jit["jit_compile"])

        grid = lambda model, path: write_sample_grid(colorizer(model), sample_rgb, path)  # noqa: E731
        records = EpochRecords(run_dir, colorizer=colorizer, sample_grid=grid, sample_every=config.sample_every,
                               keep=config.keep)
        records.state = worker.share(records.state)  # the chief's: every worker then decides alike what to save
        tensorboard = keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False, profile_batch=0)
        callbacks = [NonFiniteGuard(), records, tensorboard, *extra_callbacks]
        if worker.multi:
            fit_across_workers(model, worker, train, val, config.epochs, records.epochs_done, steps,
                               bool(config.steps_per_epoch), callbacks, worker.verbose(verbose))
        else:
            model.fit(
                train, validation_data=val, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch,
                initial_epoch=records.epochs_done, callbacks=callbacks, verbose=verbose,
                shuffle=False,  # the pipeline reshuffles every epoch itself (seeded)
            )
    return worker.run_folder


def fit_across_workers(model, worker, train, val, epochs: int, initial_epoch: int, steps: int, repeating: bool,
                       callbacks, verbose: int) -> None:
    """``Model.fit``'s loop over distributed datasets: ``steps`` batches an epoch,
    then the validation pass, with the callbacks called as ``fit`` calls them.
    Logs are the global batch's: per step the replicas' mean, per epoch the
    metrics read across replicas.

    The batches are the ones ``fit`` reads on one machine. Data that is
    ``repeating`` is read by one iterator for the whole run. A finite dataset
    is read anew each epoch, and ``fit`` starts a pass at the end of each epoch
    that it never reads (its next epoch starts another): its epoch k reads
    pass 2k + 1 of the dataset, each pass reshuffled. This loop skips a pass
    the same way.

    Once the callbacks have begun (the chief has loaded a resumed run's
    weights), every worker takes the chief's weights and optimiser state."""
    train_step = on_replicas(worker.strategy, model.train_step)
    test_step = on_replicas(worker.strategy, model.test_step)
    read_metrics = tf.function(model.get_metrics_result)
    callbacks = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                                             verbose=verbose, epochs=epochs, steps=steps)
    model.stop_training = False
    if not model.optimizer.built:  # under the strategy, before the callbacks begin, as fit builds it
        with worker.strategy.scope():
            model.optimizer.build(model.trainable_variables)
    callbacks.on_train_begin()
    worker.sync(model.weights + list(model.optimizer.variables))
    batches = iter(train) if repeating else None
    logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        for step, batch in zip(range(steps), batches or iter(train)):
            callbacks.on_train_batch_begin(step)
            callbacks.on_train_batch_end(step, _numbers(train_step(batch)))
        if not repeating:
            iter(train)  # the pass fit starts and never reads (see above)
        logs = _numbers(read_metrics())
        model.reset_metrics()
        for batch in val:
            test_step(batch)
        logs.update({f"val_{name}": value for name, value in _numbers(read_metrics()).items()})
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)


def _numbers(logs: dict) -> dict:
    return {name: float(value) for name, value in logs.items()}
