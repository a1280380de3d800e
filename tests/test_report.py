"""colorkit.report figures and tables, and the atomic writes of colorkit.io."""

import math
import os

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from colorkit import color, io, metrics, report
from colorkit.errors import ColorkitError


@pytest.fixture
def photos(rng):
    """Three small RGB images with smooth colours and a little noise."""
    y, x = np.mgrid[0:32, 0:32] / 31.0
    base = np.stack([x, y, 1 - x], -1)
    return np.clip(base[None] + rng.normal(0, 0.05, (3, 32, 32, 3)), 0, 1)


@pytest.fixture
def captured_figures(monkeypatch):
    """Record the figures report functions build (and still write them)."""
    figures = []
    save = report.save_figure

    def record(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(report, "save_figure", record)
    return figures


def png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        return image.size


def only_file_in(folder):
    (name,) = os.listdir(folder)  # no temporary file left behind
    return name


# --- Figures ------------------------------------------------------------------------------


def test_colorization_grid_writes_one_row_per_image(tmp_path, photos):
    gray = metrics.gray_baseline(photos)
    one = report.colorization_grid(gray[:1], photos[:1], photos[:1], tmp_path / "one" / "grid.png")
    three = report.colorization_grid(gray[..., :1], photos * 0.9, photos, tmp_path / "three" / "grid.png")
    (width_one, height_one), (width_three, height_three) = png_size(one), png_size(three)
    assert width_one == width_three and height_three == pytest.approx(3 * height_one, rel=0.05)
    assert only_file_in(tmp_path / "three") == "grid.png"


def test_colorization_grid_captions_are_per_image_psnr(tmp_path, photos, captured_figures):
    pred = np.clip(photos + 0.05, 0, 1)
    report.colorization_grid(photos, pred, photos, tmp_path / "grid.png")
    labels = [ax.get_xlabel() for ax in captured_figures[0].axes if ax.get_xlabel()]
    assert labels == [f"PSNR {value:.2f} dB" for value in metrics.psnr_per_image(pred, photos)]
    report.colorization_grid(photos, pred, photos, tmp_path / "grid.png", captions=["a", "b", "c"])
    assert [ax.get_xlabel() for ax in captured_figures[1].axes if ax.get_xlabel()] == ["a", "b", "c"]


def test_colorization_grid_rejects_mismatched_inputs(tmp_path, photos):
    with pytest.raises(ColorkitError, match="as many"):
        report.colorization_grid(photos[:2], photos, photos, tmp_path / "grid.png")
    with pytest.raises(ColorkitError, match="one entry per image"):
        report.colorization_grid(photos, photos, photos, tmp_path / "grid.png", captions=["only one"])
    with pytest.raises(ColorkitError, match=".png"):
        report.colorization_grid(photos, photos, photos, tmp_path / "grid")
    assert not (tmp_path / "grid").exists()


def test_loss_curves_from_a_keras_history_with_a_resumed_epoch(tmp_path, captured_figures):
    history = tmp_path / "history.csv"
    # a run killed after epoch 2 and resumed logs epoch 2 again; the last entry wins
    history.write_text("epoch,loss,val_loss\n0,1.0,1.2\n1,0.5,0.8\n2,0.4,0.7\n2,0.3,0.6\n3,0.2,0.5\n")
    path = report.loss_curves(history, tmp_path / "loss.png")
    png_size(path)
    (ax,) = captured_figures[0].axes
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {"loss", "val_loss"}
    np.testing.assert_array_equal(lines["loss"].get_xdata(), [0, 1, 2, 3])
    np.testing.assert_array_equal(lines["loss"].get_ydata(), [1.0, 0.5, 0.3, 0.2])


def test_loss_curves_of_a_gan_run_with_a_reference_line(tmp_path, captured_figures):
    history = tmp_path / "gan.csv"
    steps = {"step": range(5), "d_loss": np.linspace(1.4, 0.7, 5), "g_loss": np.linspace(5, 2, 5), "l1": 0.1}
    pd.DataFrame(steps).to_csv(history, index=False)
    report.loss_curves(history, tmp_path / "gan.png", reference=math.log(2), reference_label="log 2")
    (ax,) = captured_figures[0].axes
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {"d_loss", "g_loss", "log 2"}
    assert lines["log 2"].get_ydata()[0] == pytest.approx(math.log(2))
    assert ax.get_xlabel() == "step"


def test_metric_curve_draws_the_band_and_a_reference_line(tmp_path, captured_figures):
    rows = [{"hints": n, "psnr_db": 20.0 + n / 10, "psnr_db_ci95": 0.5} for n in (0, 1, 10, 100)]
    report.metric_curve(rows, "hints", "psnr_db", tmp_path / "curve.png", reference=21.5, reference_label="automatic")
    (ax,) = captured_figures[0].axes
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(lines["psnr_db"].get_ydata(), [20.0, 20.1, 21.0, 30.0])
    assert lines["automatic"].get_ydata()[0] == pytest.approx(21.5)
    assert ax.get_xscale() == "symlog" and len(ax.collections) == 1  # the confidence band
    assert -1 < ax.get_xlim()[0] < 0 and 100 < ax.get_xlim()[1] < 120  # no empty negative half
    with pytest.raises(ColorkitError, match="metric_curve needs columns"):
        report.metric_curve(rows, "hints", "ssim", tmp_path / "curve.png")


def test_loss_curves_errors(tmp_path):
    with pytest.raises(ColorkitError, match="does not exist"):
        report.loss_curves(tmp_path / "missing.csv", tmp_path / "loss.png")
    no_loss = tmp_path / "metrics.csv"
    no_loss.write_text("epoch,accuracy\n0,0.5\n")
    with pytest.raises(ColorkitError, match="no loss column"):
        report.loss_curves(no_loss, tmp_path / "loss.png")


def test_lab_channels_shows_the_image_and_its_l_a_b(tmp_path, photos, captured_figures):
    path = report.lab_channels(photos[0], tmp_path / "lab.png")
    png_size(path)
    fig = captured_figures[0]
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title().split()[0] for ax in panels] == ["RGB", "L", "a", "b"]
    assert len(fig.axes) == 4 + 3  # three colour bars
    lab = color.rgb_to_lab(photos[0].astype(np.float32))
    for ax, channel in zip(panels[1:], range(3)):
        np.testing.assert_allclose(ax.images[0].get_array(), lab[..., channel], atol=1e-4)
    with pytest.raises(ColorkitError, match="one RGB image"):
        report.lab_channels(photos, tmp_path / "lab.png")


def test_a_failed_figure_write_leaves_the_previous_file_and_no_partial_one(tmp_path, photos, monkeypatch):
    path = report.lab_channels(photos[0], tmp_path / "lab.png")
    before = path.read_bytes()

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half written")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        report.lab_channels(photos[1], path)
    assert path.read_bytes() == before
    assert only_file_in(tmp_path) == "lab.png"


# --- Tables -------------------------------------------------------------------------------


def test_write_table_csv_and_markdown(tmp_path):
    rows = [
        {"method": "model", "psnr_db": 24.123456, "auc_rebal": float("nan"), "n": 30},
        {"method": "gray | baseline", "psnr_db": 22.5, "auc_rebal": 0.58, "n": 30},
    ]
    csv_path, md_path = report.write_table(rows, tmp_path / "eval" / "summary")
    assert (csv_path.name, md_path.name) == ("summary.csv", "summary.md")
    back = pd.read_csv(csv_path)
    assert list(back.columns) == ["method", "psnr_db", "auc_rebal", "n"]
    assert back["psnr_db"].tolist() == [24.123456, 22.5] and math.isnan(back["auc_rebal"][0])
    lines = md_path.read_text().splitlines()
    assert lines == [
        "| method | psnr_db | auc_rebal | n |",
        "| --- | ---: | ---: | ---: |",
        "| model | 24.12 | n/a | 30 |",
        "| gray \\| baseline | 22.5 | 0.58 | 30 |",
    ]
    assert sorted(os.listdir(tmp_path / "eval")) == ["summary.csv", "summary.md"]


def test_write_table_takes_a_dataframe_and_refuses_an_empty_table(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    csv_path, _ = report.write_table(frame, tmp_path / "t")
    pd.testing.assert_frame_equal(pd.read_csv(csv_path), frame)
    with pytest.raises(ColorkitError, match="nothing to write"):
        report.write_table([], tmp_path / "empty")


def test_summary_rows_round_trip_through_write_table(tmp_path, photos):
    rows = [{"method": "gray", **row} for row in metrics.evaluate_images(metrics.gray_baseline(photos), photos)]
    csv_path, _ = report.write_table(metrics.summarize(rows, by="method"), tmp_path / "summary")
    summary = pd.read_csv(csv_path)
    assert summary["n"].tolist() == [3]
    assert summary["psnr_db"][0] == pytest.approx(np.mean([row["psnr_db"] for row in rows]))


# --- colorkit.io ------------------------------------------------------------------------------


def test_atomic_writes_create_folders_and_replace_files(tmp_path):
    path = io.atomic_write_text(tmp_path / "a" / "b" / "notes.txt", "first\n")
    io.atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n"
    io.atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert only_file_in(path.parent) == "notes.txt"


def test_atomic_path_keeps_the_suffix_writers_need(tmp_path):
    target = tmp_path / "model.weights.h5"
    with io.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".") and tmp.name.endswith("model.weights.h5")
        tmp.write_bytes(b"weights")
    assert target.read_bytes() == b"weights"
    # numpy appends .npy to names without it: the temporary name must already have it
    with io.atomic_path(tmp_path / "prior.npy") as tmp:
        np.save(tmp, np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "prior.npy"), np.arange(3))


def test_an_exception_inside_atomic_path_leaves_the_old_file(tmp_path):
    path = io.atomic_write_text(tmp_path / "table.csv", "a,b\n1,2\n")
    with pytest.raises(RuntimeError):
        with io.atomic_path(path) as tmp:
            tmp.write_text("a,b\n3,")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "a,b\n1,2\n"
    assert only_file_in(tmp_path) == "table.csv"
