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
def sample_root(tmp_path_factory):
    """One built sample set for the whole session (building takes a few seconds)."""
    from colorkit.data import sample

    root = tmp_path_factory.mktemp("sample")
    sample.build_sample_set(root)
    return root
