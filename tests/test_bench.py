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
    comparison.kit("with a goal of its own", 40.0, "images/s", target=4.0)
    assert (comparison.rows[-1]["target"], comparison.rows[-1]["met"]) == (">= 4x", "yes")
    with pytest.raises(ValueError):
        common.Comparison("x", "y").kit("no baseline", 1.0, "ms")


@pytest.mark.slow
def test_a_tiny_run_of_every_item_writes_results_with_ratios_against_baseline_rows(tmp_path):
    rows = runner.main(scale=runner.tiny(), out=tmp_path, log=lambda *args, **kwargs: None)
    frame = pd.read_csv(tmp_path / "results.csv", keep_default_na=False)
    assert tuple(frame.columns) == common.COLUMNS and len(frame) == len(rows)
    assert "| item | case | method |" in (tmp_path / "results.md").read_text()
    assert {item.split()[0] for item in frame["item"]} == {"1", "2", "3", "4", "4b", "4c", "5", "6", "7", "8", "9"}

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
    assert set(judged["met"]) <= {"yes", "NO"} and len(judged) >= 6  # items 1, 2, 3, both halves of 6, 7 and 8
    one_core = frame[frame["case"].str.endswith(f"[{runner.ONE_CORE}]")]
    assert set(one_core["role"]) == {"baseline", "kit"}  # item 1 again in a child pinned to one core


def test_the_bench_command_refuses_an_unknown_item_in_one_line(capsys):
    assert cli.main(["bench", "--only", "nonsense"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: unknown benchmark 'nonsense'") and error.count("\n") == 1


@pytest.mark.parametrize("name", ["unet_generator", "patchgan", "zhang_eccv16"])
def test_the_pytorch_references_compute_what_the_kits_networks_compute(name, rng):
    """Item 4c times bench.torch_reference against the kit: given the kit's weights
    (and BatchNorm statistics that are not trivial) each computes the same outputs."""
    import keras
    import torch

    from bench import torch_reference
    from colorkit import models

    model = models.build(name, input_shape=(32, 32, 1), width=0.125, seed=0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape).astype(np.float32),
                               rng.uniform(0.5, 1.5, variance.shape).astype(np.float32)])
    module = {
        "unet_generator": lambda: torch_reference.UNetGenerator(depth=5, width=0.125),
        "patchgan": lambda: torch_reference.PatchGAN(width=0.125),
        "zhang_eccv16": lambda: torch_reference.ZhangECCV16(num_bins=model.output.shape[-1], width=0.125),
    }[name]().eval()
    torch_reference.copy_weights(model, module)
    inputs = [rng.uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)]
    if name == "patchgan":
        inputs.append(rng.uniform(-1, 1, (2, 32, 32, 2)).astype(np.float32))
    expected = model(inputs if len(inputs) > 1 else inputs[0], training=False).numpy()
    with torch.no_grad():
        found = module(*map(torch_reference.nchw, inputs)).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_the_machine_line_says_which_bf16_instructions_the_cpu_has(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu avx2 avx512f amx_bf16 amx_tile\n")
    assert runner.cpu_bf16_units(cpuinfo) == "bf16 units: amx_bf16"
    cpuinfo.write_text("processor : 0\nflags : fpu avx2 avx512f\n")
    assert runner.cpu_bf16_units(cpuinfo) == "no bf16 units (no avx512_bf16 or amx_bf16 flag)"
    assert runner.cpu_bf16_units(tmp_path / "absent") == "bf16 units unknown"
