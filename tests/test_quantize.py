"""colorkit.quantize: the bin set, soft-encoding, prior, rebalancing weights, annealed mean.

References are computed independently here: brute-force numpy distances, a
scipy cKDTree over the whole grid of 10, hand-worked small cases."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial import cKDTree

from colorkit import color, quantize
from colorkit.errors import ColorkitError

BINS = quantize.ab_bins()
Q = len(BINS)


def brute_force_soft_encoding(ab, bins, k, sigma):
    """Dense [N, Q] soft-encoding from every distance, in float64."""
    flat = np.asarray(ab, np.float64).reshape(-1, 2)
    d2 = np.sum((flat[:, None, :] - np.asarray(bins, np.float64)[None]) ** 2, axis=-1)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]
    out = np.zeros_like(d2)
    chosen = np.take_along_axis(d2, nearest, axis=1)
    weights = np.exp(-(chosen - chosen[:, :1]) / (2 * sigma**2))
    np.put_along_axis(out, nearest, weights / weights.sum(1, keepdims=True), axis=1)
    return out


def srgb_ab(rng, count):
    """ab of ``count`` random 8-bit sRGB colours."""
    rgb = rng.integers(0, 256, (count, 3)).astype(np.float32) / 255.0
    return color.rgb_to_lab(rgb)[:, 1:]


# --- The bin set ----------------------------------------------------------------------------


def test_default_bins_are_353_distinct_grid_points_sorted():
    assert BINS.shape == (353, 2) and BINS.dtype == np.float32
    assert np.array_equal(BINS, np.round(BINS / 10) * 10)
    assert len(np.unique(BINS, axis=0)) == Q
    assert np.array_equal(BINS, BINS[np.lexsort((BINS[:, 1], BINS[:, 0]))])
    BINS[0] = [999, 999]  # callers get a copy, never the cached set
    assert not np.array_equal(quantize.ab_bins()[0], [999, 999])
    BINS[:] = quantize.ab_bins()


@pytest.fixture(scope="module")
def all_srgb_ab():
    """ab of all 256^3 8-bit sRGB colours (float32, Lab units), 32 red levels at a time."""
    levels = np.arange(256, dtype=np.float32) / 255.0
    slabs = []
    for red in range(0, 256, 32):
        rgb = np.stack(np.meshgrid(levels[red:red + 32], levels, levels, indexing="ij"), axis=-1)
        slabs.append(color.rgb_to_lab(rgb.reshape(-1, 3))[:, 1:])
    return np.concatenate(slabs)


def test_bins_hold_the_nearest_grid_points_of_every_8bit_srgb_colour(all_srgb_ab):
    """The rule, checked against an independent search over the whole grid of 10:
    every colour's 5 and 10 nearest grid points are bins, the nearest ones number 261,
    and every bin is among some colour's 10 nearest."""
    steps = np.arange(-20, 21) * 10.0
    grid = np.stack(np.meshgrid(steps, steps, indexing="ij"), axis=-1).reshape(-1, 2)
    is_bin = np.zeros(len(grid), bool)
    is_bin[np.flatnonzero((grid[:, None, :] == BINS[None]).all(-1).any(1))] = True
    tree = cKDTree(grid)
    reached, nearest = np.zeros(len(grid), bool), np.zeros(len(grid), bool)
    for start in range(0, len(all_srgb_ab), 1 << 21):
        _, neighbours = tree.query(all_srgb_ab[start:start + (1 << 21)].astype(np.float64), k=10, workers=2)
        assert is_bin[neighbours[:, :5]].all(), "some colour's 5 nearest grid points are not all bins"
        assert is_bin[neighbours].all(), "some colour's 10 nearest grid points are not all bins"
        reached[neighbours.ravel()] = True
        nearest[neighbours[:, 0]] = True
    assert nearest.sum() == 261
    assert np.array_equal(reached, is_bin)
    print(f"Q = {Q}: {nearest.sum()} nearest-bin squares, {reached.sum()} reachable by 10-NN soft-encoding")


def test_shipped_bins_equal_the_derivation():
    assert np.array_equal(quantize.derive_ab_bins(), BINS)


def test_derivation_refuses_k_outside_its_proof():
    with pytest.raises(ColorkitError, match=r"in \[1, 10\]"):
        quantize.derive_ab_bins(11)


@pytest.mark.parametrize("suffix", [".npy", ".txt"])
def test_user_bin_files_round_trip(tmp_path, suffix):
    custom = BINS[::3] + 2.5
    path = quantize.save_bins(custom, tmp_path / f"bins{suffix}")
    assert np.array_equal(quantize.ab_bins(path), custom)
    assert not list(tmp_path.glob(".tmp*"))


def test_bad_bin_files_are_refused_with_one_sentence(tmp_path):
    np.save(tmp_path / "three_columns.npy", np.zeros((10, 3)))
    np.savetxt(tmp_path / "twice.txt", np.array([[0, 0], [10, 0], [0, 0]]))
    (tmp_path / "bins.csv").write_text("0,0\n")
    (tmp_path / "garbage.txt").write_text("not numbers\n")
    cases = {
        tmp_path / "three_columns.npy": r"\[Q, 2\]",
        tmp_path / "twice.txt": "same bin centre twice",
        tmp_path / "bins.csv": "neither .npy nor .txt",
        tmp_path / "missing.npy": "no bin file",
        tmp_path / "garbage.txt": "could not be read",
    }
    for path, message in cases.items():
        with pytest.raises(ColorkitError, match=message):
            quantize.ab_bins(path)
    with pytest.raises(ColorkitError, match="non-finite"):
        quantize.soft_encode(np.zeros((1, 2)), bins=[[0, 0], [10, np.nan], [0, 10]])


# --- Nearest bins and soft-encoding -----------------------------------------------------------


def test_nearest_bins_match_brute_force_in_and_out_of_gamut(rng):
    ab = np.concatenate([srgb_ab(rng, 70_000), rng.uniform(-400, 400, (2_000, 2))]).astype(np.float64)
    got = quantize.nearest_bins(ab)  # more pixels than one eager chunk
    d2 = np.sum((ab[:, None, :] - BINS[None].astype(np.float64)) ** 2, axis=-1)
    assert got.dtype == np.int32 and got.shape == (len(ab),)
    best = d2[np.arange(len(ab)), got]
    assert np.allclose(best, d2.min(1), atol=1e-2)  # equal up to float32 ties


@pytest.mark.parametrize("k", [5, 10])
def test_soft_encoding_matches_brute_force(rng, k):
    ab = srgb_ab(rng, 3000).reshape(2, 30, 50, 2)
    encoded = quantize.soft_encode(ab, k=k)
    assert isinstance(encoded, np.ndarray) and encoded.shape == (2, 30, 50, Q)
    flat = encoded.reshape(-1, Q)
    assert np.allclose(flat.sum(1), 1.0, atol=1e-5)
    assert np.all((flat > 0).sum(1) == k)
    assert np.allclose(flat, brute_force_soft_encoding(ab, BINS, k, 5.0), atol=1e-5)
    assert np.array_equal(flat.argmax(1), quantize.nearest_bins(ab).ravel())  # the nearest bin weighs most


def test_soft_encoding_of_a_bin_centre_by_hand():
    """A colour on a bin centre: its 4 grid neighbours at distance 10 share the rest
    equally, each weighted exp(-100 / 50) relative to the centre."""
    centre = np.array([[0.0, 0.0]], np.float32)
    encoded = quantize.soft_encode(centre, k=5)[0]
    own = 1.0 / (1.0 + 4.0 * np.exp(-2.0))
    assert encoded[quantize.nearest_bins(centre)[0]] == pytest.approx(own, rel=1e-5)
    neighbours = [np.flatnonzero((BINS == p).all(1))[0] for p in ([10, 0], [-10, 0], [0, 10], [0, -10])]
    assert np.allclose(encoded[neighbours], own * np.exp(-2.0), rtol=1e-5)


def test_colours_far_from_every_bin_and_off_grid_bins_take_the_general_search(rng):
    far = np.array([[300.0, 300.0], [-1000.0, 50.0], [0.0, 0.0]], np.float32)
    assert np.allclose(quantize.soft_encode(far), brute_force_soft_encoding(far, BINS, 5, 5.0), atol=1e-5)
    off_grid = BINS[::2] + np.float32(3.3)
    ab = srgb_ab(rng, 500)
    expected = brute_force_soft_encoding(ab, off_grid, 5, 5.0)
    assert np.allclose(quantize.soft_encode(ab, bins=off_grid), expected, atol=1e-5)


def test_sparse_and_dense_encodings_agree(rng):
    ab = srgb_ab(rng, 400).reshape(20, 20, 2)
    indices, weights = quantize.soft_encode_sparse(ab, k=10)
    assert indices.shape == weights.shape == (20, 20, 10) and indices.dtype == np.int32
    dense = np.zeros((20, 20, Q), np.float32)
    np.put_along_axis(dense, indices, weights, axis=-1)
    assert np.allclose(dense, quantize.soft_encode(ab, k=10), atol=1e-6)
    assert np.all(np.diff(weights, axis=-1) <= 1e-7)  # nearest first


def test_soft_encoding_runs_in_tf_data_and_tf_function(rng):
    ab = srgb_ab(rng, 4 * 8 * 8).reshape(4, 8, 8, 2)
    dataset = tf.data.Dataset.from_tensor_slices(ab).batch(2).map(quantize.soft_encode)
    assert dataset.element_spec.shape.as_list() == [None, 8, 8, Q]
    batches = np.concatenate([batch.numpy() for batch in dataset])
    encode = tf.function(quantize.soft_encode, input_signature=[tf.TensorSpec([None, None, None, 2])])
    assert np.allclose(batches, quantize.soft_encode(ab), atol=1e-6)
    assert np.allclose(encode(tf.constant(ab)).numpy(), batches, atol=1e-6)


def test_soft_encoding_refuses_bad_arguments():
    with pytest.raises(ColorkitError, match="last axis of size 2"):
        quantize.soft_encode(np.zeros((4, 3)))
    with pytest.raises(ColorkitError, match=r"k \(the nearest bins"):
        quantize.soft_encode(np.zeros((4, 2)), k=0)
    with pytest.raises(ColorkitError, match="sigma"):
        quantize.soft_encode(np.zeros((4, 2)), sigma=-1.0)


# --- Prior and rebalancing -------------------------------------------------------------------


def bin_index(a, b):
    return int(np.flatnonzero((BINS == [a, b]).all(1))[0])


def test_raw_prior_counts_nearest_bins_by_hand():
    ab = np.array([[0.4, -0.2], [1.0, 2.0], [19.0, 31.0], [-3.0, 0.0]], np.float32)
    prior = quantize.empirical_prior(ab, sigma=0)
    expected = np.zeros(Q)
    expected[bin_index(0, 0)], expected[bin_index(20, 30)] = 0.75, 0.25
    assert np.allclose(prior, expected)


def test_smoothed_prior_sums_to_one_and_spreads_to_neighbours():
    prior = quantize.empirical_prior(np.zeros((10, 10, 2), np.float32))
    assert prior.sum() == pytest.approx(1.0)
    assert prior.argmax() == bin_index(0, 0)
    ratio = prior[bin_index(10, 0)] / prior[bin_index(0, 0)]
    assert ratio == pytest.approx(np.exp(-100 / 50), rel=0.05)  # a Gaussian of sigma 5 over 10 units
    assert prior[bin_index(10, 0)] == pytest.approx(prior[bin_index(0, -10)])


def test_prior_from_arrays_batches_and_a_pipeline_agree(rng):
    ab = srgb_ab(rng, 6 * 16 * 16).reshape(6, 16, 16, 2)
    expected = quantize.empirical_prior(ab)
    l_norm = np.zeros(ab.shape[:-1] + (1,), np.float32)
    pipeline = tf.data.Dataset.from_tensor_slices((l_norm, color.normalize_ab(ab))).batch(4)
    assert np.allclose(quantize.empirical_prior(pipeline), expected, atol=1e-6)
    assert np.allclose(quantize.empirical_prior([ab[:2], tf.constant(ab[2:])]), expected, atol=1e-12)
    with pytest.raises(ColorkitError, match="no pixels"):
        quantize.empirical_prior(np.zeros((0, 2), np.float32))


def test_rebalancing_weights_have_unit_expectation(rng):
    prior = rng.dirichlet(np.full(Q, 0.3))
    for lam in (0.0, 0.25, 0.5, 1.0):
        weights = quantize.rebalance_weights(prior, lam)
        assert np.sum(prior * weights) == pytest.approx(1.0)
    weights = quantize.rebalance_weights(prior, 0.5)
    order = np.argsort(prior)
    assert np.all(np.diff(weights[order]) <= 1e-12)  # rarer colour, larger weight


def test_rebalancing_limits_and_a_hand_case():
    prior = np.array([0.5, 0.3, 0.2])
    assert np.allclose(quantize.rebalance_weights(prior, 1.0), 1.0)  # uniform: no rebalancing
    inverse = quantize.rebalance_weights(prior, 0.0)
    assert np.allclose(inverse * prior, 1.0 / 3.0)  # w = 1 / (Q p)
    mixed = 1.0 / (0.5 * prior + 0.5 / 3)  # lam = 0.5 by hand
    assert np.allclose(quantize.rebalance_weights(prior), mixed / np.sum(prior * mixed))
    with pytest.raises(ColorkitError, match="lam = 0"):
        quantize.rebalance_weights([0.5, 0.5, 0.0], 0.0)
    with pytest.raises(ColorkitError, match="lam"):
        quantize.rebalance_weights(prior, 1.5)
    with pytest.raises(ColorkitError, match="prior"):
        quantize.rebalance_weights([[0.5, 0.5]])


def test_pixel_weights_come_from_the_peak_bin(rng):
    ab = srgb_ab(rng, 200).reshape(10, 20, 2)
    weights = rng.uniform(0.5, 3.0, Q)
    expected = weights[quantize.nearest_bins(ab)]
    assert np.allclose(quantize.pixel_weights(quantize.soft_encode(ab), weights), expected)
    assert np.allclose(quantize.pixel_weights(ab, weights), expected)
    with pytest.raises(ColorkitError, match="soft-encoded"):
        quantize.pixel_weights(np.zeros((4, 7)), weights)


# --- Annealed mean ---------------------------------------------------------------------------


def test_annealed_mean_at_temperature_one_is_the_mean(rng):
    logits = rng.normal(0, 2, (3, 4, Q)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = probs @ BINS.astype(np.float64)
    assert np.allclose(quantize.annealed_mean(logits, temperature=1.0), expected, atol=1e-3)
    assert np.allclose(quantize.annealed_mean(probs, temperature=1.0, from_logits=False), expected, atol=1e-3)


def test_annealed_mean_at_a_tiny_temperature_is_the_mode(rng):
    probs = rng.dirichlet(np.ones(Q), size=50)
    mode = rng.integers(1, Q, size=50)
    probs[np.arange(50), mode] = 1.2 * probs.max(-1)  # a clear mode: the runner-up weighs < (1/1.2)^100
    probs[:, 0] = 0.0  # zero probabilities are allowed
    probs = (probs / probs.sum(-1, keepdims=True)).astype(np.float32)
    decoded = quantize.annealed_mean(probs, temperature=0.01, from_logits=False)
    assert np.all(np.isfinite(decoded))
    assert np.allclose(decoded, BINS[mode], atol=1e-3)
    logits = 1000.0 * rng.normal(size=(5, Q)).astype(np.float32)  # huge logits stay finite
    assert np.allclose(quantize.annealed_mean(logits, temperature=0.01), BINS[logits.argmax(-1)], atol=1e-3)


def test_default_temperature_lies_between_mean_and_mode():
    """Two modes of 0.6 and 0.4: the mean sits between them, T -> 0 on the larger,
    T = 0.38 much nearer to it (the weight goes as 0.6^(1/T) : 0.4^(1/T))."""
    probs = np.zeros(Q, np.float32)
    near, far = bin_index(40, 40), bin_index(-40, -40)
    probs[near], probs[far] = 0.6, 0.4
    decoded = quantize.annealed_mean(probs, from_logits=False)
    share = 0.6 ** (1 / 0.38) / (0.6 ** (1 / 0.38) + 0.4 ** (1 / 0.38))
    assert np.allclose(decoded, share * BINS[near] + (1 - share) * BINS[far], atol=1e-3)


def test_annealed_mean_refuses_a_class_count_that_is_not_q():
    with pytest.raises(ColorkitError, match="bins"):
        quantize.annealed_mean(np.zeros((2, 313), np.float32))
    with pytest.raises(ColorkitError, match="temperature"):
        quantize.annealed_mean(np.zeros((2, Q), np.float32), temperature=0)
