"""Zhang et al.'s (ECCV 2016) colour classes: ab bins, soft-encoding, rebalancing, annealed mean.

Zhang et al. turn colorization into classification. The ab plane is cut into
squares of side 10 and each square's centre is a class ("bin"); the network
predicts a distribution over the Q bins for every pixel. Four pieces make
that work, and each is a function here:

* ``ab_bins``: which squares are classes at all (only colours a photo can hold).
* ``soft_encode``: the training target. A hard one-hot target would tell the
  network that a colour 1 unit away from a bin centre is as wrong as one 100
  away; spreading each pixel over its k nearest bins with Gaussian weights keeps
  that notion of closeness. ``soft_encode_sparse`` gives the same target as
  k (index, weight) pairs per pixel instead of Q numbers, which is what a
  training loss needs (see ``colorkit.losses.RebalancedCrossEntropy``).
* ``empirical_prior`` and ``rebalance_weights``: photos are mostly sky, grass and
  grey, so a network trained on raw frequencies learns to paint everything
  desaturated. Weighting each pixel by the inverse (smoothed, mixed with
  uniform) frequency of its colour class makes rare, saturated colours count.
* ``annealed_mean``: back from a distribution to one colour. The mean of the
  distribution is desaturated (it averages competing modes), the mode is noisy;
  sharpening the distribution with a temperature T in between (0.38) is
  Zhang's compromise.

Units: every ``ab`` argument here is in CIELAB units (about -110..110), not the
normalised ``ab / 110`` the regression models use, except where a function says
it takes the data pipeline's ``(l_norm, ab_norm)`` pairs.

Everything that runs per pixel is a handful of vectorised TensorFlow ops (no
per-pixel Python, no scikit-learn), so it works in ``tf.data`` maps and inside
``tf.function`` train steps. The bin set (Q = 353, derived from every sRGB
colour; Zhang's published set, from ImageNet's colours, has 313) ships as
``colorkit/ab_bins.npy``; ``derive_ab_bins`` says how it is made. A bin set of
your own (npy or txt, Q rows of a and b) is accepted wherever ``bins`` is.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from colorkit import color
from colorkit.checks import check_real, check_whole
from colorkit.errors import ColorkitError
from colorkit.io import atomic_path

#: Side of the ab squares, in Lab units (Zhang et al.).
GRID_STEP = 10.0
#: Soft-encoding neighbours: 5 in Zhang's paper, 10 in their released training code.
DEFAULT_K = 5
#: The bin set contains every bin that soft-encoding with up to this many neighbours can reach.
RULE_K = 10
#: Gaussian width (Lab units) for soft-encoding and for smoothing the prior.
DEFAULT_SIGMA = 5.0
#: Annealed-mean temperature: 1 is the mean, towards 0 the mode.
DEFAULT_TEMPERATURE = 0.38
#: Weight of the uniform distribution mixed into the prior before inverting it.
DEFAULT_LAMBDA = 0.5
#: The shipped bin set (see the module docstring for the rule that made it).
BINS_FILE = Path(__file__).with_name("ab_bins.npy")

#: Squared-distance slack under which two grid points count as tied for the k-th place.
_TIE_TOLERANCE = 0.01
#: Eagerly, distances are computed for this many pixels at a time (about 100 MB for Q ~ 350).
_CHUNK_PIXELS = 1 << 16


# --- The bin set ----------------------------------------------------------------


def check_bins(values, source: str = "bins") -> np.ndarray:
    """``values`` as a [Q, 2] float32 array of distinct, finite ab bin centres (Q >= 3),
    or a ColorkitError naming ``source``."""
    bins = np.asarray(values, dtype=np.float32)
    if bins.ndim != 2 or bins.shape[1] != 2 or len(bins) < 3:
        raise ColorkitError(
            f"{source} must hold ab bin centres as a [Q, 2] array with Q >= 3, got shape {bins.shape}"
        )
    if not np.all(np.isfinite(bins)):
        raise ColorkitError(f"{source} holds non-finite bin centres; every row must be two finite numbers (a, b)")
    if len(np.unique(bins, axis=0)) != len(bins):
        raise ColorkitError(f"{source} lists the same bin centre twice; each row must be a distinct (a, b)")
    return bins


def load_bins(path) -> np.ndarray:
    """Read a bin set from a ``.npy`` or whitespace-separated ``.txt`` file of Q rows (a, b)."""
    path = Path(path)
    if path.suffix not in (".npy", ".txt"):
        raise ColorkitError(f"{path} is neither .npy nor .txt; save the [Q, 2] ab centres in one of those")
    if not path.is_file():
        raise ColorkitError(f"no bin file at {path}; give a .npy or .txt file of [Q, 2] ab centres")
    try:
        values = np.load(path, allow_pickle=False) if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as error:
        raise ColorkitError(f"{path} could not be read as a [Q, 2] array of ab centres: {error}") from error
    return check_bins(values, str(path))


def save_bins(bins, path) -> Path:
    """Write a bin set to ``path`` (.npy or .txt), atomically."""
    path = Path(path)
    bins = check_bins(bins, "the bins to save")
    if path.suffix not in (".npy", ".txt"):
        raise ColorkitError(f"bin files end in .npy or .txt, got {path.name}")
    with atomic_path(path) as tmp:
        if path.suffix == ".npy":
            np.save(tmp, bins)
        else:
            np.savetxt(tmp, bins, fmt="%g")
    return path


@functools.lru_cache(maxsize=1)
def _default_bins() -> np.ndarray:
    bins = load_bins(BINS_FILE)
    bins.flags.writeable = False  # the cached copy is shared; ab_bins() hands out copies
    return bins


def ab_bins(path=None) -> np.ndarray:
    """The ab bin centres, [Q, 2] float32 in Lab units: colorkit's set (Q = 353) or the file at ``path``."""
    return np.array(_default_bins() if path is None else load_bins(path))


def _srgb_colour_chunks(reds_per_chunk: int = 16):
    """All 256^3 8-bit sRGB colours as [N, 3] float32 in [0, 1], a slab of red values at a time."""
    levels = np.arange(256)
    for red in range(0, 256, reds_per_chunk):
        grid = np.meshgrid(levels[red:red + reds_per_chunk], levels, levels, indexing="ij")
        yield tf.constant(np.stack(grid, axis=-1).reshape(-1, 3) / 255.0, tf.float32)


#: Grid indices run from -_REACH to _REACH (ab +-200): room for every square sRGB gets near.
_REACH = 20
_SIDE = 2 * _REACH + 1
#: The 5 x 5 block of grid steps around a colour's nearest grid point.
_BLOCK = np.stack(np.meshgrid(np.arange(-2, 3), np.arange(-2, 3), indexing="ij"), axis=-1).reshape(-1, 2)
#: The same offsets as steps in a flattened [_SIDE, _SIDE] grid table.
_BLOCK_KEYS = _BLOCK[:, 0] * _SIDE + _BLOCK[:, 1]
#: Every grid point outside the 5 x 5 block around a colour's nearest one is at least this far.
_BLOCK_CLEARANCE = 2.5 * GRID_STEP


def _block_around(flat_ab):
    """Each colour's nearest grid point and its squared distances to the 5 x 5 block around it.

    Returns the grid point as a flat key into [_SIDE, _SIDE] tables ([N] int32),
    the distances ([N, 25]) and whether the grid point had to be clipped to stay
    2 steps inside the tables ([N] bool; only for colours beyond ab +-180)."""
    nearest = tf.round(flat_ab / GRID_STEP)
    limit = float(_REACH - 2)
    centre = tf.clip_by_value(nearest, -limit, limit)
    offset = flat_ab - GRID_STEP * centre  # within [-5, 5]^2 unless clipped
    block = tf.constant(GRID_STEP * _BLOCK, tf.float32)
    d2 = tf.square(offset[:, :1] - block[:, 0]) + tf.square(offset[:, 1:] - block[:, 1])
    index = tf.cast(centre, tf.int32) + _REACH
    clipped = tf.reduce_any(tf.not_equal(nearest, centre), axis=-1)
    return index[:, 0] * _SIDE + index[:, 1], d2, clipped


@tf.function
def _grid_points_hit(rgb, k):
    """For colours ``rgb`` [N, 3]: which grid points (a flat [_SIDE^2] bool mask) are among
    some colour's ``k`` nearest, ties included."""
    key, d2, _ = _block_around(color.rgb_to_lab(rgb)[:, 1:])
    kth = -tf.math.top_k(-d2, k=k).values[:, -1:]
    points = key[:, None] + tf.constant(_BLOCK_KEYS, tf.int32)
    chosen = tf.boolean_mask(points, d2 <= kth + _TIE_TOLERANCE)
    return tf.math.bincount(chosen, minlength=_SIDE * _SIDE, maxlength=_SIDE * _SIDE) > 0


def derive_ab_bins(k: int = RULE_K) -> np.ndarray:
    """Recompute the bin set: every multiple-of-10 grid point that is among the
    ``k`` nearest grid points of some 8-bit sRGB colour (a grid point tied with
    the k-th nearest, within 0.01 in squared ab units, counts too).

    Why this rule: every bin a pixel's nearest bin could be is included (the
    261 squares exact sRGB colours fall in), and so is every bin that
    soft-encoding with k = 5 (Zhang's paper) or k = 10 (Zhang's released
    training code) can give weight to; and for any sRGB colour its k nearest
    bins *within this set* are its k nearest grid points on the infinite grid,
    so soft-encoding never falls back on a farther bin because a nearer one
    was left out. With k = ``RULE_K`` = 10 that gives Q = 353. It converts all
    16.7 million colours to Lab, so the result is shipped as ``ab_bins.npy``
    (sorted by a then b; ``python -m colorkit.quantize`` rewrites it, and the
    tests check that the file equals the derivation).

    Only the 5 x 5 block of grid points around a colour's nearest one needs a
    distance: every grid point outside it is at least 25 away, while the 3 x 3
    block plus the point two steps out on the side the colour leans towards
    (10 points) are all within 21.3."""
    check_whole(k, "derive_ab_bins' k", 1, 10)
    hit = np.zeros(_SIDE * _SIDE, dtype=bool)
    for rgb in _srgb_colour_chunks():
        hit |= _grid_points_hit(rgb, int(k)).numpy()
    indices = np.argwhere(hit.reshape(_SIDE, _SIDE)) - _REACH  # argwhere: sorted by a, then b
    return (GRID_STEP * indices).astype(np.float32)


class _BinSet(NamedTuple):
    centres: np.ndarray  # [Q, 2] float32, Lab units
    block_bins: np.ndarray | None  # [_SIDE^2, 25]: bin index of each block point around each grid point, or None


def _block_bins(centres: np.ndarray):
    """For every grid point, the bin index (-1: no bin there) of each of the 25 points of
    the 5 x 5 block around it; None when some bin is not on the grid of 10 well inside
    +-_REACH steps (then only the general search applies). One table row per grid
    point lets the fast search fetch a pixel's 25 candidates with a single gather."""
    steps = centres / GRID_STEP
    if not np.array_equal(steps, np.round(steps)) or np.abs(steps).max() > _REACH - 4:
        return None
    padded = np.full((_SIDE + 4, _SIDE + 4), -1, dtype=np.int32)  # 2 empty rows/columns on each side
    index = steps.astype(np.int64) + _REACH + 2
    padded[index[:, 0], index[:, 1]] = np.arange(len(centres), dtype=np.int32)
    grid = np.stack(np.meshgrid(np.arange(_SIDE), np.arange(_SIDE), indexing="ij"), axis=-1).reshape(-1, 1, 2) + 2
    block_points = grid + _BLOCK[None]
    return padded[block_points[..., 0], block_points[..., 1]]


@functools.lru_cache(maxsize=1)
def _default_bin_set() -> _BinSet:
    return _BinSet(_default_bins(), _block_bins(_default_bins()))


def _bin_set(bins) -> _BinSet:
    """``bins`` (None: colorkit's set; else an array-like [Q, 2]) with its grid lookup.
    Kept in numpy: a tensor made once and cached would belong to whichever graph made it."""
    if bins is None:
        return _default_bin_set()
    centres = check_bins(bins, "bins")
    return _BinSet(centres, _block_bins(centres))


# --- Nearest bins ------------------------------------------------------------------------


def _as_numpy_if(result, original):
    """numpy in -> numpy out (notebooks, metrics); tensors stay tensors (tf.data, train steps)."""
    return result.numpy() if isinstance(original, np.ndarray) else result


def _flat_ab(ab):
    """``ab`` [..., 2] -> (float32 [N, 2] rows, the leading dynamic shape, the leading static shape)."""
    ab = tf.cast(tf.convert_to_tensor(ab), tf.float32)
    if ab.shape.rank is not None and (ab.shape.rank == 0 or ab.shape[-1] not in (None, 2)):
        raise ColorkitError(f"ab must have a last axis of size 2 (a, b), got shape {ab.shape}")
    return tf.reshape(ab, [-1, 2]), tf.shape(ab)[:-1], ab.shape[:-1]


def _squared_distances(flat_ab: tf.Tensor, centres: tf.Tensor) -> tf.Tensor:
    """[N, 2] x [Q, 2] -> [N, Q] squared distances as |x|^2 - 2 x.c + |c|^2.

    One matrix product instead of an [N, Q, 2] difference tensor. Rounding can
    make a distance of zero come out a hair below it, hence the clamp."""
    cross = tf.matmul(flat_ab, centres, transpose_b=True)
    squared_norms = tf.reduce_sum(tf.square(flat_ab), axis=-1, keepdims=True)
    return tf.maximum(squared_norms - 2.0 * cross + tf.reduce_sum(tf.square(centres), axis=-1), 0.0)


def _k_nearest_anywhere(flat_ab, centres, k):
    """The general search: distances to all Q bins, then ``top_k``. [N, k] squared distances and indices.

    The k chosen distances are recomputed directly: far from the origin the
    matrix-product form loses digits to cancellation, which would skew the weights."""
    centres = tf.constant(centres)
    _, indices = tf.math.top_k(-_squared_distances(flat_ab, centres), k=k)
    d2 = tf.reduce_sum(tf.square(flat_ab[:, None, :] - tf.gather(centres, indices)), axis=-1)
    return d2, indices


def _k_nearest_on_grid(flat_ab, block_bins, k):
    """The fast search for bins on the grid: only the 25 grid points of the 5 x 5 block
    around each colour's nearest grid point are candidates.

    Any grid point outside that block is at least 25 away, so wherever the k-th
    candidate found is within 25 the answer is exact; ``exact`` says whether that
    held for every pixel (a colour far outside the gamut can fail it)."""
    key, d2, clipped = _block_around(flat_ab)
    candidates = tf.gather(tf.constant(block_bins), key)
    neg_d2, position = tf.math.top_k(tf.where(candidates >= 0, -d2, -np.inf), k=k)
    exact = tf.reduce_all(-neg_d2[:, -1] <= _BLOCK_CLEARANCE**2) & tf.logical_not(tf.reduce_any(clipped))
    return -neg_d2, tf.gather(candidates, position, batch_dims=1), exact


#: k up to which the nearest bins are found among six grid points (``_k_nearest_of_six``).
_SIX_MAX_K = 5


def _k_nearest_of_six(flat_ab, block_bins, k):
    """The fastest search, for k <= 5: [N, k] squared distances and bin indices, nearest
    first, and whether the answer is exact for every pixel.

    Put the colour at offset (u, v) from the grid point it rounds to (|u|, |v| <= 5)
    and call "forward" the side it leans towards along each axis. Its 5 nearest
    points of the grid of 10 are then among six, whose order follows from three
    facts about squares of (10 -/+ |u|) and (10 -/+ |v|):

    1. the rounded point is nearest;
    2. the forward neighbours along a and along b come next, the one along the
       axis with the larger offset first;
    3. then the forward diagonal and the nearer of the two backward neighbours
       (backward along the axis with the *smaller* offset), in either order,
       then the other backward neighbour.

    So a few comparisons sort them: no per-pixel sort over 25 candidates, which
    made the block search slower than a k-d tree. These grid points are the
    nearest *bins* when they are all bins, which colorkit's set guarantees for
    every sRGB colour; ``exact`` is False otherwise (far out of gamut) and the
    caller falls back to the block search."""
    nearest = tf.round(flat_ab / GRID_STEP)
    limit = float(_REACH - 2)
    centre = tf.clip_by_value(nearest, -limit, limit)
    offset = flat_ab - GRID_STEP * centre  # within [-5, 5]^2 unless clipped
    u, v = offset[:, 0], offset[:, 1]
    forward_a, forward_b = tf.where(u >= 0.0, _SIDE, -_SIDE), tf.where(v >= 0.0, 1, -1)  # steps in the grid table
    key = tf.cast(centre[:, 0] + _REACH, tf.int32) * _SIDE + tf.cast(centre[:, 1] + _REACH, tf.int32)
    grid_bins = tf.constant(block_bins[:, len(_BLOCK) // 2])  # the bin index at each grid point, -1 for none

    def point(step_key, far_a, far_b):
        """(squared distance, bin index) of the grid point ``step_key`` away, whose
        distance along a and b is ``far_a`` and ``far_b``."""
        return tf.square(far_a) + tf.square(far_b), tf.gather(grid_bins, key + step_key)

    forward_u, forward_v = GRID_STEP - tf.abs(u), GRID_STEP - tf.abs(v)
    backward_u, backward_v = GRID_STEP + tf.abs(u), GRID_STEP + tf.abs(v)
    a_first = tf.abs(u) >= tf.abs(v)
    along_a, along_b = point(forward_a, forward_u, v), point(forward_b, u, forward_v)
    back_a, back_b = point(-forward_a, backward_u, v), point(-forward_b, u, backward_v)
    diagonal = point(forward_a + forward_b, forward_u, forward_v)

    def choose(condition, first, second):
        return tuple(tf.where(condition, x, y) for x, y in zip(first, second))

    places = [point(0, u, v), choose(a_first, along_a, along_b), choose(a_first, along_b, along_a)]
    near_back, far_back = choose(a_first, back_b, back_a), choose(a_first, back_a, back_b)
    diagonal_first = diagonal[0] <= near_back[0]
    places.append(choose(diagonal_first, diagonal, near_back))
    places.append(choose(diagonal_first, near_back, choose(diagonal[0] <= far_back[0], diagonal, far_back)))
    d2 = tf.stack([place[0] for place in places[:k]], axis=-1)
    indices = tf.stack([place[1] for place in places[:k]], axis=-1)
    exact = tf.reduce_all(indices >= 0) & tf.reduce_all(tf.equal(nearest, centre))
    return d2, indices, exact


def _k_nearest(flat_ab, bin_set: _BinSet, k: int):
    """[N, k] squared distances and bin indices of each row's k nearest bins, nearest first.

    Bins on the grid of 10 (colorkit's, and any user set on that grid) take a
    fast search: among six candidates for k <= 5 (Zhang's paper), in the 5 x 5
    block around the colour otherwise. A batch in which some colour is too far
    from every bin for the fast search falls back to a slower one, down to the
    general search, so the answer is always the true k nearest."""
    if bin_set.block_bins is None or k > len(_BLOCK):
        return _k_nearest_anywhere(flat_ab, bin_set.centres, k)

    def block_search():
        d2, indices, exact = _k_nearest_on_grid(flat_ab, bin_set.block_bins, k)
        return tf.cond(exact, lambda: (d2, indices), lambda: _k_nearest_anywhere(flat_ab, bin_set.centres, k))

    if k > _SIX_MAX_K:
        return block_search()
    d2, indices, exact = _k_nearest_of_six(flat_ab, bin_set.block_bins, k)
    return tf.cond(exact, lambda: (d2, indices), block_search)


def nearest_bins(ab, bins=None):
    """Index of the nearest bin centre for every pixel of ``ab`` ([..., 2], Lab units) -> int32 [...].

    Eagerly (numpy arrays, eager tensors) pixels go through in chunks, so an
    evaluation set of millions of pixels never needs a pixels x Q matrix at
    once; inside a graph (tf.data, tf.function) it is a single pass."""
    bin_set = _bin_set(bins)
    flat, leading, static = _flat_ab(ab)

    def nearest(rows):
        return _k_nearest(rows, bin_set, 1)[1][:, 0]

    if tf.executing_eagerly():
        chunks = [nearest(flat[start:start + _CHUNK_PIXELS]) for start in range(0, flat.shape[0], _CHUNK_PIXELS)]
        indices = tf.concat(chunks, axis=0) if chunks else tf.zeros([0], tf.int32)
    else:
        indices = nearest(flat)
    indices = tf.reshape(indices, leading)
    indices.set_shape(static)
    return _as_numpy_if(indices, ab)


# --- Soft-encoding -----------------------------------------------------------------


def _check_positive(value, name: str) -> float:
    return check_real(value, name, 0, low_open=True)


def soft_encode_sparse(ab, bins=None, k: int = DEFAULT_K, sigma: float = DEFAULT_SIGMA):
    """The soft-encoding as (bin indices [..., k] int32, weights [..., k] float32), nearest first.

    The same target as ``soft_encode`` without the zeros: k numbers per pixel
    instead of Q. A loss can gather the predicted log-probabilities at these
    indices, so a training pipeline only has to carry ab (2 numbers per pixel)
    and the encoding can run next to the model, on the accelerator."""
    bin_set = _bin_set(bins)
    num_bins = len(bin_set.centres)
    check_whole(k, "k (the nearest bins to spread over)", 1, num_bins)
    sigma = _check_positive(sigma, "sigma")
    flat, leading, static = _flat_ab(ab)
    d2, indices = _k_nearest(flat, bin_set, int(k))
    # A softmax of -d^2 / (2 sigma^2) is the normalised Gaussian; it subtracts the
    # largest term first, so a colour far from every bin cannot underflow to 0 / 0.
    weights = tf.nn.softmax(-d2 / (2.0 * sigma**2), axis=-1)
    shape = tf.concat([leading, [k]], axis=0)
    indices, weights = tf.reshape(indices, shape), tf.reshape(weights, shape)
    indices.set_shape(static.concatenate([k]))
    weights.set_shape(static.concatenate([k]))
    return _as_numpy_if(indices, ab), _as_numpy_if(weights, ab)


def soft_encode(ab, bins=None, k: int = DEFAULT_K, sigma: float = DEFAULT_SIGMA):
    """Zhang's training target: each pixel of ``ab`` ([..., 2], Lab units) becomes a
    distribution over the Q bins ([..., Q]) with Gaussian weights
    exp(-d^2 / (2 sigma^2)) on its ``k`` nearest bins and zero elsewhere: each
    pixel's weights sum to 1 and the nearest bin gets the largest.

    Vectorised (a search among nearby grid points or one matrix product, one scatter);
    numpy in gives numpy out, tensors work in ``tf.data`` maps and
    ``tf.function`` steps. The output is Q floats per pixel; see
    ``soft_encode_sparse`` for the compact form."""
    num_bins = len(_bin_set(bins).centres)
    flat, leading, static = _flat_ab(ab)
    indices, weights = soft_encode_sparse(flat, bins, k, sigma)
    rows = tf.broadcast_to(tf.range(tf.shape(flat)[0])[:, None], tf.shape(indices))
    dense = tf.scatter_nd(tf.stack([rows, indices], axis=-1), weights, [tf.shape(flat)[0], num_bins])
    encoded = tf.reshape(dense, tf.concat([leading, [num_bins]], axis=0))
    encoded.set_shape(static.concatenate([num_bins]))
    return _as_numpy_if(encoded, ab)


# --- Class rebalancing -------------------------------------------------------------


def _ab_batches(ab_source) -> Iterable:
    """Yield ab batches in Lab units from an array/tensor or from an iterable of them.

    An element that is a tuple or list is read as the data pipeline's
    ``(l_norm, ab_norm)`` pair: its last item is normalised ab and is converted
    back to Lab units with ``colorkit.color.denormalize_ab``."""
    if isinstance(ab_source, (np.ndarray, tf.Tensor)):
        yield ab_source
        return
    if not isinstance(ab_source, Iterable):
        raise ColorkitError(
            "empirical_prior takes ab pixels (an array, a tensor, or an iterable of batches such as a tf.data "
            f"dataset of (l_norm, ab_norm) pairs), got {type(ab_source).__name__}"
        )
    for element in ab_source:
        if isinstance(element, (tuple, list)):
            yield color.denormalize_ab(tf.convert_to_tensor(element[-1]))
        else:
            yield element


def _smooth_over_bins(distribution: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    """Blur a distribution over the bins with a Gaussian of width ``sigma`` in ab space.

    Each bin hands its mass to its neighbours in proportion to the Gaussian of
    their distance (every column of the kernel sums to 1), so no mass is lost at
    the gamut's edge; bins are irregularly placed, so this is a Q x Q matrix
    rather than an image filter."""
    d2 = np.sum((centres[:, None, :] - centres[None, :, :]) ** 2, axis=-1)
    kernel = np.exp(-d2 / (2.0 * sigma**2))
    return (kernel / kernel.sum(axis=0, keepdims=True)) @ distribution


def empirical_prior(ab_source, bins=None, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """How often each bin is the nearest bin of a training pixel, smoothed, summing to 1 ([Q] float64).

    ``ab_source``: ab in Lab units as an array or tensor of any shape [..., 2], or
    an iterable of such batches, or an iterable of ``(l_norm, ab_norm)`` pairs
    (a colorkit ``tf.data`` pipeline) whose normalised ab is converted back to
    Lab units. ``sigma`` (Lab units) is the Gaussian smoothing Zhang et al. apply;
    0 keeps the raw histogram."""
    bin_set = _bin_set(bins)
    check_real(sigma, "sigma (0: no smoothing)", 0)
    num_bins = len(bin_set.centres)
    counts = np.zeros(num_bins)
    for batch in _ab_batches(ab_source):
        indices = np.asarray(nearest_bins(batch, bins))
        counts += np.bincount(indices.ravel(), minlength=num_bins)
    if counts.sum() == 0:
        raise ColorkitError("empirical_prior got no pixels; give it the training set's ab values")
    prior = counts / counts.sum()
    if sigma > 0:
        prior = _smooth_over_bins(prior, bin_set.centres.astype(np.float64), float(sigma))
    return prior / prior.sum()


def rebalance_weights(prior, lam: float = DEFAULT_LAMBDA) -> np.ndarray:
    """Zhang's class weights: w proportional to ((1 - lam) p + lam / Q)^-1, scaled so E_p[w] = sum p w = 1.

    ``lam`` = 0 weights each class by 1/p (every colour counts equally, rare
    ones are hugely amplified); ``lam`` = 1 gives uniform weights (no
    rebalancing); Zhang et al. use 0.5. Because E_p[w] = 1, the average loss keeps
    its scale, so learning rates tuned without rebalancing still fit."""
    p = np.asarray(prior, dtype=np.float64)
    if p.ndim != 1 or len(p) < 3 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ColorkitError(
            "the prior must be a 1-D array of Q >= 3 non-negative probabilities (colorkit.quantize.empirical_prior)"
        )
    check_real(lam, "lam", 0, 1)
    p = p / p.sum()
    if lam == 0 and np.any(p == 0):
        raise ColorkitError("lam = 0 inverts the prior, so every bin needs a probability above 0; use lam > 0")
    weights = 1.0 / ((1.0 - lam) * p + lam / len(p))
    return weights / np.sum(p * weights)


def pixel_weights(target_probs_or_ab, weights, bins=None):
    """The rebalancing weight of each pixel: ``weights[q*]`` with q* the argmax bin of its soft-encoded target.

    Takes either soft-encoded targets ([..., Q]) or raw ab ([..., 2], Lab units;
    the argmax of a soft-encoding is the nearest bin, so no encoding is needed)."""
    weights = tf.cast(tf.convert_to_tensor(weights), tf.float32)
    target = tf.convert_to_tensor(target_probs_or_ab)
    num_bins = weights.shape[0]
    if target.shape[-1] == num_bins:
        indices = tf.argmax(target, axis=-1, output_type=tf.int32)
    elif target.shape[-1] == 2:
        indices = nearest_bins(target, bins)
    else:
        raise ColorkitError(
            f"pixel_weights takes soft-encoded targets [..., {num_bins}] or ab [..., 2], got shape {target.shape}"
        )
    return _as_numpy_if(tf.gather(weights, indices), target_probs_or_ab)


# --- From a distribution back to a colour -------------------------------------------------


def annealed_mean(logits_or_probs, bins=None, temperature: float = DEFAULT_TEMPERATURE, from_logits: bool = True):
    """One ab colour (Lab units, [..., 2]) per pixel from a distribution over the bins ([..., Q]).

    The distribution is re-sharpened, f_T(z) proportional to exp(log z / T), and
    its mean taken: T = 1 is the plain mean, T -> 0 the mode. Computed as a
    softmax of log z / T, which subtracts the maximum first, so a tiny T (0.01)
    stays finite. ``from_logits=False`` takes probabilities (zeros allowed)."""
    centres = _bin_set(bins).centres
    temperature = _check_positive(temperature, "temperature")
    scores = tf.cast(tf.convert_to_tensor(logits_or_probs), tf.float32)
    if scores.shape[-1] != len(centres):
        raise ColorkitError(
            f"annealed_mean got {scores.shape[-1]} classes but there are {len(centres)} bins; "
            "decode with the bins the model was trained on"
        )
    log_probs = scores if from_logits else tf.math.log(tf.maximum(scores, np.finfo(np.float32).tiny))
    sharpened = tf.nn.softmax(log_probs / temperature, axis=-1)
    return _as_numpy_if(tf.tensordot(sharpened, centres, axes=[[-1], [0]]), logits_or_probs)


if __name__ == "__main__":
    print(f"{save_bins(derive_ab_bins(), BINS_FILE)}: Q = {len(ab_bins())}")
