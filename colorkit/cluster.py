"""Joining a cluster of machines for ``--strategy multi_worker``.

Each machine runs the same ``train`` command with its own ``TF_CONFIG``
(TensorFlow's convention: the cluster's addresses and this machine's task;
the ``chief``, or worker 0 when there is none, writes the run folder).
``join`` reads and checks TF_CONFIG, then makes TensorFlow's
``MultiWorkerMirroredStrategy``, once per process.

Two constraints shape this module. TensorFlow configures its collective ops
only before its first op in a process, and importing the rest of the kit runs
ops (the colour module builds its tables), so this module imports nothing
from colorkit but its errors, and the CLI joins before it imports anything
else. And TensorFlow waits for missing peers without limit, holding the
interpreter (no Python thread runs, SIGTERM goes unheard), so a watchdog
process ends a worker whose cluster has not formed in time, after one line
saying which peers did not answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import tensorflow as tf

from colorkit.errors import ColorkitError

#: Seconds to wait for the other machines: to join at the start, then at every exchange while training.
DEFAULT_PEER_TIMEOUT = 300.0
#: TensorFlow's job names, in its order of ranks; other jobs (parameter servers, evaluators) are not taken.
JOBS = ("chief", "worker")
EXAMPLE = '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}'

_joined: dict = {}  # "strategy", "cluster", "peer_timeout" once joined


@dataclass(frozen=True)
class Cluster:
    """TF_CONFIG, checked: each job's addresses and this process's task."""

    jobs: dict
    task_type: str
    task_index: int

    @property
    def tasks(self) -> list[tuple[str, int, str]]:
        """(job, index, address) of every machine, in TensorFlow's rank order (the chief first)."""
        return [(job, index, address) for job in JOBS for index, address in enumerate(self.jobs.get(job, ()))]

    @property
    def rank(self) -> int:
        """This process's place in ``tasks``: 0 is the chief."""
        return [(job, index) for job, index, _ in self.tasks].index((self.task_type, self.task_index))

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def peers(self) -> list[tuple[str, str]]:
        """(name, address) of every other machine."""
        return [(f"{job} {index}", address) for rank, (job, index, address) in enumerate(self.tasks)
                if rank != self.rank]


def read_tf_config(text: str | None) -> Cluster | None:
    """TF_CONFIG's text -> ``Cluster`` (None when unset: one machine alone);
    a ``ColorkitError`` naming the first thing wrong with it."""
    if not text or not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ColorkitError(f"TF_CONFIG is not JSON ({error}); it looks like {EXAMPLE}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not config["cluster"]:
        raise ColorkitError(f'TF_CONFIG needs a "cluster" mapping "worker" (and "chief") to addresses: {EXAMPLE}')
    jobs = {job: _addresses(job, addresses) for job, addresses in config["cluster"].items()}
    other = sorted(set(jobs) - set(JOBS))
    if other:
        raise ColorkitError(f"TF_CONFIG's cluster has a {other[0]!r} job: --strategy multi_worker takes chief and "
                            "worker machines only")
    if len(jobs.get("chief", ())) > 1:
        raise ColorkitError(f"TF_CONFIG names {len(jobs['chief'])} chiefs: a cluster has one at most")
    every = [address for addresses in jobs.values() for address in addresses]
    repeated = sorted({address for address in every if every.count(address) > 1})
    if repeated:
        raise ColorkitError(f"TF_CONFIG lists {repeated[0]} twice: every machine needs its own address")
    task_type, task_index = _task(config.get("task"), jobs)
    return Cluster(jobs, task_type, task_index)


def _addresses(job, addresses) -> tuple[str, ...]:
    if not isinstance(addresses, list) or not addresses:
        raise ColorkitError(f"TF_CONFIG's {job!r} job must be a list of host:port addresses, got {addresses!r}")
    for index, address in enumerate(addresses):
        host, _, port = str(address).rpartition(":")
        if not isinstance(address, str) or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ColorkitError(f"TF_CONFIG's {job} {index} address {address!r} is not host:port (port 1-65535)")
    return tuple(addresses)


def _task(task, jobs: dict) -> tuple[str, int]:
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ColorkitError('TF_CONFIG needs a "task" saying which machine this is: {"type": "worker", "index": 0}')
    kind, index = task["type"], task["index"]
    if kind not in jobs:
        raise ColorkitError(f"TF_CONFIG's task type {kind!r} is not a job of its cluster ({', '.join(sorted(jobs))})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs[kind]):
        raise ColorkitError(f"TF_CONFIG's task is {kind} {index!r}, but its cluster has {len(jobs[kind])} {kind} "
                            f"address(es): index 0 to {len(jobs[kind]) - 1}")
    return kind, index


def join(peer_timeout: float = DEFAULT_PEER_TIMEOUT) -> tf.distribute.MultiWorkerMirroredStrategy:
    """This process's ``MultiWorkerMirroredStrategy``, made on the first call (later
    calls return it). Every exchange between machines then gives up after
    ``peer_timeout`` seconds; if the cluster has not formed within that time,
    a watchdog prints one line naming the silent peers and kills this process."""
    if "strategy" in _joined:
        return _joined["strategy"]
    if not peer_timeout > 0:
        raise ColorkitError(f"--peer-timeout must be a positive number of seconds, got {peer_timeout}")
    cluster = read_tf_config(os.environ.get("TF_CONFIG"))
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=peer_timeout)
    watchdog = _start_watchdog(peer_timeout, cluster) if cluster is not None else None
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as error:
        if "startup" not in str(error):
            raise
        raise ColorkitError("--strategy multi_worker must join its cluster before TensorFlow runs anything: train "
                            "with `python -m colorkit train`, or call colorkit.cluster.join() first in a fresh "
                            "process") from None
    except tf.errors.OpError as error:
        raise ColorkitError(f"could not join the cluster: {error.message.strip().splitlines()[0]}") from None
    finally:
        if watchdog is not None:
            watchdog.stdin.close()  # the watchdog's signal to stand down
            watchdog.wait()
    _joined.update(strategy=strategy, cluster=cluster, peer_timeout=peer_timeout)
    return strategy


def joined() -> tuple[tf.distribute.Strategy, Cluster | None, float] | None:
    """(strategy, cluster or None when alone, peer timeout) once ``join`` has run, else None."""
    return (_joined["strategy"], _joined["cluster"], _joined["peer_timeout"]) if _joined else None


#: The watchdog, a process of its own that needs only the standard library: it waits for its standard input to
#: close (the cluster formed) for so many seconds; then it names the peers that do not answer and kills the worker.
_WATCHDOG = """
import os, select, signal, socket, sys
worker, seconds, peers = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
if select.select([sys.stdin], [], [], seconds)[0]:
    sys.exit(0)
def answers(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
        return True
    except OSError:
        return False
silent = [f"{name} ({address})" for name, address in zip(peers[::2], peers[1::2]) if not answers(address)]
why = (f"no answer from {', '.join(silent)}" if silent else
       "every peer answers but they did not all join: is TF_CONFIG's cluster the same on every machine?")
print(f"error: the cluster did not form within {seconds:g} s: {why}; start the same command on every machine of "
      "TF_CONFIG (or give them longer with --peer-timeout)", file=sys.stderr, flush=True)
os.kill(worker, signal.SIGKILL)
"""


def _start_watchdog(seconds: float, cluster: Cluster) -> subprocess.Popen:
    """The watchdog for this process's wait for ``cluster`` (a started peer listens
    on its address while it waits for the others, so the silent ones are found)."""
    peers = [part for name, address in cluster.peers() for part in (name, address)]
    sys.stdout.flush()
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid()), str(seconds), *peers],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
