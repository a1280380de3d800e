"""Item 9: training across machines, on this one: images/s with 1 and 2 workers
of one CPU core each, against one process on 2 cores.

Each configuration trains the strided CNN's recipe (width 0.25, the global
batch of the scale) on a folder of JPEG photos, in fresh processes pinned to
their cores (``python -m bench.multiworker ...``, one per worker, each with
its TF_CONFIG on 127.0.0.1): the input pipeline, the step and, with two
workers, the all-reduce of the gradients after every step. The first steps
(tracing, the first exchanges) are left out; the timed steps are cut into
windows, and the figure is the median window's rate. Beside it, the CPU
time each image costs, summed over the workers (user + system, all threads):
what the distribution itself costs, whatever else shares the machine.

Baseline: one process on both cores (``--strategy default``: Keras ``fit``).
Rows: one worker on one core (``multi_worker`` alone: the replica loop), two
workers on a core each (each reads and decodes half of every global batch).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Comparison, Timing, jpeg_folder, rate

ITEM = "9 multi-worker"
#: Seconds every worker may wait for the others (bench/ runs them on one machine).
PEER_TIMEOUT = 120
#: Seconds one configuration may take before its processes are killed.
RUN_TIMEOUT = 900


def measure(folder, size: int, batch: int, warmup: int, steps: int, windows: int, strategy: str) -> dict:
    """In this process: train ``warmup + steps`` steps and time the last ``steps`` in ``windows`` windows."""
    if strategy == "multi_worker":
        from colorkit import cluster

        cluster.join(PEER_TIMEOUT)  # before anything else runs TensorFlow
    import keras

    from colorkit import training
    from colorkit.experiments import experiment_config

    class Clock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append((time.perf_counter(), time.process_time()))

    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-") as tmp:
        config = experiment_config(
            "strided_cnn_dogs", "quick", dataset="folder", root=str(folder), dataset_options={}, image_size=size,
            batch_size=batch, epochs=1, steps_per_epoch=warmup + steps, model_options={"width": 0.25},
            strategy=strategy, out=str(Path(tmp) / "run"))
        training.fit(config, verbose=0, extra_callbacks=[clock])
    per_window = steps // windows
    marks = clock.ends[warmup - 1::per_window][: windows + 1]
    return {"seconds": [end - start for (start, _), (end, _) in zip(marks, marks[1:])],
            "cpu_seconds": marks[-1][1] - marks[0][1], "steps": per_window * (len(marks) - 1),
            "steps_per_window": per_window, "rank": _rank()}


def _rank() -> int:
    task = json.loads(os.environ.get("TF_CONFIG") or '{"task": {"index": 0}}')["task"]
    return task["index"]


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports free on 127.0.0.1 now (for a cluster of workers on this machine)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_configuration(folder, scale, strategy: str, cores: list[set]) -> dict:
    """One process per entry of ``cores`` (each pinned to those cores), all at once;
    ``multi_worker`` ones form a cluster on 127.0.0.1. The first worker's result,
    with the CPU time of all of them."""
    root = Path(__file__).resolve().parent.parent
    args = [folder, scale.multiworker_size, scale.batch_size, scale.multiworker_warmup, scale.multiworker_steps,
            scale.repeats, strategy]
    addresses = [f"127.0.0.1:{port}" for port in free_ports(len(cores))]
    processes = []
    for index, pinned in enumerate(cores):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        env.pop("TF_CONFIG", None)
        if strategy == "multi_worker" and len(cores) > 1:
            task = {"type": "worker", "index": index}
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses}, "task": task})
        start = (f"import os, runpy; os.sched_setaffinity(0, {pinned!r}); "  # pinned before TensorFlow starts
                 "runpy.run_module('bench.multiworker', run_name='__main__', alter_sys=True)")
        processes.append(subprocess.Popen([sys.executable, "-c", start, *map(str, args)], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, env=env, cwd=root))
    results = []
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        for process in processes:
            out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if process.returncode != 0:
                raise RuntimeError(f"{strategy} on cores {cores} failed: {err.strip()[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:  # a failed or late configuration leaves no process behind
                process.kill()
                process.wait()
    first = min(results, key=lambda result: result["rank"])
    return dict(first, cpu_seconds=sum(result["cpu_seconds"] for result in results))


def run(scale) -> list[dict]:
    available = sorted(os.sched_getaffinity(0))
    first, second = available[0], available[min(1, len(available) - 1)]
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-") as tmp:
        folder = Path(tmp) / "photos"
        width, height = scale.multiworker_file
        for seed, (split, count) in enumerate((("train", scale.multiworker_images), ("val", scale.batch_size),
                                               ("test", 2))):
            jpeg_folder(folder / split, count, width, height, seed=seed)
        found = {
            "one process, 2 cores": run_configuration(folder, scale, "default", [{first, second}]),
            "1 worker, 1 core": run_configuration(folder, scale, "multi_worker", [{first}]),
            "2 workers, 1 core each": run_configuration(folder, scale, "multi_worker", [{first}, {second}]),
        }
    case = (f"training the strided CNN (width 0.25) at {scale.multiworker_size} px, global batch {scale.batch_size}, "
            f"on {scale.multiworker_images} JPEGs of {width}x{height}; workers on 127.0.0.1")
    speed, cost = Comparison(ITEM, case), Comparison(ITEM, f"{case}: CPU time per image, all workers")
    for name, result in found.items():
        timing = Timing(result["seconds"])
        images = result["steps_per_window"] * scale.batch_size
        method = name if name.startswith("one") else f"multi_worker: {name}"
        notes = f"{len(result['seconds'])} windows of {result['steps_per_window']} steps"
        role = "baseline" if name.startswith("one") else "kit"
        getattr(speed, role)(method, rate(images, timing), "images/s", timing, notes=notes)
        cpu_ms = 1000 * result["cpu_seconds"] / (result["steps"] * scale.batch_size)
        getattr(cost, role)(method, cpu_ms, "ms", notes=f"user + system over {result['steps']} steps")
    return speed.rows + cost.rows


if __name__ == "__main__":
    folder, size, batch, warmup, steps, windows, strategy = sys.argv[1:8]
    print(json.dumps(measure(folder, int(size), int(batch), int(warmup), int(steps), int(windows), strategy)))
