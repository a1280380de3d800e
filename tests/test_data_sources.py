"""Dataset loaders: each on a generated folder in the real layout, and on a
wrong layout (the one-line error naming the expected layout and the source)."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorkit import cli
from colorkit.data import decode, pipeline, sources
from colorkit.errors import ColorkitError

_TINY = Image.fromarray(np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3))


def _images(folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        _TINY.save(folder / name)


def _counts(split):
    return tuple(len(split[k]) for k in ("train", "val", "test"))


def _all(split):
    return split["train"] + split["val"] + split["test"]


# --- Oxford-IIIT Pet ---------------------------------------------------------------


@pytest.fixture
def pets(tmp_path):
    images = tmp_path / "pets" / "images"
    _images(images, [f"basset_hound_{i}.jpg" for i in range(1, 201)])
    _images(images, [f"Abyssinian_{i}.jpg" for i in range(1, 11)])
    (images / "Abyssinian_100.mat").write_bytes(b"not listed")  # the archive ships a few .mat files
    return tmp_path / "pets"


def test_oxford_pets_basset_hound_is_split_134_36_30(pets):
    split = sources.load_split("oxford_pets", pets, seed=0, breed="basset_hound")
    assert _counts(split) == (134, 36, 30)
    assert all(Path(p).name.startswith("basset_hound_") for p in _all(split))
    assert len(set(_all(split))) == 200


def test_oxford_pets_split_is_deterministic_and_seeded(pets):
    first = sources.load_split("oxford_pets", pets, seed=0, breed="basset_hound")
    assert first == sources.load_split("oxford_pets", pets, seed=0, breed="basset_hound")
    assert first != sources.load_split("oxford_pets", pets, seed=1, breed="basset_hound")


def test_oxford_pets_accepts_the_images_folder_and_all_breeds(pets):
    everything = sources.load_split("oxford_pets", pets / "images")
    assert len(_all(everything)) == 210
    assert not any(p.endswith(".mat") for p in _all(everything))


def test_oxford_pets_unknown_breed_lists_the_breeds_found(pets):
    with pytest.raises(ColorkitError, match="abyssinian, basset_hound"):
        sources.load_split("oxford_pets", pets, breed="beagle")


# --- Stanford Dogs, faces ------------------------------------------------------------


def test_stanford_dogs_trains_on_the_reports_400_images_with_held_out_ones_beside_them(tmp_path):
    for folder in ("n02088238-basset", "n02085620-Chihuahua", "n02085782-Japanese_spaniel"):
        _images(tmp_path / "Images" / folder, [f"{folder[:9]}_{i}.jpg" for i in range(200)])
    split = sources.load_split("stanford_dogs", tmp_path, limit=400)
    # 400 training images; validation and test in the 70 / 10 / 20 proportion to them: 400 / 7 and 800 / 7
    assert _counts(split) == (400, 57, 114)
    assert len(set(_all(split))) == 571  # no image in two splits
    assert split == sources.load_split("stanford_dogs", tmp_path, limit=400)
    everything = sources.load_split("stanford_dogs", tmp_path)
    assert _counts(everything) == (420, 60, 120)
    basset = sources.load_split("stanford_dogs", tmp_path / "Images", breed="basset")
    assert len(_all(basset)) == 200 and all("n02088238-basset" in p for p in _all(basset))


def test_faces_trains_on_the_reports_200_images_and_holds_out_others(tmp_path):
    _images(tmp_path / "face_images", [f"image{i:05d}.jpg" for i in range(300)])
    split = sources.load_split("faces", tmp_path, limit=200)
    assert _counts(split) == (200, 29, 57)
    assert not set(split["train"]) & set(split["val"] + split["test"])
    assert _counts(sources.load_split("faces", tmp_path)) == (210, 30, 60)


def test_a_training_limit_the_folder_cannot_hold_out_beside_falls_back_to_fractions(tmp_path):
    _images(tmp_path / "face_images", [f"image{i:05d}.jpg" for i in range(20)])
    assert _counts(sources.load_split("faces", tmp_path, limit=18)) == (14, 2, 4)
    assert _counts(sources.load_split("faces", tmp_path, limit=7)) == (7, 1, 2)
    with pytest.raises(ColorkitError, match="at least one image"):
        sources.load_split("faces", tmp_path, limit=0)


# --- The classification slides' datasets ------------------------------------------------


def _sports(root: Path) -> Path:
    for part, count in (("train", 60), ("valid", 20), ("test", 20)):
        for sport in ("archery", "air hockey"):
            _images(root / part / sport, [f"{i}.jpg" for i in range(count // 2)])
    (root / "sports.csv").write_text("filepaths,labels\n")
    return root


def _intel(root: Path) -> Path:
    for cls in ("forest", "sea"):
        _images(root / "seg_train" / "seg_train" / cls, [f"{i}.jpg" for i in range(30)])
        _images(root / "seg_test" / "seg_test" / cls, [f"{i}.jpg" for i in range(10)])
    _images(root / "seg_pred" / "seg_pred", [f"{i}.jpg" for i in range(20)])
    return root


def _voc(root: Path) -> Path:
    base = root / "VOCdevkit" / "VOC2012"
    _images(base / "JPEGImages", [f"2008_{i:06d}.jpg" for i in range(150)])
    (base / "ImageSets" / "Main").mkdir(parents=True)
    (base / "ImageSets" / "Main" / "train.txt").write_text("".join(f"2008_{i:06d}\n" for i in range(100)))
    return root


def test_sports100_pools_train_valid_test_and_keeps_30_percent(tmp_path):
    root = _sports(tmp_path / "sports")
    assert _counts(sources.load_split("sports100", root)) == (21, 3, 6)
    assert _counts(sources.load_split("sports100", root, fraction=1.0)) == (70, 10, 20)


def test_intel_landscapes_pools_its_three_parts(tmp_path):
    root = _intel(tmp_path / "intel")
    assert sum(_counts(sources.load_split("intel_landscapes", root, fraction=1.0))) == 100
    assert sum(_counts(sources.load_split("intel_landscapes", root))) == 30


def test_voc2012_uses_only_the_train_list(tmp_path):
    root = _voc(tmp_path / "voc")
    split = sources.load_split("voc2012", root, fraction=1.0)
    assert _counts(split) == (70, 10, 20)
    assert max(Path(p).stem for p in _all(split)) == "2008_000099"


def test_voc2012_with_missing_images_says_how_many(tmp_path):
    root = _voc(tmp_path / "voc")
    (root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "2008_000003.jpg").unlink()
    with pytest.raises(ColorkitError, match="1 of the 100 images"):
        sources.load_split("voc2012", root)


def test_voc2012_list_that_is_not_utf8_is_one_clear_error(tmp_path):
    root = _voc(tmp_path / "voc")
    listing = root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" / "train.txt"
    listing.write_bytes(listing.read_bytes() + b"2008_caf\xe9\n")
    with pytest.raises(ColorkitError, match="train.txt is not UTF-8 text"):
        sources.load_split("voc2012", root)


@pytest.mark.parametrize("image_id", ["../../outside", "../JPEGImages/2008_000001", "sub/2008_000001", "/etc/passwd", "..", "a\\b"])
def test_voc2012_ids_that_leave_the_image_folder_are_refused(tmp_path, image_id):
    root = _voc(tmp_path / "voc")
    _images(root / "VOCdevkit", ["outside.jpg"])  # what ../../outside would reach
    listing = root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" / "train.txt"
    listing.write_text(listing.read_text() + image_id + "\n")
    with pytest.raises(ColorkitError, match="not a plain image id") as error:
        sources.load_split("voc2012", root, fraction=1.0)
    assert repr(image_id)[1:-1] in str(error.value)


def test_zhang_mix_pools_30_percent_of_each(tmp_path):
    _sports(tmp_path / "sports100"), _intel(tmp_path / "intel_landscapes"), _voc(tmp_path / "voc2012")
    split = sources.load_split("zhang_mix", tmp_path)
    assert sum(_counts(split)) == 30 + 30 + 30
    assert any("seg_pred" in p for p in _all(split)) and any("JPEGImages" in p for p in _all(split))


# --- COCO -----------------------------------------------------------------------------------


def test_coco2017_split_8000_0_2000_in_proportion(tmp_path):
    _images(tmp_path / "train2017", [f"{i:012d}.jpg" for i in range(50)])
    assert _counts(sources.load_split("coco2017", tmp_path)) == (40, 0, 10)
    assert _counts(sources.load_split("coco2017", tmp_path, limit=20)) == (16, 0, 4)


def test_coco2017_accepts_fastais_coco_sample(tmp_path):
    _images(tmp_path / "train_sample", [f"{i}.jpg" for i in range(10)])
    assert _counts(sources.load_split("coco2017", tmp_path)) == (8, 0, 2)


# --- Wrong layouts: one sentence naming the layout and where to get the data ----------------------


@pytest.mark.parametrize(
    "name, where",
    [
        ("oxford_pets", "robots.ox.ac.uk"),
        ("stanford_dogs", "ImageNetDogs"),
        ("faces", "DeepColorization"),
        ("sports100", "sports-classification"),
        ("intel_landscapes", "intel-image-classification"),
        ("voc2012", "VOCtrainval"),
        ("coco2017", "cocodataset.org"),
        ("zhang_mix", "datasets/README.md"),
    ],
)
def test_a_wrong_layout_names_the_expected_layout_and_the_source(tmp_path, name, where):
    _images(tmp_path / "random" / "stuff", ["photo.jpg"])
    with pytest.raises(ColorkitError) as error:
        sources.load_split(name, tmp_path / "random")
    message = str(error.value)
    assert "\n" not in message and "expected" in message and where in message
    with pytest.raises(ColorkitError, match="layout"):
        sources.load_split(name, tmp_path / "does-not-exist")


# --- Any folder --------------------------------------------------------------------------------


def test_folder_with_train_val_test_uses_them(tmp_path):
    _images(tmp_path / "train" / "cats", ["a.png", "b.png", "c.png"])
    _images(tmp_path / "val", ["d.png"])
    _images(tmp_path / "test", ["e.jpg", "f.JPG"])
    split = sources.load_split("folder", tmp_path)
    assert _counts(split) == (3, 1, 2)
    assert [Path(p).name for p in split["test"]] == ["e.jpg", "f.JPG"]


def test_folder_without_subfolders_is_split_70_10_20(tmp_path):
    _images(tmp_path / "a", [f"{i}.png" for i in range(6)])
    _images(tmp_path / "b", [f"{i}.png" for i in range(4)])
    (tmp_path / "notes.txt").write_text("not an image")
    _images(tmp_path / ".hidden", ["x.png"])
    split = sources.load_split("folder", tmp_path, seed=2)
    assert _counts(split) == (7, 1, 2)
    assert split == sources.load_split("folder", tmp_path, seed=2)


def test_an_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ColorkitError, match="no image files"):
        sources.load_split("folder", tmp_path)
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    with pytest.raises(ColorkitError, match="training images"):
        sources.load_split("folder", tmp_path)


# --- Deep trees and file names that are not UTF-8 ----------------------------------------------------------


def _nested(top: Path, depth: int) -> int:
    """Make ``depth`` folders ``d/d/.../d`` under ``top`` (through folder handles, as the
    path outgrows what the system accepts); an open handle on the deepest one."""
    handle = os.open(top, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=handle)
        deeper = os.open("d", os.O_RDONLY, dir_fd=handle)
        os.close(handle)
        handle = deeper
    return handle


def _remove_nested(top: Path, depth: int) -> None:
    """Remove what ``_nested`` made, deepest first, without recursion (pytest's clean-up recurses)."""
    handles = [os.open(top, os.O_RDONLY)]
    for _ in range(depth):
        handles.append(os.open("d", os.O_RDONLY, dir_fd=handles[-1]))
    for parent, child in zip(reversed(handles[:-1]), reversed(handles[1:])):
        for name in os.listdir(child):
            os.unlink(name, dir_fd=child)
        os.close(child)
        os.rmdir("d", dir_fd=parent)
    os.close(handles[0])


def test_a_tree_1500_folders_deep_is_listed(tmp_path):
    _images(tmp_path / "top", ["a.png"])
    deepest = _nested(tmp_path / "top", 1500)
    try:
        with os.fdopen(os.open("deep.png", os.O_WRONLY | os.O_CREAT, dir_fd=deepest), "wb") as file:
            _TINY.save(file, format="PNG")
        found = decode.list_images(tmp_path / "top")
        assert [Path(p).name for p in found] == ["a.png", "deep.png"]
        assert Path(found[1]).relative_to(tmp_path / "top").parts == ("d",) * 1500 + ("deep.png",)
        assert sorted(_all(sources.load_split("folder", tmp_path / "top"))) == found
    finally:
        os.close(deepest)
        _remove_nested(tmp_path / "top", 1500)


def test_a_tree_2100_folders_deep_is_one_clear_error(tmp_path, capsys):
    _images(tmp_path / "top", ["a.png"])
    os.close(_nested(tmp_path / "top", 2100))
    try:
        with pytest.raises(ColorkitError, match="too long") as error:
            decode.list_images(tmp_path / "top")
        assert len(str(error.value)) < 400
        assert cli.main(["data", "check", "folder", str(tmp_path / "top")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "too long" in err
    finally:
        _remove_nested(tmp_path / "top", 2100)


#: a file name in Latin-1, as an old camera or a Windows share may have written it: not UTF-8
NOT_UTF8 = os.fsdecode(b"caf\xe9.png")


def test_a_file_name_that_is_not_utf8_is_colorized_but_refused_for_training(tmp_path, colour_run, capsys):
    folder = tmp_path / "photos"
    _images(folder, ["good.png", NOT_UTF8])
    rgb, alpha = decode.load_image(folder / NOT_UTF8)
    np.testing.assert_array_equal(np.round(rgb * 255).astype(np.uint8), np.asarray(_TINY))
    assert decode.list_images(folder) == [str(folder / NOT_UTF8), str(folder / "good.png")]

    assert cli.main(["colorize", str(folder), "--run", str(colour_run), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == sorted([NOT_UTF8, "good.png"])
    capsys.readouterr()

    assert cli.main(["data", "check", "folder", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "caf\\xe9.png" in err and "UTF-8" in err
    with pytest.raises(ColorkitError, match=r"caf\\xe9\.png.*UTF-8"):
        pipeline.make_dataset([str(folder / "good.png"), str(folder / NOT_UTF8)], image_size=8, batch_size=1)


# --- The registry -----------------------------------------------------------------------------------


def test_every_dataset_is_listed_with_a_description():
    names = sources.available_datasets()
    expected = {"oxford_pets", "stanford_dogs", "faces", "sports100", "intel_landscapes", "voc2012", "coco2017", "folder", "sample"}
    assert expected <= set(names)
    assert all(isinstance(text, str) and text and "\n" not in text for text in names.values())


def test_unknown_names_and_options_are_user_errors(tmp_path):
    with pytest.raises(ColorkitError, match="unknown dataset 'imagenet'"):
        sources.load_split("imagenet", tmp_path)
    with pytest.raises(ColorkitError, match="no option colour; it takes breed, limit"):
        sources.load_split("oxford_pets", tmp_path, colour="red")
    with pytest.raises(ColorkitError, match="needs its folder"):
        sources.load_split("coco2017", None)


# --- TensorFlow Datasets (optional) -------------------------------------------------------------------


def test_tfds_absence_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # makes the import fail
    with pytest.raises(ColorkitError, match="tensorflow-datasets is not installed"):
        sources.tfds_images("oxford_pets")
    with pytest.raises(ColorkitError, match="no TFDS source"):
        sources.tfds_images("faces")


def test_tfds_prepared_data_is_read_and_unprepared_data_refused(monkeypatch):
    import types

    import tensorflow as tf

    calls = []

    def load(name, split, data_dir, download):
        calls.append((name, split, download))
        if data_dir == "empty":
            raise AssertionError("Dataset not found")
        images = tf.zeros([2, 5, 7, 3], tf.uint8)
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": tf.constant([0, 1])})

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", types.SimpleNamespace(load=load))
    images = list(sources.tfds_images("voc2012", split="train", data_dir="prepared"))
    assert [tuple(i.shape) for i in images] == [(5, 7, 3), (5, 7, 3)]
    assert calls == [("voc/2012", "train", False)]  # never downloads
    with pytest.raises(ColorkitError, match="no prepared voc/2012"):
        sources.tfds_images("voc2012", data_dir="empty")
