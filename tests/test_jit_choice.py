"""--jit-compile: "on" and "off" obeyed, "auto" decided by a short timed trial whose
choice and timings are recorded in config.json, with the models and optimisers left
as they were before the trial."""

import json
import types

import numpy as np
import pytest
import tensorflow as tf

from colorkit import runs, training
from colorkit.experiments import experiment_config
from colorkit.training import gan, setup
from colorkit.training.fit import decide_fit_jit


def config(**changes):
    return experiment_config("strided_cnn_dogs", "quick", **changes)


def never_called(jit):
    raise AssertionError("no trial was expected")


class FakeClock:
    """``time.perf_counter`` for ``setup``: each trial step advances it by its own duration."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def step_taking(self, seconds):
        def step():
            self.now += seconds

        return step


@pytest.mark.parametrize("asked, strategy, expected", [
    ("on", "default", True), ("off", "default", False), ("auto", "mirrored", False),
])
def test_on_and_off_are_obeyed_and_a_strategy_keeps_xla_off_without_a_trial(asked, strategy, expected):
    decision = setup.decide_jit(config(jit_compile=asked, strategy=strategy), 10_000, never_called, [])
    assert decision["jit_compile"] is expected and decision["asked"] == asked
    assert "seconds_per_step" not in decision


def test_a_short_run_trains_without_xla_untimed():
    decision = setup.decide_jit(config(), setup.JIT_TRIAL_MIN_STEPS - 1, never_called, [])
    assert decision["jit_compile"] is False and "too few" in decision["reason"]


@pytest.mark.parametrize("off, on, expected", [
    (1.0, 0.5, True),  # XLA twice as fast
    (0.5, 1.0, False),  # XLA twice as slow
    (1.0, 0.97, False),  # within JIT_MIN_GAIN: a tie, no compiling
])
def test_auto_times_both_ways_and_takes_xla_only_when_clearly_faster(off, on, expected, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(setup, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    built = []

    def trial_step(jit):
        built.append(jit)
        return clock.step_taking(on if jit else off)

    decision = setup.decide_jit(config(), None, trial_step, [])
    assert built == [False, True]
    assert decision["jit_compile"] is expected
    assert decision["seconds_per_step"] == pytest.approx({"off": off, "on": on})


def test_the_trial_puts_the_variables_back():
    weight = tf.Variable([1.0, 2.0])

    def trial_step(jit):
        return lambda: weight.assign_add([1.0, 1.0])

    setup.decide_jit(config(), None, trial_step, [weight])
    np.testing.assert_array_equal(weight.numpy(), [1.0, 2.0])


def test_a_step_xla_cannot_compile_means_off():
    def trial_step(jit):
        if jit:
            def step():
                raise tf.errors.UnimplementedError(None, None, "no XLA kernel")

            return step
        return lambda: None

    decision = setup.decide_jit(config(), None, trial_step, [])
    assert decision["jit_compile"] is False and "could not compile" in decision["reason"]


def small(sample_root, run_dir, experiment, **changes):
    values = dict(dataset="sample", root=str(sample_root), dataset_options={"kind": "shapes"}, image_size=32,
                  batch_size=8, epochs=1, steps_per_epoch=2, out=str(run_dir), model_options={"width": 0.125},
                  discriminator_options={"width": 0.125}, pretrain_epochs=0)
    return experiment_config(experiment, "quick", **{**values, **changes})


@pytest.mark.slow
def test_a_fit_run_records_its_trial_and_starts_from_the_weights_it_had(sample_root, tmp_path, monkeypatch):
    monkeypatch.setattr(setup, "JIT_TRIAL_MIN_STEPS", 1)
    run_config = small(sample_root, tmp_path / "run", "strided_cnn_dogs")
    run_dir = training.train(run_config, verbose=0)
    record = json.loads((run_dir / "config.json").read_text())
    assert record["config"]["jit_compile"] == "auto"  # what was asked stays in the config (resuming compares it)
    choice = record["jit_compile"]
    assert set(choice["seconds_per_step"]) == {"off", "on"} and all(v > 0 for v in choice["seconds_per_step"].values())
    seconds = choice["seconds_per_step"]
    assert choice["jit_compile"] == (seconds["on"] < (1 - setup.JIT_MIN_GAIN) * seconds["off"])

    model = setup.build_model(run_config)
    before = [v.numpy() for v in model.variables]
    files = setup.probe_split(runs.load_split(run_config))
    _, val = setup.make_datasets(run_config, files)
    decide_fit_jit(model, run_config, setup.steps_per_epoch(run_config, files), val)
    for value, variable in zip(before, model.variables):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)


@pytest.mark.slow
def test_a_gan_trainer_leaves_networks_and_optimisers_as_an_untimed_one_has_them(sample_root, tmp_path, monkeypatch):
    monkeypatch.setattr(setup, "JIT_TRIAL_MIN_STEPS", 1)

    def trainer(name, jit_compile):
        run_config = small(sample_root, tmp_path / name, "unet_gan", jit_compile=jit_compile)
        run_dir, run_config, split = setup.prepare_run(run_config, resume=False)
        return gan.GanTrainer(run_config, run_dir, split)

    timed, untimed = trainer("auto", "auto"), trainer("off", "off")
    assert set(timed.jit["seconds_per_step"]) == {"off", "on"} and "seconds_per_step" not in untimed.jit
    assert json.loads((timed.run_dir / "config.json").read_text())["jit_compile"] == timed.jit
    for part in ("generator", "discriminator", "g_optimizer", "d_optimizer"):
        mine, theirs = getattr(timed, part).variables, getattr(untimed, part).variables
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{part}: {a.path}")
    assert int(timed.g_optimizer.iterations.numpy()) == 0
