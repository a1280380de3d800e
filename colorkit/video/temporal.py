"""Temporal consistency: each frame's predicted ab, made steadier with what came before.

A network colorizing frame by frame answers each frame afresh, so a colour
can jump between frames although nothing in the picture changed: flicker.
Three ways to handle it, each a ``Stabilizer`` whose ``step(l, ab)`` takes a
frame's L (Lab units, ``[h, w]``) and predicted ab (``[h, w, 2]``, any units)
and returns the ab to show:

* ``none``: the prediction as it is (frame by frame).
* ``ema``: an exponential moving average of ab per pixel. Cheap, but blind to
  motion: a moving object drags a trail of its old colours.
* ``flow``: the previous *output* carried along the optical flow of the gray
  frames into the current one, and mixed with the new prediction where the
  flow can be trusted (forward-backward check); elsewhere (pixels newly
  uncovered, or entering the frame) the new prediction alone. Along a motion
  path this is the same moving average, so colours stay put on the surface
  they belong to.

All three look out for scene cuts: when the L histograms of consecutive
frames differ by more than ``cut_threshold`` (total variation distance, 0 for
the same histogram, 1 for disjoint ones), the state is dropped, so no colour
is carried from one shot into the next.
"""

from __future__ import annotations

import numpy as np

from colorkit.errors import ColorkitError
from colorkit.video import flow

TEMPORAL_MODES = ("none", "ema", "flow")
#: ``ema``: the share of the new prediction in each frame's output
EMA_WEIGHT = 0.5
#: ``flow``: the share of the new prediction where the flow is trusted (the
#: warped previous output gets the rest); each frame's own prediction still
#: counts, so a slow drift of the network's colour is followed within a few frames
FLOW_WEIGHT = 0.3
#: L histogram distance above which two consecutive frames belong to different shots. It sits
#: between fast camera motion within a shot and two different photos; a false cut costs one
#: frame's steadiness, a missed one lets colours bleed, so when in doubt it errs low
CUT_THRESHOLD = 0.25
#: bins of the L histogram (over L in [0, 100]) the cut detector compares
HISTOGRAM_BINS = 32


def l_histogram(lightness) -> np.ndarray:
    """The share of pixels in each of ``HISTOGRAM_BINS`` equal bins of L in [0, 100]."""
    counts, _ = np.histogram(np.asarray(lightness), bins=HISTOGRAM_BINS, range=(0.0, 100.0))
    return counts / max(counts.sum(), 1)


def histogram_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Total variation distance between two histograms (shares): half their L1 difference, in [0, 1]."""
    return float(0.5 * np.abs(first - second).sum())


class Stabilizer:
    """Frame by frame, with scene cut detection; subclasses mix in the past (``blend``)."""

    name = "none"

    def __init__(self, cut_threshold: float = CUT_THRESHOLD):
        if not 0.0 < cut_threshold <= 1.0:
            raise ColorkitError(f"the scene cut threshold is a histogram distance in (0, 1], got {cut_threshold}")
        self.cut_threshold = cut_threshold
        self.cuts: list[int] = []  # frame indices where a new shot began (after the first frame)
        self._frame = 0
        self._previous = None  # (L, L histogram, output ab) of the previous frame

    def step(self, lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
        """The ab to show for this frame (``lightness`` in Lab units, ``[h, w]``)."""
        lightness, ab = np.asarray(lightness, np.float32), np.asarray(ab, np.float32)
        histogram = l_histogram(lightness)
        new_shot = self._previous is None or histogram_distance(histogram, self._previous[1]) > self.cut_threshold
        if new_shot and self._previous is not None:
            self.cuts.append(self._frame)
        output = ab if new_shot else self.blend(lightness, ab, self._previous[0], self._previous[2])
        self._previous = (lightness, histogram, output)
        self._frame += 1
        return output

    def blend(self, lightness, ab, previous_lightness, previous_ab) -> np.ndarray:
        return ab


class MovingAverage(Stabilizer):
    """``ema``: ``weight * prediction + (1 - weight) * previous output``, per pixel."""

    name = "ema"

    def __init__(self, weight: float = EMA_WEIGHT, cut_threshold: float = CUT_THRESHOLD):
        super().__init__(cut_threshold)
        self.weight = _checked_weight(weight)

    def blend(self, lightness, ab, previous_lightness, previous_ab) -> np.ndarray:
        return self.weight * ab + (1.0 - self.weight) * previous_ab


class FlowPropagation(Stabilizer):
    """``flow``: the previous output warped along the gray frames' optical flow,
    mixed with the prediction (``weight`` of it) where the flow is trusted."""

    name = "flow"

    def __init__(self, weight: float = FLOW_WEIGHT, cut_threshold: float = CUT_THRESHOLD):
        super().__init__(cut_threshold)
        self.weight = _checked_weight(weight)

    def blend(self, lightness, ab, previous_lightness, previous_ab) -> np.ndarray:
        backward, trusted = flow.trusted_flow(lightness, previous_lightness)
        carried = flow.warp(previous_ab, backward)
        mixed = self.weight * ab + (1.0 - self.weight) * carried
        return np.where(trusted[..., None], mixed, ab)


def _checked_weight(weight: float) -> float:
    if not 0.0 < weight <= 1.0:
        raise ColorkitError(f"the share of the new prediction must be in (0, 1], got {weight}")
    return float(weight)


STABILIZERS = {"none": Stabilizer, "ema": MovingAverage, "flow": FlowPropagation}


def make_stabilizer(temporal="flow", **settings) -> Stabilizer:
    """A fresh ``Stabilizer`` for ``temporal`` (a mode name; a ``Stabilizer`` is
    returned as it is). ``settings``: ``weight``, ``cut_threshold``."""
    if isinstance(temporal, Stabilizer):
        return temporal
    if temporal not in STABILIZERS:
        raise ColorkitError(f"--temporal must be one of {', '.join(TEMPORAL_MODES)}, got {temporal!r}")
    return STABILIZERS[temporal](**settings)
