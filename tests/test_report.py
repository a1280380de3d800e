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

    def record(fig, path, **options):
        figures.append(fig)
        return save(fig, path, **options)

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


def test_grid_panels_read_back_the_images_and_captions_a_grid_drew(tmp_path):
    flat = np.zeros((2, 16, 16, 3), np.float32)
    flat[0], flat[1] = (0.9, 0.1, 0.1), (0.1, 0.3, 0.9)  # one red, one blue image
    gray = np.full((2, 16, 16, 1), 0.5, np.float32)
    path = report.colorization_grid(gray, flat[::-1], flat, tmp_path / "grid.png", captions=["first", "second"])
    panels = report.grid_panels(path)
    assert panels["captions"] == ["first", "second"] and panels["columns"] == list(report.GRID_TITLES)
    for row, (gray_panel, pred_panel, true_panel) in enumerate(panels["images"]):
        assert gray_panel.shape[0] > 100 and gray_panel.shape[:2] == pred_panel.shape[:2] == true_panel.shape[:2]
        # every pixel of a panel is its image's colour: nothing of the frame or the next panel is inside
        np.testing.assert_allclose(true_panel.reshape(-1, 3).min(0), true_panel.reshape(-1, 3).max(0), atol=0.01)
        np.testing.assert_allclose(true_panel[0, 0], flat[row, 0, 0], atol=0.01)
        np.testing.assert_allclose(pred_panel[5, 5], flat[1 - row, 0, 0], atol=0.01)
        np.testing.assert_allclose(gray_panel[5, 5], [0.5, 0.5, 0.5], atol=0.01)


def test_grids_side_by_side_show_one_column_per_grid_without_nesting(tmp_path, photos, captured_figures):
    gray = metrics.gray_baseline(photos)
    early = report.colorization_grid(gray, gray, photos, tmp_path / "epoch_1.png")
    late = report.colorization_grid(gray, photos, photos, tmp_path / "epoch_2.png")
    report.grids_side_by_side([("epoch 1", early), ("epoch 2", late)], tmp_path / "over.png", title="over training",
                              rows=[0, 2])
    fig = captured_figures[-1]
    assert len(fig.axes) == 2 * 4  # two images x (gray, two epochs, truth): one grid, no grids inside it
    assert [ax.get_title() for ax in fig.axes[:4]] == ["gray input", "epoch 1", "epoch 2", "ground truth"]
    psnr = metrics.psnr_per_image(gray, photos)
    assert fig.axes[1].get_xlabel() == f"PSNR {psnr[0]:.2f} dB" and fig.axes[2].get_xlabel() == f"PSNR {metrics.psnr_per_image(photos, photos)[0]:.2f} dB"
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    with pytest.raises(ColorkitError, match="records no panels"):
        report.grid_panels(plain)


def test_draw_model_draws_with_graphviz_or_says_in_one_line_why_not(tmp_path, monkeypatch, capsys):
    keras = pytest.importorskip("keras")
    inputs = keras.Input((8, 8, 1), name="l")
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, padding="same", name="ab")(inputs))
    monkeypatch.setattr(report.shutil, "which", lambda name: None)
    assert report.draw_model(model, tmp_path / "none.png") is None
    note = capsys.readouterr().out.strip()
    assert len(note.splitlines()) == 1 and "Graphviz" in note and not (tmp_path / "none.png").exists()
    monkeypatch.undo()
    if report._missing_drawing_tools():
        pytest.skip(report._missing_drawing_tools())
    width, height = png_size(report.draw_model(model, tmp_path / "model.png"))
    assert width > 50 and height > 50


def test_image_row_and_the_example_photo(tmp_path, captured_figures):
    photo = report.example_photo(tmp_path)
    rgb = np.asarray(Image.open(photo), np.float32) / 255
    assert rgb.shape == (300, 451, 3) and report.example_photo(tmp_path) == photo
    report.image_row({"gray input": rgb.mean(-1), "colour": rgb}, tmp_path / "row.png", title="a row")
    fig = captured_figures[0]
    assert [ax.get_title() for ax in fig.axes] == ["gray input", "colour"] and fig.get_suptitle() == "a row"


def test_against_gray_writes_one_sentence_per_kind_from_the_table(tmp_path):
    rows = [{"kind": kind, "method": method, "n": n, "psnr_db": psnr, "auc_raw": auc, "colorfulness": colourful,
             "checkpoint": "best.keras, epoch 3 of 8: the lowest validation loss" if method == "model" else ""}
            for kind, n, model_psnr in (("all", 10, 21.0), ("shapes", 4, 24.5), ("photos", 6, 19.0))
            for method, psnr, auc, colourful in (("model", model_psnr, 0.9, 20.0), ("gray", 20.0, 0.85, 0.0))]
    report.write_table(rows, tmp_path / "summary_by_kind")
    by_kind = report.summary_by_kind(tmp_path)
    text = report.against_gray(by_kind, "the CNN")
    lines = text.strip().splitlines()
    assert lines[0] == "Evaluated checkpoint of the CNN: best.keras, epoch 3 of 8: the lowest validation loss."
    assert len(lines) == 3 and "held-out shapes (4 images)" in lines[1] and "held-out photos (6 images)" in lines[2]
    assert "24.50 dB against gray's 20.00 (+4.50 dB)" in lines[1] and "(-1.00 dB)" in lines[2]
    assert "0.900 against 0.850 (+0.050)" in lines[1]
    (tmp_path / "summary_by_kind.csv").unlink()
    overall = [{key: value for key, value in row.items() if key != "kind"} for row in rows if row["kind"] == "all"]
    report.write_table(overall, tmp_path / "summary")  # images of one kind: evaluate writes summary.csv alone
    alone = report.summary_by_kind(tmp_path)
    assert list(alone["kind"]) == ["all", "all"] and "all held-out images (10 images)" in report.against_gray(alone)


def test_loss_curves_from_a_keras_history_with_a_resumed_epoch(tmp_path, captured_figures):
    history = tmp_path / "history.csv"
    # a run killed after epoch 2 and resumed logs epoch 2 again; the last entry wins
    history.write_text("epoch,loss,val_loss\n0,1.0,1.2\n1,0.5,0.8\n2,0.4,0.7\n2,0.3,0.6\n3,0.2,0.5\n")
    kept = {"checkpoint": "checkpoints/best.keras", "epoch": 3, "epochs": 4, "why": "the lowest validation loss"}
    path = report.loss_curves(history, tmp_path / "loss.png", title="MSE run", ylabel="MSE of ab / 110", kept=kept)
    png_size(path)
    fig = captured_figures[0]
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {"loss", "val_loss", "kept: best.keras, epoch 3 of 4"}
    np.testing.assert_array_equal(lines["loss"].get_xdata(), [1, 2, 3, 4])  # epochs counted from 1, as tables do
    np.testing.assert_array_equal(lines["loss"].get_ydata(), [1.0, 0.5, 0.3, 0.2])
    assert lines["kept: best.keras, epoch 3 of 4"].get_xdata()[0] == 3
    assert fig.get_suptitle() == "MSE run" and ax.get_ylabel() == "MSE of ab / 110" and "epoch" in ax.get_xlabel()


def test_loss_curves_of_a_gan_run_show_every_term_on_its_own_scale(tmp_path, captured_figures):
    history = tmp_path / "gan.csv"
    steps = {"step": range(1, 11), "phase": ["pretrain"] * 4 + ["gan"] * 6, "d_loss": np.linspace(1.4, 0.7, 10),
             "g_loss": np.linspace(5, 2, 10), "g_l1": np.linspace(0.2, 0.1, 10)}
    pd.DataFrame(steps).to_csv(history, index=False)
    kept = {"checkpoint": "checkpoints/generator.keras", "epoch": 5, "epochs": 5, "why": "the last step"}
    report.loss_curves(history, tmp_path / "gan.png", kept=kept, reference=math.log(2), reference_label="log 2",
                       panels={"binary cross-entropy (nats)": ["d_loss", "g_loss"], "L1 (ab / 110)": ["g_l1"]})
    adversarial, l1 = captured_figures[0].axes
    lines = {line.get_label(): line for line in adversarial.lines}
    assert set(lines) == {"d_loss", "g_loss", "log 2", "kept: generator.keras, epoch 5 of 5"}
    assert lines["log 2"].get_ydata()[0] == pytest.approx(math.log(2))
    assert lines["kept: generator.keras, epoch 5 of 5"].get_xdata()[0] == 10  # the generator after the last step
    assert [line.get_label() for line in l1.lines][0] == "g_l1" and l1.get_ylabel() == "L1 (ab / 110)"
    warm_up = [patch for patch in adversarial.patches if patch.get_label().startswith("L1 warm-up")]
    assert len(warm_up) == 1 and warm_up[0].get_x() == pytest.approx(0.5)
    # without panels, every logged term is drawn: g_l1 too, although its name lacks "loss"
    report.loss_curves(history, tmp_path / "all.png")
    assert {line.get_label() for line in captured_figures[1].axes[0].lines} == {"d_loss", "g_loss", "g_l1"}


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


def test_metric_curve_draws_a_line_per_group_and_keeps_a_far_reference_in_view(tmp_path, captured_figures):
    rows = [{"kind": kind, "hints": n, "psnr_db": base + n / 10, "psnr_db_ci95": 0.2}
            for kind, base in (("shapes", 24.0), ("photos", 20.0)) for n in (0, 10, 100)]
    report.metric_curve(rows, "hints", "psnr_db", tmp_path / "curve.png", by="kind", reference=12.0,
                        reference_label="automatic")
    (ax,) = captured_figures[0].axes
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(lines["kind shapes"].get_ydata(), [24.0, 25.0, 34.0])
    np.testing.assert_allclose(lines["kind photos"].get_ydata(), [20.0, 21.0, 30.0])
    low, high = ax.get_ylim()
    assert low < 12.0 - 0.05 * (high - low) and high > 34.2  # the reference is well inside, not on the edge
    assert len(ax.collections) == 2  # one confidence band per kind


def test_loss_curves_errors(tmp_path):
    with pytest.raises(ColorkitError, match="does not exist"):
        report.loss_curves(tmp_path / "missing.csv", tmp_path / "loss.png")
    no_loss = tmp_path / "metrics.csv"
    no_loss.write_text("epoch,phase\n0,gan\n")
    with pytest.raises(ColorkitError, match="no loss column"):
        report.loss_curves(no_loss, tmp_path / "loss.png")
    history = tmp_path / "h.csv"
    history.write_text("epoch,loss\n0,0.5\n")
    with pytest.raises(ColorkitError, match="no column g_l2"):
        report.loss_curves(history, tmp_path / "loss.png", panels={"L2": ["g_l2"]})


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
