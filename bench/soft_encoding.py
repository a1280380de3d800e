"""Item 3: soft-encoding 256 x 256 ab maps onto the ab bins (k = 5, sigma = 5).

Baseline: the released Zhang et al. training layer's way, written here in our
own words: a k-d tree over the bin centres (built once), queried for each
pixel's k nearest bins, Gaussian weights, written into a dense
[pixels, Q] array, one image at a time. The kit: ``colorkit.quantize.soft_encode``
(a few comparisons between the six grid points around each colour) on a
batch in a ``tf.function``, as a training step runs it. Target: at least 5x.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bench.common import Comparison, interleaved, photo_crops, rate
from colorkit import color, quantize

ITEM = "3 soft-encoding"
TARGET = 5.0


class KDTreeSoftEncoder:
    """Reference soft-encoder: scipy's cKDTree answers the nearest-bin queries.

    Same maths as ``quantize.soft_encode``: each pixel gets weights
    exp(-d^2 / (2 sigma^2)) on its k nearest bins, normalised to sum to 1,
    zero on every other bin."""

    def __init__(self, bins, k: int = quantize.DEFAULT_K, sigma: float = quantize.DEFAULT_SIGMA):
        from scipy.spatial import cKDTree

        self.tree = cKDTree(np.asarray(bins, np.float64))
        self.num_bins, self.k, self.sigma = len(bins), k, sigma

    def encode_sparse(self, ab: np.ndarray):
        """ab [..., 2] in Lab units -> ([pixels, k] bin indices, [pixels, k] weights), nearest first."""
        distances, nearest = self.tree.query(ab.reshape(-1, 2), k=self.k)
        weights = np.exp(-(distances**2) / (2.0 * self.sigma**2))
        return nearest, weights / weights.sum(axis=1, keepdims=True)

    def encode(self, ab: np.ndarray) -> np.ndarray:
        """ab [..., 2] in Lab units -> [..., Q] float32 soft-encoding, as the layer hands it to the loss."""
        nearest, weights = self.encode_sparse(ab)
        encoded = np.zeros((len(nearest), self.num_bins), np.float32)
        encoded[np.arange(len(nearest))[:, None], nearest] = weights
        return encoded.reshape(*ab.shape[:-1], self.num_bins)


def photo_ab_maps(count: int, size: int, seed: int = 3) -> np.ndarray:
    """[count, size, size, 2] float32 ab (Lab units) of real photos: realistic colours."""
    rgb = np.stack(photo_crops(count, size, size, seed=seed)).astype(np.float32) / 255.0
    return color.rgb_to_lab(rgb)[..., 1:].astype(np.float32)


def agreement(reference: KDTreeSoftEncoder, ab_map: np.ndarray, k: int, sigma: float) -> dict:
    """How far the kit's encoding of one map is from the reference's: the largest
    |difference| of any weight, and the share of pixels whose chosen bins differ
    (only a tie between equally distant bins can make them differ)."""
    ours = quantize.soft_encode(ab_map, k=k, sigma=sigma)
    theirs = reference.encode(ab_map)
    chosen_differ = np.any((ours > 0) != (theirs > 0), axis=-1)
    return {"max_difference": float(np.abs(ours - theirs).max()), "pixels_differ": float(chosen_differ.mean())}


def run(scale) -> list[dict]:
    """Maps per second, two comparisons on the same maps.

    The encoding itself (each pixel's k nearest bins and their weights: the
    search is the work) is where the target applies: the tree's query and
    weights vs ``soft_encode_sparse``. The dense [H, W, Q] target both can
    also write is 92 MB per 256 px map, so that comparison mostly measures
    writing memory; it is shown beside, with the kit's per-map notebook call."""
    k, sigma, count, size = scale.soft_k, scale.soft_sigma, scale.soft_maps, scale.soft_size
    ab_maps = photo_ab_maps(count, size)
    reference = KDTreeSoftEncoder(quantize.ab_bins(), k, sigma)
    batch = tf.constant(ab_maps)
    sparse = tf.function(lambda ab: quantize.soft_encode_sparse(ab, k=k, sigma=sigma))
    dense = tf.function(lambda ab: quantize.soft_encode(ab, k=k, sigma=sigma))

    timings = interleaved({
        "reference": lambda: [reference.encode_sparse(ab) for ab in ab_maps],
        "kit": lambda: sparse(batch)[1].shape,
        "reference dense": lambda: [reference.encode(ab) for ab in ab_maps],
        "kit dense": lambda: dense(batch).shape,
        "kit eager": lambda: [quantize.soft_encode(ab, k=k, sigma=sigma) for ab in ab_maps],
    }, scale.repeats)
    check = agreement(reference, ab_maps[0], k, sigma)
    agreeing = (f"same encoding as the reference: max |weight difference| {check['max_difference']:.1e}, "
                f"{check['pixels_differ']:.2%} of pixels choose other bins (ties)")

    described = f"{count} ab maps of {size}x{size} px, Q = {len(quantize.ab_bins())}, k = {k}, sigma = {sigma:g}"
    encoding = Comparison(ITEM, f"{described}: k nearest bins + weights", TARGET)
    encoding.baseline("scipy cKDTree query + Gaussian weights, per map (Zhang's layer)",
                      rate(count, timings["reference"]), "maps/s", timings["reference"])
    encoding.kit("colorkit soft_encode_sparse, batch in a tf.function", rate(count, timings["kit"]), "maps/s",
                 timings["kit"], notes=agreeing)
    target = Comparison(ITEM, f"{described}: dense [H, W, Q] target")
    target.baseline("scipy cKDTree per map, written into a dense array (Zhang's layer)",
                    rate(count, timings["reference dense"]), "maps/s", timings["reference dense"])
    target.kit("colorkit soft_encode, batch in a tf.function", rate(count, timings["kit dense"]), "maps/s",
               timings["kit dense"], notes="bound by writing 4 Q bytes per pixel")
    target.kit("colorkit soft_encode, per map, numpy in and out", rate(count, timings["kit eager"]), "maps/s",
               timings["kit eager"], notes="the notebook way")
    return encoding.rows + target.rows
