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
