"""One epoch's records, committed together or not at all.

At the end of an epoch, ``fit`` leaves several files: the weights to resume
from (model and optimiser), ``last.keras``, ``best.keras`` when the validation
loss improved (and the classification head's ``colorizer.keras``), the
history row and the sample grid. A process killed while writing them must not
leave a mix of two epochs, or a file half written. So they are committed the
way a database commits a transaction:

1. stage: every file is written into ``backup/.tmp-epoch-N/``, with
   ``record.json`` saying where each one goes;
2. commit: that folder is renamed to ``backup/epoch-N/`` (one atomic step);
3. apply: each file is moved to its place (``os.replace``, atomic), then the
   record becomes ``backup/state.json`` and the folder is removed.

A kill before step 2 leaves only a staging folder, which is deleted on
resume: the epoch never happened. A kill after it leaves ``epoch-N/``, whose
remaining moves are finished on resume. Either way ``state.json`` names the
last whole epoch, and training continues from the weights committed with it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from pathlib import Path

import keras

from colorkit import runs
from colorkit.io import atomic_write_text

BACKUP = "backup"
STATE = "state.json"
RESUME_WEIGHTS = "resume.weights.h5"
RECORD = "record.json"


def _backup(run_dir) -> Path:
    return Path(run_dir) / BACKUP


def recover(run_dir) -> dict:
    """Finish or discard what a killed process left, and return the last whole
    epoch's state: ``{"epochs_done": n, "best": value, "best_epoch": k}``."""
    backup = _backup(run_dir)
    for leftover in backup.glob(".tmp-*"):  # staged, never committed
        shutil.rmtree(leftover, ignore_errors=True)
    for folder in ("checkpoints", "samples", "."):  # files an atomic write did not get to rename
        for leftover in (Path(run_dir) / folder).glob(".tmp-*"):
            if leftover.is_file():
                leftover.unlink()
    for committed in sorted(backup.glob("epoch-*"), key=lambda p: int(p.name.split("-")[1])):
        _apply(run_dir, committed)
    state = backup / STATE
    if not state.exists():
        return {"epochs_done": 0, "best": math.inf, "best_epoch": None}
    return json.loads(state.read_text(encoding="utf-8"))


def _apply(run_dir, committed: Path) -> None:
    """Move a committed epoch's files into place; safe to repeat after a kill."""
    record = json.loads((committed / RECORD).read_text(encoding="utf-8"))
    for name, target in record["moves"].items():
        if (committed / name).exists():
            (Path(run_dir) / target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(committed / name, Path(run_dir) / target)
    atomic_write_text(_backup(run_dir) / STATE, json.dumps(record["state"], indent=2))
    shutil.rmtree(committed)


class EpochRecords(keras.callbacks.Callback):
    """Commits every epoch's files together (see the module docstring) and, on a
    resumed run, restores the weights, the optimiser and the best value so far.

    ``colorizer``: model -> inference model (Zhang's decode step), saved as
    ``colorizer.keras`` with the kept checkpoint (``keep``: "best" or "last")
    when it differs from the model; ``sample_grid``: a function (model, path)
    writing the epoch's sample grid, every ``sample_every`` epochs."""

    def __init__(self, run_dir, colorizer=None, sample_grid=None, sample_every: int = 1, monitor: str = "val_loss",
                 keep: str = "best"):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.colorizer, self.sample_grid, self.sample_every = colorizer, sample_grid, max(1, sample_every)
        self.monitor, self.keep = monitor, keep
        self.state = recover(self.run_dir)

    @property
    def epochs_done(self) -> int:
        """Whole epochs already committed: ``fit``'s ``initial_epoch``."""
        return self.state["epochs_done"]

    def on_train_begin(self, logs=None):
        """Load the committed weights and optimiser state."""
        weights = _backup(self.run_dir) / RESUME_WEIGHTS
        if self.epochs_done and weights.exists():
            optimizer = self.model.optimizer
            if optimizer is not None and not optimizer.built:  # its slots must exist to receive the saved ones
                optimizer.build(self.model.trainable_variables)
            self.model.load_weights(weights)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        stage = _backup(self.run_dir) / f".tmp-epoch-{epoch + 1}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        moves = self._stage_files(stage, epoch, logs)
        state = {"epochs_done": epoch + 1, "best": self.state["best"], "best_epoch": self.state["best_epoch"]}
        improved = self._improved(logs)
        if improved:
            state.update(best=float(logs[self.monitor]), best_epoch=epoch)
            self.model.save(stage / "best.keras")
            moves["best.keras"] = "checkpoints/best.keras"
        if improved or self.keep == "last":
            moves.update(self._stage_colorizer(stage))
        (stage / RECORD).write_text(json.dumps({"moves": moves, "state": state}), encoding="utf-8")
        committed = stage.with_name(f"epoch-{epoch + 1}")
        os.rename(stage, committed)
        _apply(self.run_dir, committed)
        self.state = state

    def _improved(self, logs) -> bool:
        value = logs.get(self.monitor)
        return value is not None and math.isfinite(value) and value < self.state["best"]

    def _stage_files(self, stage: Path, epoch: int, logs: dict) -> dict:
        """Write the files every epoch has; returns {staged name: place in the run folder}."""
        self.model.save_weights(stage / RESUME_WEIGHTS)
        self.model.save(stage / "last.keras")
        (stage / "history.csv").write_text(_history_with(self.run_dir / "history.csv", epoch, logs), encoding="utf-8")
        moves = {RESUME_WEIGHTS: f"{BACKUP}/{RESUME_WEIGHTS}", "last.keras": "checkpoints/last.keras",
                 "history.csv": "history.csv"}
        if self.sample_grid and (epoch + 1) % self.sample_every == 0:
            name = f"epoch_{epoch + 1:04d}.png"
            self.sample_grid(self.model, stage / name)
            moves[name] = f"samples/{name}"
        return moves

    def _stage_colorizer(self, stage: Path) -> dict:
        """The inference model of the kept checkpoint, when it is not the model itself."""
        inference = self.colorizer(self.model) if self.colorizer else self.model
        if inference is self.model:
            return {}
        inference.save(stage / "colorizer.keras")
        return {"colorizer.keras": runs.COLORIZER_FILE}


def _history_with(path: Path, epoch: int, logs: dict) -> str:
    """The history CSV's text with the row of ``epoch`` added (or replaced), columns
    ``epoch`` then the logged values in name order, as Keras' CSVLogger writes them."""
    rows = []
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            rows = [row for row in csv.DictReader(f) if int(row["epoch"]) < epoch]
    rows.append({"epoch": epoch, **logs})
    fields = ["epoch", *sorted({key for row in rows for key in row} - {"epoch"})]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()
