"""Training: ``train(config)`` runs one configuration with its trainer, and
``run_experiment(name, scale)`` runs a report's recipe into the run folder the
notebooks share.

Rooms: ``setup`` (what both trainers need: the run started, datasets, strategy,
precision, optimiser, model, sample grids), ``fit`` (Keras ``fit`` recipes and
their callbacks), ``gan`` (the explicit ``@tf.function`` adversarial step and
its loop). The run folder itself is ``colorkit.runs``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from colorkit import runs
from colorkit.experiments import TrainConfig, experiment_config
from colorkit.training.fit import fit
from colorkit.training.gan import train_gan
from colorkit.training.setup import build_model, precision_policy

__all__ = ["train", "run_experiment", "fit", "train_gan"]


def train(config: TrainConfig, resume: bool = False, verbose: int = 1, **custom) -> Path:
    """Train with the configured trainer; returns the run folder. ``custom``: ``build``
    (both trainers) or ``make_step`` (the GAN), see ``fit`` and ``gan.GanTrainer``."""
    return (train_gan if config.trainer == "gan" else fit)(config, resume=resume, verbose=verbose, **custom)


def run_experiment(name: str, scale: str = "quick", variant: str | None = None, resume: bool = True,
                   data_root=None, verbose: int = 1, build=None, make_step=None, **overrides) -> Path:
    """Train the report experiment ``name`` (see ``colorkit.experiments``) at ``scale``
    into ``runs.experiment_run_dir(name, scale, variant)``; returns the run folder.

    With ``resume`` a run already there continues where it stopped, or is reused
    as it is when finished (re-running a notebook cell costs nothing), but only
    when its configuration and model are the ones asked for now: after an edit
    of the architecture or a hyper-parameter it says so and trains anew.
    Without ``resume`` the old run is deleted and training starts over."""
    config = experiment_config(name, scale, data_root=data_root, **overrides)
    out = runs.experiment_run_dir(name, scale, variant)
    config = config.replace(out=str(out))
    exists = (out / "config.json").exists()
    if exists and resume:
        with precision_policy(config.mixed_precision):
            changed = runs.differences(out, config, (build or build_model)(config))
        if changed:
            print(f"{out} was trained differently ({'; '.join(changed)}): training it anew")
            resume = False
    if exists and not resume:
        shutil.rmtree(out)
    custom = {key: value for key, value in (("build", build), ("make_step", make_step)) if value is not None}
    return train(config, resume=exists and resume, verbose=verbose, **custom)
