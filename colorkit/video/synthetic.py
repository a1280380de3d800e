"""Clips whose motion is known, made from the photos scikit-image ships, and a
stand-in colorizer that flickers.

Each clip comes with its true backward flow (frame t onto frame t - 1, the
convention of ``colorkit.video.flow``) and where that flow is valid, so the
flicker metrics can be computed without estimating any motion, and the flow
estimate itself can be checked.

* ``pan_zoom_clip``: a camera window gliding across a photo while zooming in.
* ``moving_object_clip``: a textured disc (a piece of one photo) crossing a
  still background (another photo); pixels it uncovers have no valid flow.
* ``flickering_colorizer``: a small random-weight Keras network mapping "l"
  to "ab" whose colours depend on the whole frame and on fine detail, so they
  jump from frame to frame as the content moves: the flicker of a network
  colorizing frame by frame, without training one.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import keras
import numpy as np


class SyntheticClip(NamedTuple):
    frames: np.ndarray  # uint8 [T, H, W, 3]
    flows: np.ndarray  # float32 [T - 1, H, W, 2]: flows[t - 1] maps frame t onto frame t - 1
    valid: np.ndarray  # bool [T - 1, H, W]: where that flow shows the same surface point


def _photo(name: str) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])


def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))


def pan_zoom_clip(frames: int = 24, size=(96, 128), photo: str = "astronaut", pan=(0.35, 0.2),
                  zoom: float = 1.3) -> SyntheticClip:
    """A ``size`` (height, width) window over ``photo``: it starts showing most
    of the photo, moves by ``pan`` (fractions of the photo's width and height)
    and magnifies by ``zoom`` over the clip. Frame pixel x shows photo point
    ``scale_t * x + offset_t``, so the true flow is known in closed form."""
    height, width = size
    original = _photo(photo)
    # shrink the photo first (area-averaged) so the window starts at about one photo pixel per frame pixel:
    # sampling it sparsely instead would alias, and the aliasing would shimmer as the window moves
    shrink = 0.7 * min(original.shape[0] / height, original.shape[1] / width)
    image = cv2.resize(original, None, fx=1 / shrink, fy=1 / shrink, interpolation=cv2.INTER_AREA)
    photo_h, photo_w = image.shape[:2]
    steps = np.linspace(0.0, 1.0, frames, dtype=np.float32)
    scales = 1.0 / np.float32(zoom) ** steps
    offsets = np.stack([0.05 * photo_w + pan[0] * photo_w * steps, 0.05 * photo_h + pan[1] * photo_h * steps], axis=1)
    x, y = _pixel_grid(height, width)
    clip = np.stack([cv2.remap(image, scale * x + off[0], scale * y + off[1], cv2.INTER_LINEAR)
                     for scale, off in zip(scales, offsets.astype(np.float32))])
    flows, valid = [], []
    for t in range(1, frames):
        # the photo point under pixel x in frame t, located in frame t - 1
        prev_x = (scales[t] * x + offsets[t, 0] - offsets[t - 1, 0]) / scales[t - 1]
        prev_y = (scales[t] * y + offsets[t, 1] - offsets[t - 1, 1]) / scales[t - 1]
        flows.append(np.stack([prev_x - x, prev_y - y], axis=-1))
        valid.append((prev_x >= 0) & (prev_x <= width - 1) & (prev_y >= 0) & (prev_y <= height - 1))
    return SyntheticClip(clip, np.asarray(flows, np.float32), np.asarray(valid))


def _disc_mask(height: int, width: int, centre, radius: float) -> np.ndarray:
    """Coverage in [0, 1] of a disc, antialiased over one pixel."""
    x, y = _pixel_grid(height, width)
    distance = np.hypot(x - centre[0], y - centre[1])
    return np.clip(radius + 0.5 - distance, 0.0, 1.0)


def moving_object_clip(frames: int = 24, size=(96, 128), background: str = "coffee", texture: str = "chelsea",
                       radius_share: float = 0.25, travel: float = 0.55) -> SyntheticClip:
    """A disc textured with a piece of ``texture`` moving in a straight line over
    ``background`` (both photos resized to ``size``), crossing ``travel`` of
    the frame's width and a third as much of its height."""
    height, width = size
    back = cv2.resize(_photo(background), (width, height), interpolation=cv2.INTER_AREA)
    skin = cv2.resize(_photo(texture), (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    radius = radius_share * height
    start = np.array([radius + 2.0, height / 2 - travel * width / 6], np.float32)
    velocity = np.array([travel * width, travel * width / 3], np.float32) / max(frames - 1, 1)
    x, y = _pixel_grid(height, width)
    clip, masks = [], []
    for t in range(frames):
        centre = start + t * velocity
        # the texture moves with the disc: sample it relative to the disc's centre
        texture_now = cv2.remap(skin, x - centre[0] + width / 2, y - centre[1] + height / 2, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
        mask = _disc_mask(height, width, centre, radius)[..., None]
        clip.append(np.round(mask * texture_now + (1 - mask) * back).astype(np.uint8))
        masks.append(mask[..., 0])
    flows, valid = [], []
    for t in range(1, frames):
        on_disc = masks[t] >= 1.0  # wholly on the disc, whose texture moves with it
        flow = np.zeros((height, width, 2), np.float32)
        flow[on_disc] = -velocity
        lands_inside = (x - velocity[0] >= 0) & (y - velocity[1] >= 0)
        uncovered_in_both = (masks[t] == 0) & (masks[t - 1] == 0)  # still background, seen in both frames
        flows.append(flow)
        valid.append((on_disc & lands_inside) | uncovered_in_both)
    return SyntheticClip(np.asarray(clip), np.asarray(flows), np.asarray(valid))


def with_cut(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Two clips of the same frame size one after the other: a hard scene cut."""
    return np.concatenate([first, second])


# --- A colorizer that flickers ---------------------------------------------------------------------


def flickering_colorizer(seed: int = 0, jitter: float = 0.1, tint: float = 0.2) -> keras.Model:
    """A fully convolutional "l" -> "ab" model (any frame size) with random weights.

    Its normalised ab is the sum of three terms: a local colour (up to 0.35)
    from a small conv net, which moves with the content like a real
    colorizer's; a global ``tint`` (up to ``tint``) from the frame's mean
    features, which swings as content enters and leaves the frame; and a
    ripple of amplitude ``jitter``, ``sin`` of a phase that depends on fine
    detail and on the frame's mean lightness, so a different pattern in every
    frame. Deterministic: the same frame always gets the same colours."""
    def normal(stddev, offset):
        return keras.initializers.RandomNormal(stddev=stddev, seed=seed + offset)

    l = keras.Input((None, None, 1), name="l")
    features = keras.layers.Conv2D(8, 5, padding="same", activation="tanh", kernel_initializer=normal(0.5, 0),
                                   name="features")(l)
    local = keras.layers.Conv2D(2, 1, activation="tanh", kernel_initializer=normal(1.0, 1), name="local_ab")(features)
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(features)
    swing = keras.layers.Dense(2, activation="tanh", kernel_initializer=normal(20.0, 2), name="global_tint")(pooled)
    phase = keras.layers.Conv2D(2, 3, padding="same", kernel_initializer=normal(20.0, 3), name="detail_phase")(l)
    frame_phase = 300.0 * keras.ops.mean(l, axis=(1, 2, 3), keepdims=True)
    ab = 0.35 * local + tint * swing + jitter * keras.ops.sin(phase + frame_phase)
    return keras.Model(l, keras.layers.Identity(name="ab")(ab), name="flickering_colorizer")
