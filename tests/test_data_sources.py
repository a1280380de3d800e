"""Dataset loaders: each on a generated folder in the real layout, and on a
wrong layout (the one-line error naming the expected layout and the source)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorkit.data import sources
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


def test_stanford_dogs_with_the_reports_400_limit(tmp_path):
    for folder in ("n02088238-basset", "n02085620-Chihuahua"):
        _images(tmp_path / "Images" / folder, [f"{folder[:9]}_{i}.jpg" for i in range(250)])
    split = sources.load_split("stanford_dogs", tmp_path, limit=400)
    assert _counts(split) == (280, 40, 80)
    basset = sources.load_split("stanford_dogs", tmp_path / "Images", breed="basset")
    assert len(_all(basset)) == 250 and all("n02088238-basset" in p for p in _all(basset))


def test_faces_reads_the_face_images_folder(tmp_path):
    _images(tmp_path / "face_images", [f"image{i:05d}.jpg" for i in range(20)])
    assert _counts(sources.load_split("faces", tmp_path)) == (14, 2, 4)
    assert _counts(sources.load_split("faces", tmp_path, limit=10)) == (7, 1, 2)


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
