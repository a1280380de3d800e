"""Training across machines: TF_CONFIG, the sharded input, and real worker processes on 127.0.0.1.

The cluster tests start each worker as a process of its own (free loopback
ports, a TF_CONFIG each, a timeout on every one), give each a TMPDIR of its own
(a worker that is not the chief may write only there, and must leave it
empty), and compare the end with a single-process run of the same recipe.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from bench.multiworker import free_ports
from colorkit import cluster, color, runs, training
from colorkit.data import pipeline
from colorkit.errors import ColorkitError
from colorkit.experiments import experiment_config

#: Seconds a whole cluster test may take before its processes are killed (this machine is shared and slow).
CLUSTER_TIMEOUT = 420
#: Every exchange between the test's workers gives up after this (the CLI's --peer-timeout).
PEER_TIMEOUT = 90


# --- TF_CONFIG ----------------------------------------------------------------------------------


def test_tf_config_names_the_chief_first_and_worker_0_leads_without_one():
    with_chief = cluster.read_tf_config(json.dumps({
        "cluster": {"worker": ["b:1", "c:1"], "chief": ["a:1"]}, "task": {"type": "worker", "index": 1}}))
    assert [address for _, _, address in with_chief.tasks] == ["a:1", "b:1", "c:1"]
    assert with_chief.rank == 2 and not with_chief.is_chief
    assert with_chief.peers() == [("chief 0", "a:1"), ("worker 0", "b:1")]
    workers = cluster.read_tf_config(
        '{"cluster": {"worker": ["h:2", "[::1]:3"]}, "task": {"type": "worker", "index": 0}}')
    assert workers.is_chief and workers.rank == 0
    assert cluster.read_tf_config(None) is None and cluster.read_tf_config("  ") is None  # one machine alone


@pytest.mark.parametrize(
    "text, message",
    [
        ("{cluster: 1}", "not JSON"),
        ('{"task": {"type": "worker", "index": 0}}', '"cluster"'),
        ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}', "list of host:port"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "'a' is not host:port"),
        ('{"cluster": {"worker": ["a:70000"]}, "task": {"type": "worker", "index": 0}}', "not host:port"),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 0}}', "'ps' job"),
        ('{"cluster": {"worker": ["a:1"], "chief": ["b:1", "c:1"]}, "task": {"type": "chief", "index": 0}}',
         "2 chiefs"),
        ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}', "a:1 twice"),
        ('{"cluster": {"worker": ["a:1"]}}', '"task"'),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "'chief' is not a job"),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "index 0 to 1"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}', "index 0 to 0"),
    ],
)
def test_a_malformed_tf_config_is_one_clear_error(text, message):
    with pytest.raises(ColorkitError, match=message.replace("[", r"\[")) as error:
        cluster.read_tf_config(text)
    assert "\n" not in str(error.value)


# --- The sharded input: the replicas of a step hold a single process's batch ------------------------


def test_epoch_batches_never_leave_a_replica_without_an_image():
    assert pipeline.epoch_batch_sizes(40, 16) == [16, 16, 8]
    assert pipeline.epoch_batch_sizes(40, 16, replicas=2) == [16, 16, 8]
    assert pipeline.epoch_batch_sizes(33, 16, replicas=2) == [16, 17]  # a last batch of 1 joins the one before
    assert pipeline.epoch_batch_sizes(33, 16, replicas=1) == [16, 16, 1]
    assert pipeline.epoch_batch_sizes(3, 16, replicas=2) == [3]
    with pytest.raises(ColorkitError, match="1 images cannot feed 2 replicas"):
        pipeline.epoch_batch_sizes(1, 16, replicas=2)


def _epochs(dataset, count):
    """``count`` passes over a dataset of (L, ab) batches: a list (per epoch) of lists of L arrays."""
    return [[l_norm.numpy() for l_norm, _ in dataset] for _ in range(count)]


@pytest.mark.parametrize("files, replicas", [(37, 2), (33, 2), (37, 3)])
def test_the_shards_of_an_epoch_are_a_single_process_epoch_split_among_replicas(sample_root, files, replicas):
    paths = sorted(map(str, Path(sample_root, "train", "shapes").glob("*.png")))[:files]
    probed = pipeline.probe_files(paths)
    options = dict(image_size=16, batch_size=8, augment=True, shuffle=True, seed=3)
    single = _epochs(pipeline.make_dataset(probed, **options), 2)
    shards = [_epochs(pipeline.make_dataset(probed, shard=pipeline.Shard(replicas, first, 1), **options), 2)
              for first in range(replicas)]
    whole = _epochs(pipeline.make_dataset(probed, shard=pipeline.Shard(replicas), **options), 2)
    sizes = pipeline.epoch_batch_sizes(files, 8, replicas)
    for epoch in range(2):
        steps = list(zip(*(shard[epoch] for shard in shards)))
        assert [sum(len(part) for part in step) for step in steps] == sizes
        assert all(min(len(part) for part in step) >= 1 for step in steps)  # no replica is ever left empty
        joined = np.concatenate([part for step in steps for part in step])
        # every image of the epoch once, in the single process's order, with its flips
        np.testing.assert_array_equal(joined, np.concatenate(single[epoch]))
        assert [len(batch) for batch in whole[epoch]] == sizes
        np.testing.assert_array_equal(np.concatenate(whole[epoch]), joined)
    assert not np.array_equal(np.concatenate(single[0]), np.concatenate(single[1]))  # each epoch reshuffles


# --- Real workers ------------------------------------------------------------------------------------


def small_folder(sample_root, folder, train=40, val=8):
    """A folder dataset (train/ val/ test/) of the sample set's shapes: 40 training images make
    batches of 16, 16 and 8, shared evenly by two replicas."""
    for name, count in (("train", train), ("val", val), ("test", 4)):
        (folder / name).mkdir(parents=True)
        for path in sorted(Path(sample_root, name, "shapes").glob("*.png"))[:count]:
            shutil.copy(path, folder / name / path.name)
    return folder


def stripe_folder(folder, train=40, val=8, seed=0):
    """Learnable images: 32 px stripes, the bright ones orange and the dark ones blue (colour follows L)."""
    rng = np.random.default_rng(seed)
    for name, count in (("train", train), ("val", val), ("test", 4)):
        (folder / name).mkdir(parents=True)
        for index in range(count):
            bright = (np.arange(32)[None, :] + rng.integers(0, 8)) // 8 % 2 == 0
            lab = np.stack([np.where(bright, 75.0, 35.0) + rng.normal(0, 3, (32, 32)),
                            np.broadcast_to(np.where(bright, 25.0, 10.0), (32, 32)),
                            np.broadcast_to(np.where(bright, 60.0, -45.0), (32, 32))], axis=-1)
            rgb = np.clip(np.asarray(color.lab_to_rgb(lab.astype(np.float32))), 0, 1)
            Image.fromarray((rgb * 255).round().astype(np.uint8)).save(folder / name / f"{index:03d}.png")
    return folder


def tf_configs(count):
    workers = [f"127.0.0.1:{port}" for port in free_ports(count)]
    return [json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}) for i in range(count)]


class Worker:
    """One worker process: its command, TF_CONFIG and TMPDIR, its output in files (no pipe to fill)."""

    def __init__(self, tmp_path, name, args, tf_config):
        self.name, self.tmp = name, tmp_path / f"tmp-{name}"
        self.tmp.mkdir(exist_ok=True)
        self.stdout, self.stderr = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        env = dict(os.environ, TF_CONFIG=tf_config, TMPDIR=str(self.tmp))
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.process = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err, text=True, env=env)

    @property
    def err(self):
        return self.stderr.read_text()


def run_cluster(workers, timeout=CLUSTER_TIMEOUT):
    """Wait for every worker; past ``timeout`` seconds all are killed and the test fails. Returns their exit codes."""
    deadline = time.monotonic() + timeout
    try:
        for worker in workers:
            worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for worker in workers:
            worker.process.kill()
            worker.process.wait()
        pytest.fail("the cluster did not finish in time:\n" + "\n".join(w.err[-2000:] for w in workers))
    return [worker.process.returncode for worker in workers]


def cli(*args):
    return ["-m", "colorkit", "train", *args, "--strategy", "multi_worker", "--quiet",
            "--peer-timeout", str(PEER_TIMEOUT)]


def fit_args(data, out, epochs=3, *more):
    """The strided CNN's recipe (RMSprop) at test size, through the command line."""
    return cli("--model", "strided_cnn", "--data", str(data), "--image-size", "32", "--batch-size", "16",
               "--epochs", str(epochs), "--model-option", "width=0.25", "--out", str(out), *more)


#: A worker as a script: it joins first, trains with the config it is given (a worker that is not the chief trains
#: with the chief's anyway), and keeps its model's final trainable weights outside the run folder for the test.
#: (BatchNorm's moving statistics are each replica's own, as Keras keeps them under any strategy: the run saves the
#: chief's, which the comparison with one process covers.)
WORKER_SCRIPT = """
import sys, os, signal
import colorkit.cluster
colorkit.cluster.join({timeout})
import keras, numpy as np
from colorkit import training
from colorkit.experiments import TrainConfig
from colorkit.training import setup

built = []
def build(config):
    built.append(setup.build_model(config))
    return built[-1]

class KillAt(keras.callbacks.Callback):  # like a machine lost mid-epoch: no clean-up of any kind
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)

config = TrainConfig.from_dict({config})
custom = dict(extra_callbacks=[KillAt()]) if config.trainer == "fit" else {{}}
training.train(config, resume={resume}, verbose=0, build=build, **custom)
np.savez(sys.argv[1], *[weight.numpy() for weight in built[-1].trainable_weights])
"""


def worker_script(weights, config, resume=False, kill_at=None):
    """``python -c`` arguments running WORKER_SCRIPT; its model's final trainable weights go to the file ``weights``."""
    script = WORKER_SCRIPT.format(timeout=PEER_TIMEOUT, config=repr(config.to_dict()), resume=resume, kill_at=kill_at)
    return ["-c", script, str(weights)]


def history(run_dir):
    with open(Path(run_dir) / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def npz_weights(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def assert_same(a, b, **tolerance):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if tolerance:
            np.testing.assert_allclose(x, y, **tolerance)
        else:
            np.testing.assert_array_equal(x, y)


def trainable(model):
    return [weight.numpy() for weight in model.trainable_weights]


def assert_left_nothing(worker, out=None):
    """A worker that is not the chief: no run folder, and its temporary folder emptied."""
    assert out is None or not Path(out).exists()
    assert list(worker.tmp.iterdir()) == []


#: The single-process reference: one process with two replicas (2 logical CPUs), the same global batch and seed.
SINGLE_PROCESS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from colorkit import training
from colorkit.experiments import TrainConfig
run_dir = training.train(TrainConfig.from_dict({config}), verbose=0)
np.savez(sys.argv[1], *keras.models.load_model(run_dir / sys.argv[2]).get_weights())
"""


def single_process(config, weights, model_file):
    """Start ``config`` with ``mirrored`` on two logical CPUs in a process of its own; its model's weights go to
    ``weights``."""
    script = SINGLE_PROCESS.format(config=repr(config.replace(strategy="mirrored").to_dict()))
    return subprocess.Popen([sys.executable, "-c", script, str(weights), model_file], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finish(process, timeout=CLUSTER_TIMEOUT):
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("the single-process reference did not finish in time")
    assert process.returncode == 0, err[-3000:]


@pytest.mark.slow
def test_two_workers_train_a_fit_recipe_as_one_process_does(tmp_path):
    data = stripe_folder(tmp_path / "data")
    chief_run, other_out = tmp_path / "run", tmp_path / "other-out"
    configs = tf_configs(2)
    chief = Worker(tmp_path, "chief", fit_args(data, chief_run, 4, "--learning-rate", "0.003"), configs[0])
    other_config = experiment_config("strided_cnn_dogs", "quick").replace(strategy="multi_worker", out=str(other_out))
    other = Worker(tmp_path, "other", worker_script(tmp_path / "weights.npz", other_config), configs[1])
    assert run_cluster([chief, other]) == [0, 0], chief.err[-3000:] + other.err[-3000:]
    assert f"run written to {chief_run}" in chief.stdout.read_text()

    rows = history(chief_run)
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]
    assert float(rows[-1]["loss"]) < 0.95 * float(rows[0]["loss"])  # measured: 0.125 -> 0.111
    for name in ("config.json", "split.json", "backup/state.json", "checkpoints/best.keras", "checkpoints/last.keras",
                 "samples/epoch_0004.png"):
        assert (chief_run / name).exists(), name
    assert any((chief_run / "logs" / "validation").glob("events.out.tfevents*"))
    assert_left_nothing(other, other_out)
    last = keras.models.load_model(chief_run / "checkpoints" / "last.keras")
    assert int(last.optimizer.iterations.numpy()) == 4 * 3  # 40 images in batches of 16: 3 global steps an epoch
    assert_same(trainable(last), npz_weights(tmp_path / "weights.npz"))  # the workers end in lock-step

    # One process, the same global batch and seed, sees the same images in the same steps; the strided CNN has no
    # BatchNorm, so the mean of the two halves' gradients is the whole batch's, up to float32 rounding: the order of
    # the sums, and the Lab step, whose XLA program for a worker's 8 images rounds a few values in the last bit
    # otherwise than for 16. Over 12 RMSprop steps that can flip a ReLU at its kink, moving the weights it feeds
    # by up to about 1e-4. So: nearly every weight agrees to 1e-5 and none by a step's size (RMSprop's steps here
    # are about the learning rate, 3e-3), where a wrongly split batch moves most weights by steps.
    reference = runs.read_config(chief_run).replace(strategy="default", out=str(tmp_path / "single"))
    single = training.train(reference, verbose=0)
    ours, theirs = (np.concatenate([w.ravel() for w in model.get_weights()])
                    for model in (last, keras.models.load_model(single / "checkpoints" / "last.keras")))
    difference = np.abs(ours - theirs)
    measured = f"largest difference {difference.max():.2e}, share above 1e-5 {np.mean(difference > 1e-5):.2%}"
    assert difference.max() < 1e-3 and np.mean(difference > 1e-5) < 0.01, measured  # measured 1.0e-4, 0.01%
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose([float(r[key]) for r in rows], [float(r[key]) for r in history(single)], rtol=1e-3)


@pytest.mark.slow
def test_two_workers_train_the_gan_as_one_process_with_two_replicas_does(sample_root, tmp_path):
    data = small_folder(sample_root, tmp_path / "data")
    config = experiment_config(
        "unet_gan", "quick", dataset="folder", root=str(data), dataset_options={}, image_size=32, batch_size=16,
        epochs=2, pretrain_epochs=1, model_options={"width": 0.25}, discriminator_options={"width": 0.25},
        checkpoint_every=4, sample_every=1, strategy="multi_worker", out=str(tmp_path / "run"))
    configs = tf_configs(2)
    chief = Worker(tmp_path, "chief", worker_script(tmp_path / "chief-weights.npz", config), configs[0])
    other = Worker(tmp_path, "other", worker_script(tmp_path / "weights.npz", config.replace(
        out=str(tmp_path / "other-out"))), configs[1])
    reference = single_process(config.replace(out=str(tmp_path / "single")), tmp_path / "single.npz",
                               "checkpoints/generator.keras")
    assert run_cluster([chief, other]) == [0, 0], chief.err[-3000:] + other.err[-3000:]
    finish(reference)

    run_dir = Path(config.out)
    rows = history(run_dir)
    assert [int(r["step"]) for r in rows] == list(range(1, 10))  # 3 epochs of 3 global steps
    assert [r["phase"] for r in rows] == ["pretrain"] * 3 + ["gan"] * 6
    assert float(rows[2]["g_l1"]) < float(rows[0]["g_l1"])  # the L1 warm-up learns
    for name in ("checkpoints/generator.keras", "checkpoints/checkpoint", "samples/epoch_0003.png"):
        assert (run_dir / name).exists(), name
    assert_left_nothing(other, tmp_path / "other-out")
    generator = keras.models.load_model(run_dir / "checkpoints" / "generator.keras")
    assert_same(trainable(generator), npz_weights(tmp_path / "weights.npz"))
    assert_same(trainable(generator), npz_weights(tmp_path / "chief-weights.npz"))
    assert_same(generator.get_weights(), npz_weights(tmp_path / "single.npz"), rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_a_worker_killed_mid_epoch_and_all_restarted_resume_without_losing_or_repeating_an_epoch(sample_root,
                                                                                                  tmp_path):
    # Zhang's classification recipe: BatchNorm, and a colour prior the chief computes (then reads back on resume)
    # and sends to the other worker.
    data = small_folder(sample_root, tmp_path / "data")
    chief_run = tmp_path / "run"
    zhang = cli("--experiment", "zhang_classification", "--data", str(data), "--image-size", "32", "--batch-size",
                "16", "--epochs", "3", "--steps-per-epoch", "4", "--model-option", "width=0.125", "--out",
                str(chief_run))
    other_config = experiment_config("strided_cnn_dogs", "quick").replace(strategy="multi_worker",
                                                                          out=str(tmp_path / "other-out"))
    configs = tf_configs(2)
    chief = Worker(tmp_path, "chief", zhang, configs[0])
    other = Worker(tmp_path, "other", worker_script(tmp_path / "weights.npz", other_config, kill_at=(1, 2)), configs[1])
    assert run_cluster([chief, other]) == [2, -9], chief.err[-3000:]
    assert "lost contact with another worker" in chief.err and "--resume" in chief.err
    assert len(chief.err.strip().splitlines()) == 1 and "Traceback" not in chief.err
    assert [r["epoch"] for r in history(chief_run)] == ["0"]  # epoch 1 was cut short: it never happened

    configs = tf_configs(2)
    chief = Worker(tmp_path, "chief-again", zhang + ["--resume"], configs[0])
    other = Worker(tmp_path, "other-again", worker_script(tmp_path / "weights.npz", other_config), configs[1])
    assert run_cluster([chief, other]) == [0, 0], chief.err[-3000:] + other.err[-3000:]
    rows = history(chief_run)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    last = keras.models.load_model(chief_run / "checkpoints" / "last.keras")
    assert int(last.optimizer.iterations.numpy()) == 3 * 4  # every step once: none lost, none redone
    assert_same(trainable(last), npz_weights(tmp_path / "weights.npz"))  # the chief's resumed state reached the other
    assert (chief_run / "checkpoints" / "colorizer.keras").exists() and (chief_run / "prior.npy").exists()
    assert_left_nothing(other, tmp_path / "other-out")


@pytest.mark.slow
def test_cluster_mistakes_end_every_worker_with_one_line(sample_root, tmp_path):
    data = small_folder(sample_root, tmp_path / "data")
    bad = Worker(tmp_path, "bad", fit_args(data, tmp_path / "bad"), '{"cluster": {"worker": ["127.0.0.1"]}}')
    lonely_config = tf_configs(2)[0]  # worker 1 never starts
    lonely = Worker(tmp_path, "lonely", fit_args(data, tmp_path / "lonely") + ["--peer-timeout", "5"], lonely_config)
    late_args = fit_args(data, tmp_path / "late")[2:]  # a script that runs TensorFlow ops before it joins
    late = Worker(tmp_path, "late", ["-c", f"import colorkit.training; from colorkit import cli; "
                                           f"raise SystemExit(cli.main({late_args!r}))"], tf_configs(2)[0])
    configs = tf_configs(2)
    odd = [Worker(tmp_path, f"odd-{i}", fit_args(data, tmp_path / f"odd-{i}", 1, "--batch-size", "15"), configs[i])
           for i in range(2)]
    # The lonely worker's watchdog kills it: TensorFlow's wait for the cluster holds the interpreter, deaf to SIGTERM.
    assert run_cluster([bad, lonely, late, *odd]) == [2, -9, 2, 2, 2]
    assert "is not host:port" in bad.err
    assert "must join its cluster before TensorFlow runs anything" in late.err
    worker_1 = json.loads(lonely_config)["cluster"]["worker"][1]
    assert f"no answer from worker 1 ({worker_1})" in lonely.err and "--peer-timeout" in lonely.err
    assert "--batch-size 15 (the global batch) does not divide among 2 workers" in odd[0].err
    assert "the chief stopped: --batch-size 15" in odd[1].err
    for worker in (bad, lonely, late, *odd):
        assert len(worker.err.strip().splitlines()) == 1 and worker.err.startswith("error: "), worker.err
    assert not any((tmp_path / name).exists() for name in ("bad", "lonely", "late", "odd-0", "odd-1"))
