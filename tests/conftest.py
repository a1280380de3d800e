"""Shared test set-up: quiet TensorFlow, small thread pools, seeded randomness."""

import os

os.environ.setdefault("COLORKIT_SMOKE", "1")

import colorkit  # noqa: E402,F401  (imports TensorFlow quietly first)
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    """A seeded numpy generator: tests never depend on global random state."""
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A data folder holding one built sample set (``data_root/sample``), shared by the
    whole session: building takes a few seconds. Point ``COLORKIT_DATA_ROOT`` here to
    make the kit use it."""
    from colorkit.data import sample

    root = tmp_path_factory.mktemp("data")
    sample.build_sample_set(root / "sample")
    return root


@pytest.fixture(scope="session")
def sample_root(data_root):
    """The session's sample set folder."""
    return data_root / "sample"


# --- Models for inference, the CLI, the API and the browser (test_colorize, test_web, test_browser) ----


def strong_colour_model(input_shape=(64, 64, 1), hints=True, seed=0):
    """A small strided CNN whose output is pushed towards a strong orange-red.

    Training a model to clear colour takes minutes; what inference, the API and
    the page need is a model whose output certainly has colour and still
    depends on its input. So the last layer keeps 5% of its random kernel and
    gets a large bias (tanh(0.8) * 110 = 73 for a, tanh(0.5) * 110 = 51 for b)."""
    from colorkit import models

    model = models.build("strided_cnn", input_shape=input_shape, width=0.125, hints=hints, seed=seed)
    head = model.get_layer("conv_ab")
    kernel, _ = head.get_weights()
    head.set_weights([kernel * 0.05, np.array([0.8, 0.5], np.float32)])
    return model


@pytest.fixture(scope="session")
def colour_run(tmp_path_factory):
    """A run folder (checkpoints/best.keras) holding ``strong_colour_model()``: a
    64 x 64 hint model, as ``train`` would leave it for colorize, serve and export."""
    run = tmp_path_factory.mktemp("colour_run")
    (run / "checkpoints").mkdir()
    strong_colour_model().save(run / "checkpoints" / "best.keras")
    return run


def stop(process, grace: float = 20) -> None:
    """End a server the tests started: ask it to stop, then kill it if it does not within ``grace`` seconds."""
    import subprocess

    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
