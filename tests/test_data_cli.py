"""`python -m colorkit data ...`: the check line, the error exit, list, sample, show."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from colorkit import cli
from colorkit.data import sample


def _pets(root: Path, count: int = 200) -> Path:
    images = root / "images"
    images.mkdir(parents=True)
    tiny = Image.fromarray(np.zeros((4, 4, 3), np.uint8))
    for i in range(1, count + 1):
        tiny.save(images / f"basset_hound_{i}.jpg")
    return root


def test_data_check_prints_the_reports_split_in_one_line(tmp_path, capsys):
    root = _pets(tmp_path / "pets")
    assert cli.main(["data", "check", "oxford_pets", str(root), "--breed", "basset_hound", "--seed", "3"]) == 0
    assert capsys.readouterr().out == "train=134 val=36 test=30\n"


def test_data_check_options_reach_the_loader(tmp_path, capsys):
    root = _pets(tmp_path / "pets")
    assert cli.main(["data", "check", "oxford_pets", str(root), "--limit", "100"]) == 0
    assert capsys.readouterr().out == "train=67 val=18 test=15\n"


def test_data_check_on_a_wrong_layout_exits_non_zero_with_one_line(tmp_path, capsys):
    assert cli.main(["data", "check", "coco2017", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert "train2017" in captured.err and "cocodataset.org" in captured.err
    assert cli.main(["data", "check", "oxford_pets", str(tmp_path), "--kind", "photos"]) == 2
    assert "no option kind" in capsys.readouterr().err


def test_the_real_command_line_exits_with_the_error_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "colorkit", "data", "check", "faces", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().startswith("error:") and "face_images" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_list_names_every_dataset(capsys):
    assert cli.main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {line.split()[0] for line in lines} >= {"oxford_pets", "coco2017", "folder", "sample"}


def test_data_sample_then_show_then_check(tmp_path, capsys):
    out = tmp_path / "sample"
    assert cli.main(["data", "sample", "--out", str(out)]) == 0
    built = capsys.readouterr().out
    assert built.startswith(f"Built the sample set at {out}: ") and (out / "manifest.json").is_file()
    assert cli.main(["data", "show", "--root", str(out)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"Sample set at {out}: ") and shown.split(": ", 1)[1] == built.split(": ", 1)[1]
    assert cli.main(["data", "check", "sample", str(out), "--kind", "shapes"]) == 0
    counts = sample.SHAPE_COUNTS
    assert capsys.readouterr().out == f"train={counts['train']} val={counts['val']} test={counts['test']}\n"
    assert cli.main(["data", "show", "--root", str(tmp_path / "empty")]) == 2
