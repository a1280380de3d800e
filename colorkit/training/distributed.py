"""What differs between the workers of a multi-worker run (``--strategy multi_worker``).

Every worker runs the same training code, call for call, so that all of them
meet at every exchange (the gradients' all-reduce, the metrics read at the end
of an epoch, anything Keras reads across replicas while saving). Only three
things differ, and they are all here:

* the run folder: the chief writes the real one; every other worker makes the
  same calls against a temporary folder that it deletes when it ends;
* what only the chief knows is sent from it to the others (``share``): the
  configuration it resolved (a resumed run's saved one), the colour prior,
  the epoch records' state and, once it has loaded them, the weights and
  optimiser state it resumes from (``sync``);
* the input: each worker reads the files of its replicas' share of every
  global batch (``pipeline.Shard``: sharded by file, before decoding).

A peer lost or silent for longer than the peer timeout ends the run with one
line; the run folder keeps its last whole epoch (or checkpoint), from which
all the workers restarted with ``--resume`` continue.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from colorkit import cluster
from colorkit.data import pipeline
from colorkit.errors import ColorkitError
from colorkit.experiments import TrainConfig
from colorkit.training import setup


class Worker:
    """This process's part in a run. With any strategy but ``multi_worker`` it is
    the only process: it is the chief, ``share`` and ``sync`` change nothing."""

    def __init__(self, strategy: tf.distribute.Strategy):
        self.strategy = strategy
        self.multi = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        joined = cluster.joined()
        self.cluster = joined[1] if self.multi and joined else None
        self.peer_timeout = joined[2] if joined else cluster.DEFAULT_PEER_TIMEOUT
        self.is_chief = self.cluster is None or self.cluster.is_chief
        self.scratch: Path | None = None  # the temporary run folder of a worker that is not the chief
        self.run_folder: Path | None = None  # the run's folder, on the chief's machine

    def verbose(self, verbose: int) -> int:
        """The progress bar shows on the chief only."""
        return verbose if self.is_chief else 0

    # --- The run folder ----------------------------------------------------------------

    def prepare_run(self, config: TrainConfig, resume: bool):
        """``setup.prepare_run`` on the chief, whose resolved configuration every
        other worker then trains with, in a temporary run folder of its own.
        A mistake found by the chief (a bad value, no run to resume, a batch
        the replicas cannot share) stops every worker with the chief's message."""
        if not self.multi:
            run_dir, config, split = setup.prepare_run(config, resume)
            self.run_folder = run_dir
            return run_dir, config, split
        if self.is_chief:
            try:
                run_dir, config, split = setup.prepare_run(config, resume)
                _check_global_batch(config.batch_size, self.strategy, self.cluster)
            except ColorkitError as error:
                self.share({"error": str(error)})
                raise
            self.share({"config": config.to_dict(), "counts": _counts(split)})
            self.run_folder = run_dir
            return run_dir, config, split
        told = self.share(None)
        if "error" in told:
            raise ColorkitError(f"the chief stopped: {told['error']}")
        self.scratch = Path(tempfile.mkdtemp(prefix="colorkit-worker-"))
        chief_config = TrainConfig.from_dict(told["config"])
        self.run_folder = Path(chief_config.out)
        run_dir, config, split = setup.prepare_run(chief_config.replace(out=str(self.scratch / "run")), resume=False)
        if _counts(split) != told["counts"]:
            raise ColorkitError(f"this machine's split of {config.dataset} has {_counts(split)} images, the chief's "
                                f"{told['counts']}: every machine needs the same dataset")
        return run_dir, config, split

    def close(self) -> None:
        """Delete the temporary run folder (a worker that is not the chief leaves nothing)."""
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    # --- From the chief to the others -------------------------------------------------------

    def share(self, value):
        """The chief's ``value`` (anything JSON can hold), on every worker; the others pass None."""
        if not self.multi:
            return value
        data = json.dumps(value).encode() if self.is_chief else b""
        (length,) = self._from_chief([tf.constant(len(data), tf.int32)])
        codes = np.frombuffer(data, np.uint8).astype(np.int32) if self.is_chief else np.zeros(int(length), np.int32)
        (received,) = self._from_chief([tf.constant(codes)])
        return json.loads(received.numpy().astype(np.uint8).tobytes())

    def array_from_chief(self, compute) -> np.ndarray:
        """``compute()`` run on the chief alone; the numpy array it returns, on every worker."""
        if not self.multi:
            return compute()
        array = compute() if self.is_chief else None
        shared = self.share({"values": array.tolist(), "dtype": str(array.dtype)} if self.is_chief else None)
        return np.asarray(shared["values"], shared["dtype"])

    def sync(self, variables) -> None:
        """Give every worker the chief's values of ``variables`` (weights and optimiser
        state a resumed run loaded on the chief only). Every worker must pass the
        same variables in the same order."""
        if not self.multi:
            return
        values = self._from_chief([tf.convert_to_tensor(variable) for variable in variables])
        for variable, value in zip(variables, values):
            variable.assign(value)

    def _from_chief(self, tensors: list) -> list:
        """The first replica's ``tensors`` (it runs on the chief) on every replica:
        an all-reduce in which every other replica contributes zeros (one per
        dtype: TensorFlow packs the tensors of one all-reduce together)."""

        @tf.function
        def first_replicas(tensors):
            context = tf.distribute.get_replica_context()
            first = tf.equal(context.replica_id_in_sync_group, 0)
            return context.all_reduce("SUM", [tf.where(first, tensor, tf.zeros_like(tensor)) for tensor in tensors])

        received = [None] * len(tensors)
        for dtype in sorted({tensor.dtype.name for tensor in tensors}):
            indices = [i for i, tensor in enumerate(tensors) if tensor.dtype.name == dtype]
            results = self.strategy.run(first_replicas, args=([tensors[i] for i in indices],))
            for i, result in zip(indices, results):
                received[i] = self.strategy.experimental_local_results(result)[0]
        return received

    # --- Input -------------------------------------------------------------------------------

    def datasets(self, config: TrainConfig, files: dict):
        """(train, val) as the trainers take them. One machine: ``setup.make_datasets``
        (several replicas split each global batch; none is ever left without an
        image). Several: each worker's own shard, as distributed datasets
        yielding one batch per replica per step."""
        replicas = self.strategy.num_replicas_in_sync
        if not self.multi:
            return setup.make_datasets(config, files, pipeline.Shard(replicas) if replicas > 1 else None)

        def part(which: int):
            def make(context: tf.distribute.InputContext):
                local = context.num_replicas_in_sync // context.num_input_pipelines
                shard = pipeline.Shard(context.num_replicas_in_sync, context.input_pipeline_id * local, local)
                return setup.make_datasets(config, files, shard)[which]

            return self.strategy.distribute_datasets_from_function(make)

        return part(0), part(1)


@contextlib.contextmanager
def worker(strategy: tf.distribute.Strategy):
    """This process's ``Worker`` for one run; on the way out its temporary folder
    goes, and a lost or silent peer becomes one line (a ``ColorkitError``)."""
    role = Worker(strategy)
    try:
        yield role
    except tf.errors.DeadlineExceededError:
        raise ColorkitError(f"another worker did not answer within {role.peer_timeout:g} s: the run keeps its last "
                            "saved state; restart every worker with --resume (or give them longer with "
                            "--peer-timeout)") from None
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.AbortedError) as error:
        raise ColorkitError(f"lost contact with another worker ({_reason(error)}): the run keeps its last saved "
                            "state; restart every worker with --resume") from None
    finally:
        role.close()


def _reason(error: tf.errors.OpError) -> str:
    """TensorFlow's words for a lost peer, without its graph-node names, on one short line."""
    text = re.sub(r"\{\{[^}]*\}\}", "", " ".join((error.message or type(error).__name__).split())).strip()
    return text.split("aborted by: ", 1)[-1][:160]


def _check_global_batch(batch_size: int, strategy, machines: cluster.Cluster | None) -> None:
    """The global batch is split evenly among the replicas (one per CPU worker, one per GPU)."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        workers = len(machines.tasks) if machines else 1
        raise ColorkitError(f"--batch-size {batch_size} (the global batch) does not divide among {workers} workers "
                            f"({replicas} replicas): use a multiple of {replicas}")


def _counts(split: dict) -> dict:
    return {name: len(files) for name, files in split.items()}
