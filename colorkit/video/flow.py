"""Optical flow between gray frames, warping by it, and where it can be trusted.

Convention: ``flow = optical_flow(a, b)`` has shape ``[H, W, 2]`` and
``flow[y, x] = (dx, dy)`` says that pixel ``(x, y)`` of frame ``a`` shows what
``(x + dx, y + dy)`` of frame ``b`` shows. ``warp(image_b, flow)`` samples
``image_b`` there: frame ``b`` moved onto ``a``'s pixels. With ``a`` the
current frame and ``b`` the previous one, that carries the previous output
along the motion into the current frame (a "backward" flow).

The flow is OpenCV's DIS (Kroeger et al. 2016, "Fast Optical Flow using Dense
Inverse Search"): a maintained, CPU-fast method that needs no trained weights.
Where the flow cannot be trusted (a pixel newly uncovered, one that leaves
the frame, a wrong match) is found by the forward-backward check of
Sundaram, Brox and Keutzer (2010), which Ruder et al. (2016) and Lai et al.
(2018) use for the same purpose.
"""

from __future__ import annotations

import cv2
import numpy as np

#: DIS quality preset: MEDIUM is about as fast as FAST on small frames and clearly more accurate on pans
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
#: forward-backward check: a round trip a -> b -> a may miss its start by
#: CONSISTENCY_RELATIVE * (|f_ab|^2 + |f_ba|^2) + CONSISTENCY_ABSOLUTE (in squared pixels)
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5


def to_gray8(frame) -> np.ndarray:
    """What the flow works on: uint8 ``[H, W]``. Takes uint8 gray or RGB, float
    RGB in [0, 1], or Lab L in [0, 100] given as float ``[H, W]`` or ``[H, W, 1]``
    (a float single channel is read as L)."""
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    if frame.ndim == 3:
        rgb = frame if frame.dtype == np.uint8 else np.round(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)
        return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if frame.dtype == np.uint8:
        return frame
    return np.round(np.clip(frame, 0.0, 100.0) * 2.55).astype(np.uint8)


def optical_flow(a, b) -> np.ndarray:
    """Dense flow ``[H, W, 2]`` (float32, pixels) from frame ``a`` to frame ``b``
    (see the module docstring; both go through ``to_gray8``)."""
    solver = cv2.DISOpticalFlow_create(DIS_PRESET)
    return solver.calc(to_gray8(a), to_gray8(b), None)


def _sample_positions(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = flow.shape[:2]
    x, y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return x + flow[..., 0], y + flow[..., 1]


def warp(image, flow) -> np.ndarray:
    """``image`` (``[H, W]`` or ``[H, W, C]``) sampled bilinearly at each pixel
    plus its flow; positions outside the image take the nearest edge pixel
    (mark them untrusted with ``inside``)."""
    map_x, map_y = _sample_positions(np.asarray(flow, np.float32))
    image = np.asarray(image, np.float32)
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(image.shape)


def inside(flow) -> np.ndarray:
    """Which pixels' flow lands inside the frame (bool ``[H, W]``)."""
    map_x, map_y = _sample_positions(np.asarray(flow, np.float32))
    height, width = map_x.shape
    return (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)


def consistent(flow_ab, flow_ba) -> np.ndarray:
    """Which pixels of ``a`` the flow can be trusted at (bool ``[H, W]``): the
    flow lands inside ``b``, and following ``flow_ab`` then ``flow_ba`` comes
    back to the start, up to the tolerance of Sundaram et al. A pixel of ``a``
    hidden in ``b`` (occluded) fails: ``b``'s flow there belongs to whatever
    covers it."""
    flow_ab, flow_ba = np.asarray(flow_ab, np.float32), np.asarray(flow_ba, np.float32)
    back = warp(flow_ba, flow_ab)
    miss = np.sum((flow_ab + back) ** 2, axis=-1)
    allowed = CONSISTENCY_RELATIVE * (np.sum(flow_ab**2, axis=-1) + np.sum(back**2, axis=-1)) + CONSISTENCY_ABSOLUTE
    return (miss <= allowed) & inside(flow_ab)


def trusted_flow(current, previous) -> tuple[np.ndarray, np.ndarray]:
    """The flow from ``current`` to ``previous`` and where it can be trusted:
    what ``warp(previous_output, flow)`` needs, and the mask to keep."""
    backward = optical_flow(current, previous)
    forward = optical_flow(previous, current)
    return backward, consistent(backward, forward)
