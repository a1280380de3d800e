"""bench/: the benchmarks run end to end at a tiny scale, and their references
compute what colorkit computes (a speed-up over a different computation would
mean nothing). No timing is asserted: these machines are shared and noisy."""

import math

import numpy as np
import pandas as pd
import pytest

from bench import common, lab, runner, soft_encoding
from colorkit import cli, color, quantize


def test_the_cktree_reference_encodes_exactly_like_quantize(rng):
    rgb = rng.random((2, 24, 24, 3)).astype(np.float32)  # random colours: no two bins tie at the k-th place
    ab = color.rgb_to_lab(rgb)[..., 1:]
    reference = soft_encoding.KDTreeSoftEncoder(quantize.ab_bins(), k=5, sigma=5.0)
    np.testing.assert_allclose(reference.encode(ab), quantize.soft_encode(ab, k=5, sigma=5.0), atol=1e-5)
    indices, weights = reference.encode_sparse(ab)
    kit_indices, kit_weights = quantize.soft_encode_sparse(ab, k=5, sigma=5.0)
    np.testing.assert_array_equal(np.sort(indices, axis=1), np.sort(kit_indices.reshape(-1, 5), axis=1))
    np.testing.assert_allclose(weights, kit_weights.reshape(-1, 5), atol=1e-5)


def test_the_skimage_reference_lab_agrees_with_colorkit():
    images = np.stack(common.photo_crops(3, 32, 32, seed=0)).astype(np.float32) / 255.0
    assert lab.largest_difference(images, batch_size=2) < 1e-3


def test_ratios_are_against_the_baseline_whichever_way_better_goes():
    assert common.ratio_against(200.0, 100.0, "images/s") == 2.0
    assert common.ratio_against(50.0, 100.0, "ms") == 2.0
    comparison = common.Comparison("x", "y", target=3.0).baseline("slow", 10.0, "images/s")
    comparison.kit("fast", 25.0, "images/s").kit("faster", 40.0, "images/s")
    assert [row["met"] for row in comparison.rows] == ["", "NO", ""]  # the target applies to the first kit row
    with pytest.raises(ValueError):
        common.Comparison("x", "y").kit("no baseline", 1.0, "ms")


@pytest.mark.slow
def test_a_tiny_run_of_every_item_writes_results_with_ratios_against_baseline_rows(tmp_path):
    rows = runner.main(scale=runner.tiny(), out=tmp_path, log=lambda *args, **kwargs: None)
    frame = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    assert tuple(frame.columns) == common.COLUMNS and len(frame) == len(rows)
    assert "| item | case | method |" in (tmp_path / "results.md").read_text()
    assert {item.split()[0] for item in frame["item"]} == {"1", "2", "3", "4", "4b", "5", "6", "7", "8"}

    for row in frame.itertuples():
        assert math.isfinite(row.ratio) and row.ratio > 0 and row.value > 0, row
        group = frame[(frame["item"] == row.item) & (frame["case"] == row.case)]
        baseline = group[group["role"] == "baseline"]
        assert len(baseline) == 1, f"{row.item} / {row.case} needs exactly one baseline row"
        if row.role == "baseline":
            assert row.ratio == 1.0 and row.vs == ""
            continue
        assert row.role == "kit" and row.vs == baseline["method"].iloc[0]
        assert row.baseline_value == baseline["value"].iloc[0] and row.unit == baseline["unit"].iloc[0]
        assert row.ratio == pytest.approx(common.ratio_against(row.value, row.baseline_value, row.unit))
    judged = frame[frame["target"] != ""]
    assert set(judged["met"]) <= {"yes", "NO"} and len(judged) >= 6  # items 1, 2, 3, both halves of 6, and 7
    one_core = frame[frame["case"].str.endswith(f"[{runner.ONE_CORE}]")]
    assert set(one_core["role"]) == {"baseline", "kit"}  # item 1 again in a child pinned to one core


def test_the_bench_command_refuses_an_unknown_item_in_one_line(capsys):
    assert cli.main(["bench", "--only", "nonsense"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: unknown benchmark 'nonsense'") and error.count("\n") == 1
