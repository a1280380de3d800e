"""Where images come from: one loader per dataset the reports used, any folder,
and the embedded sample set.

``load_split(name, root, seed=0, **options)`` returns ``{"train", "val",
"test"}``, each a sorted list of file paths, split the way the dataset's report
split it (see datasets/README.md for each dataset's card). Loaders only list
files: they are fast on 100,000 images, and decoding problems are the
pipeline's business (it skips unreadable files with a warning). A file whose
name is not UTF-8 is refused here, by name, since TensorFlow cannot open it.

Every loader reads a local folder in the layout the dataset ships with (after
unpacking the official archive) and checks that layout first, failing with
one sentence that names the expected layout and where to download the data.
A loader also accepts the dataset's inner folder (``images/``, ``Images/``,
``face_images/``) as root, since that is where people often point.

Report splits:

==================  =====================================================
oxford_pets         134 / 36 / 30 of the 200 basset hounds (ResNet report)
stanford_dogs       70 / 10 / 20; limit=400: 400 train + 57 / 114 held out
faces               70 / 10 / 20; limit=200: 200 train + 29 / 57 held out
sports100           30% of all images, then 70 / 10 / 20 (classification slides)
intel_landscapes    30% of all images, then 70 / 10 / 20 (classification slides)
voc2012             30% of ImageSets/Main/train.txt, then 70 / 10 / 20
zhang_mix           the three above pooled, as the classification slides did
coco2017            a seeded 10,000, then 8,000 train / 0 val / 2,000 test (GAN report)
folder              its train/ val/ test/ subfolders, else 70 / 10 / 20
sample              the sample set's own train/ val/ test/ folders
==================  =====================================================

TensorFlow Datasets is an alternative source for some of them
(``tfds_images``); it is never required.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from colorkit.data import sample, splits
from colorkit.data.decode import IMAGE_EXTENSIONS, list_images, readable_folder, refuse_names_not_utf8
from colorkit.errors import ColorkitError

PETS_COUNTS = (134, 36, 30)  # ResNet report: 200 basset hound images
COCO_COUNTS = (8000, 0, 2000)  # GAN report: 8,000 train, 2,000 test, no validation
ZHANG_FRACTION = 0.3  # classification slides: 30% of each dataset

#: name -> (expected layout, where to download). Used by the layout errors.
LAYOUTS = {
    "oxford_pets": (
        "ROOT/images/<Breed_name>_<number>.jpg (the images.tar.gz archive unpacked)",
        "https://www.robots.ox.ac.uk/~vgg/data/pets/",
    ),
    "stanford_dogs": (
        "ROOT/Images/n<8 digits>-<breed>/*.jpg (the images.tar archive unpacked)",
        "http://vision.stanford.edu/aditya86/ImageNetDogs/",
    ),
    "faces": (
        "ROOT/face_images/image<5 digits>.jpg (the repository's face_images folder)",
        "https://github.com/2014mchidamb/DeepColorization/tree/master/face_images",
    ),
    "sports100": (
        "ROOT/train/<sport>/*.jpg with ROOT/valid/ and ROOT/test/ alike",
        "https://www.kaggle.com/datasets/gpiosenka/sports-classification",
    ),
    "intel_landscapes": (
        "ROOT/seg_train/seg_train/<buildings|forest|glacier|mountain|sea|street>/*.jpg (seg_test, seg_pred optional)",
        "https://www.kaggle.com/datasets/puneet6060/intel-image-classification",
    ),
    "voc2012": (
        "ROOT/VOCdevkit/VOC2012/ImageSets/Main/train.txt and ROOT/VOCdevkit/VOC2012/JPEGImages/<id>.jpg",
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ (VOCtrainval_11-May-2012.tar)",
    ),
    "coco2017": (
        "ROOT/train2017/*.jpg (official) or ROOT/train_sample/*.jpg (fastai's 20,000-image coco_sample)",
        "https://cocodataset.org/#download or https://s3.amazonaws.com/fast-ai-coco/coco_sample.tgz",
    ),
    "zhang_mix": (
        "ROOT/sports100/, ROOT/intel_landscapes/ and ROOT/voc2012/, each in its own dataset's layout",
        "the three datasets' pages (see datasets/README.md)",
    ),
    "folder": ("a folder of images, optionally with train/ val/ test/ subfolders", "anywhere"),
    "sample": ("the sample set's train/ val/ test/ folders and manifest.json", "`python -m colorkit data sample`"),
}

_PET_FILE = re.compile(r"^(?P<breed>[A-Za-z_]+)_\d+\.jpg$")
_DOG_FOLDER = re.compile(r"^n\d{8}-(?P<breed>.+)$")
_FACE_FILE = re.compile(r"^image\d+\.jpg$", re.IGNORECASE)
_INTEL_CLASSES = ("buildings", "forest", "glacier", "mountain", "sea", "street")
#: a VOC image id names a file directly inside JPEGImages (2008_000008): no folder part, not hidden
_VOC_ID = re.compile(r"[^/\\.\x00][^/\\\x00]*")


def _layout_error(name: str, root) -> ColorkitError:
    layout, url = LAYOUTS[name]
    return ColorkitError(f"{root} does not have the {name} layout: expected {layout}; get it from {url} (see datasets/README.md)")


def _root_folder(name: str, root) -> Path:
    """``root`` as an absolute folder, or the layout error when it is not one."""
    if root is None:
        raise ColorkitError(f"the {name} dataset needs its folder; expected {LAYOUTS[name][0]} (see datasets/README.md)")
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise _layout_error(name, root)
    return readable_folder(root)


def _first_match(candidates, is_layout):
    """The first existing folder among ``candidates`` for which ``is_layout`` holds."""
    return next((folder for folder in candidates if folder.is_dir() and is_layout(folder)), None)


def _images_in(folder: Path) -> list[str]:
    """Image files directly inside ``folder`` (not recursive), sorted."""
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _subset(files, seed: int, fraction: float | None = None, limit: int | None = None) -> list[str]:
    """The report's subset: ``fraction`` of the files, then at most ``limit``."""
    if fraction is not None:
        files = splits.take_fraction(files, fraction, seed)
    return splits.take(files, limit, seed)


# --- Oxford-IIIT Pet (ResNet report) ------------------------------------------------


def _oxford_pets(root, seed: int, breed: str | None = None, limit: int | None = None) -> dict:
    """Oxford-IIIT Pet, optionally one breed (e.g. ``breed="basset_hound"``)."""
    root = _root_folder("oxford_pets", root)
    folder = _first_match([root / "images", root], lambda f: any(_PET_FILE.match(p.name) for p in f.iterdir()))
    if folder is None:
        raise _layout_error("oxford_pets", root)
    by_breed = {}
    for path in _images_in(folder):
        match = _PET_FILE.match(Path(path).name)
        if match:
            by_breed.setdefault(match["breed"].lower(), []).append(path)
    if breed is None:
        files = [path for paths in by_breed.values() for path in paths]
    elif breed.lower() in by_breed:
        files = by_breed[breed.lower()]
    else:
        raise ColorkitError(f"no {breed!r} images in {folder}; breeds found: {', '.join(sorted(by_breed))}")
    return splits.report_split(_subset(files, seed, limit=limit), PETS_COUNTS, seed)


# --- Stanford Dogs and the face_images folder (2018 strided-CNN report) -------------


def _stanford_dogs(root, seed: int, breed: str | None = None, limit: int | None = None) -> dict:
    """Stanford Dogs (120 breeds), optionally one breed folder (e.g. ``"basset"``);
    ``limit``: the number of training images (``splits.split_with_training_count``)."""
    root = _root_folder("stanford_dogs", root)
    folder = _first_match([root / "Images", root], lambda f: any(_DOG_FOLDER.match(p.name) for p in f.iterdir() if p.is_dir()))
    if folder is None:
        raise _layout_error("stanford_dogs", root)
    breeds = {_DOG_FOLDER.match(p.name)["breed"].lower(): p for p in folder.iterdir() if p.is_dir() and _DOG_FOLDER.match(p.name)}
    if breed is not None and breed.lower() not in breeds:
        raise ColorkitError(f"no {breed!r} folder in {folder}; breeds found: {', '.join(sorted(breeds))}")
    chosen = [breeds[breed.lower()]] if breed is not None else list(breeds.values())
    files = [path for breed_folder in chosen for path in _images_in(breed_folder)]
    return splits.split_with_training_count(files, limit, seed=seed)


def _faces(root, seed: int, limit: int | None = None) -> dict:
    """The face_images folder of the DeepColorization repository (750 faces);
    ``limit``: the number of training images (``splits.split_with_training_count``)."""
    root = _root_folder("faces", root)
    folder = _first_match([root / "face_images", root], lambda f: any(_FACE_FILE.match(p.name) for p in f.iterdir()))
    if folder is None:
        raise _layout_error("faces", root)
    files = [path for path in _images_in(folder) if _FACE_FILE.match(Path(path).name)]
    return splits.split_with_training_count(files, limit, seed=seed)


# --- The classification slides' mix: 100 Sports, Intel landscapes, VOC 2012 ----------


def _sports100_files(root) -> list[str]:
    root = _root_folder("sports100", root)
    if not (root / "train").is_dir() or not any(p.is_dir() for p in (root / "train").iterdir()):
        raise _layout_error("sports100", root)
    return [path for part in ("train", "valid", "test") if (root / part).is_dir() for path in list_images(root / part)]


def _intel_files(root) -> list[str]:
    root = _root_folder("intel_landscapes", root)

    def part_folder(part):
        return _first_match([root / part / part, root / part], lambda f: any((f / c).is_dir() for c in _INTEL_CLASSES))

    if part_folder("seg_train") is None:
        raise _layout_error("intel_landscapes", root)
    parts = [part_folder("seg_train"), part_folder("seg_test"), _first_match([root / "seg_pred" / "seg_pred", root / "seg_pred"], lambda f: True)]
    return [path for folder in parts if folder is not None for path in list_images(folder)]


def _voc_files(root) -> list[str]:
    root = _root_folder("voc2012", root)
    base = _first_match([root / "VOCdevkit" / "VOC2012", root / "VOC2012", root], lambda f: (f / "ImageSets" / "Main" / "train.txt").is_file())
    if base is None or not (base / "JPEGImages").is_dir():
        raise _layout_error("voc2012", root)
    ids = _voc_ids(base / "ImageSets" / "Main" / "train.txt")
    files = [base / "JPEGImages" / f"{image_id}.jpg" for image_id in ids]
    missing = sum(not f.is_file() for f in files)
    if missing:
        raise ColorkitError(f"{missing} of the {len(files)} images listed in {base}/ImageSets/Main/train.txt are missing from JPEGImages; unpack the whole VOCtrainval_11-May-2012.tar")
    return sorted(str(f) for f in files)


def _voc_ids(listing: Path) -> list[str]:
    """The image ids of a VOC list (UTF-8 text, one id per line), each checked to
    name a file inside JPEGImages: an id such as ``../../x`` would reach outside
    the dataset folder."""
    try:
        ids = listing.read_bytes().decode("utf-8").split()
    except UnicodeDecodeError as error:
        raise ColorkitError(f"{listing} is not UTF-8 text (byte {error.start} cannot be read); "
                            "expected the image ids of the official archive, one per line") from None
    bad = next((image_id for image_id in ids if not _VOC_ID.fullmatch(image_id)), None)
    if bad is not None:
        raise ColorkitError(f"{listing} lists {bad!r}, which is not a plain image id (like 2008_000008): "
                            "an id names a file inside JPEGImages, without folders")
    return ids


def _sports100(root, seed: int, fraction: float = ZHANG_FRACTION, limit: int | None = None) -> dict:
    """100 Sports: all of train/valid/test pooled, 30% kept, 70/10/20."""
    return splits.split_by_fractions(_subset(_sports100_files(root), seed, fraction, limit), seed=seed)


def _intel_landscapes(root, seed: int, fraction: float = ZHANG_FRACTION, limit: int | None = None) -> dict:
    """Intel landscapes: seg_train, seg_test and seg_pred pooled, 30% kept, 70/10/20."""
    return splits.split_by_fractions(_subset(_intel_files(root), seed, fraction, limit), seed=seed)


def _voc2012(root, seed: int, fraction: float = ZHANG_FRACTION, limit: int | None = None) -> dict:
    """Pascal VOC 2012: the images of ImageSets/Main/train.txt, 30% kept, 70/10/20."""
    return splits.split_by_fractions(_subset(_voc_files(root), seed, fraction, limit), seed=seed)


def _zhang_mix(root, seed: int, fraction: float = ZHANG_FRACTION, limit: int | None = None) -> dict:
    """30% of each of the three datasets (in ROOT/sports100, ROOT/intel_landscapes,
    ROOT/voc2012), pooled, then one 70/10/20 split, as the slides describe."""
    root = _root_folder("zhang_mix", root)
    parts = {"sports100": _sports100_files, "intel_landscapes": _intel_files, "voc2012": _voc_files}
    if not all((root / name).is_dir() for name in parts):
        raise _layout_error("zhang_mix", root)
    pooled = [path for name, list_files in parts.items() for path in _subset(list_files(root / name), seed, fraction)]
    return splits.split_by_fractions(_subset(pooled, seed, limit=limit), seed=seed)


# --- COCO (GAN report) -----------------------------------------------------------------


def _coco2017(root, seed: int, limit: int = sum(COCO_COUNTS)) -> dict:
    """A seeded ``limit`` images of COCO train2017 (or fastai's coco_sample),
    split 8,000 / 0 / 2,000 as the report did (in proportion for other limits)."""
    root = _root_folder("coco2017", root)
    folder = _first_match([root / "train2017", root / "train_sample", root / "coco_sample" / "train_sample"], lambda f: True)
    files = _images_in(folder) if folder is not None else []
    if not files:
        raise _layout_error("coco2017", root)
    return splits.report_split(_subset(files, seed, limit=limit), COCO_COUNTS, seed)


# --- Any folder, and the sample set ------------------------------------------------------


def _fixed_split_folders(root: Path) -> dict | None:
    """``{"train": Path, ...}`` when ``root`` has train/ and val/ or test/."""
    present = {name: root / name for name in splits.SPLIT_NAMES if (root / name).is_dir()}
    return present if "train" in present and len(present) > 1 else None


def _folder(root, seed: int) -> dict:
    """Any folder of images: its own train/ val/ test/ subfolders (a missing val/
    or test/ is an empty split) or, without them, a seeded 70/10/20 of every
    image below it."""
    root = _root_folder("folder", root)
    fixed = _fixed_split_folders(root)
    if fixed is None:
        files = list_images(root)
        if not files:
            raise ColorkitError(f"{root} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); expected a folder of images")
        return splits.split_by_fractions(files, seed=seed)
    split = {name: list_images(fixed[name]) if name in fixed else [] for name in splits.SPLIT_NAMES}
    if not split["train"]:
        raise ColorkitError(f"{root / 'train'} holds no image files; expected training images there")
    return split


def _sample(root, seed: int, kind: str | None = None) -> dict:
    """The sample set (built first when it is missing or older than the code); ``kind`` keeps only
    ``"photos"`` or ``"shapes"``. Its split is fixed by its folders."""
    root = Path(root).expanduser().absolute() if root is not None else sample.default_sample_root()
    if not sample.is_current_sample_set(root):
        sample.build_sample_set(root)
    if kind not in (None, "photos", "shapes"):
        raise ColorkitError(f"the sample set's kind is 'photos' or 'shapes', got {kind!r}")
    kinds = [kind] if kind else ["photos", "shapes"]
    return {name: sorted(p for k in kinds for p in list_images(root / name / k)) for name in splits.SPLIT_NAMES}


LOADERS = {
    "oxford_pets": (_oxford_pets, "Oxford-IIIT Pet, 37 breeds (breed=...); ResNet report: 134/36/30 basset hounds at 224 px"),
    "stanford_dogs": (_stanford_dogs, "Stanford Dogs, 120 breeds; 2018 strided-CNN report: 400 training images (limit=400)"),
    "faces": (_faces, "DeepColorization face_images (750 faces); 2018 strided-CNN report: 200 training images (limit=200)"),
    "sports100": (_sports100, "100 Sports image classification (224 px); classification slides: 30%, 70/10/20"),
    "intel_landscapes": (_intel_landscapes, "Intel image classification, 6 landscape classes (150 px); 30%, 70/10/20"),
    "voc2012": (_voc2012, "Pascal VOC 2012, ImageSets/Main/train.txt; classification slides: 30%, 70/10/20"),
    "zhang_mix": (_zhang_mix, "the classification slides' mix: 30% each of sports100, intel_landscapes, voc2012, 70/10/20"),
    "coco2017": (_coco2017, "COCO 2017 train (or fastai coco_sample); GAN report: seeded 8,000 train / 2,000 test"),
    "folder": (_folder, "any folder of images: its train/ val/ test/ subfolders, else a seeded 70/10/20"),
    "sample": (_sample, "the embedded sample set: bundled photo crops + procedural textured shapes (kind=...)"),
}


def available_datasets() -> dict:
    """Dataset name -> one-line description."""
    return {name: description for name, (_, description) in LOADERS.items()}


def _check_options(name: str, loader, options: dict) -> None:
    """Unknown keyword options are a user mistake: say which ones the loader takes."""
    accepted = [p for p in inspect.signature(loader).parameters if p not in ("root", "seed")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"it takes {', '.join(accepted)}" if accepted else "it takes none"
        raise ColorkitError(f"the {name} dataset has no option {', '.join(unknown)}; {takes}")


def load_split(name: str, root=None, seed: int = 0, **options) -> dict:
    """``{"train", "val", "test"}``: sorted lists of file paths for dataset
    ``name`` in folder ``root``, split as its report did (see the module
    docstring), seeded by ``seed``. ``root`` may be None only for "sample"."""
    if name not in LOADERS:
        raise ColorkitError(f"unknown dataset {name!r}; available: {', '.join(LOADERS)}")
    loader, _ = LOADERS[name]
    _check_options(name, loader, options)
    split = loader(root, seed, **options)
    refuse_names_not_utf8(path for files in split.values() for path in files)
    return split


# --- TensorFlow Datasets: an optional alternative source ------------------------------------

#: colorkit name -> TFDS name, for the datasets TFDS can prepare.
TFDS_NAMES = {"oxford_pets": "oxford_iiit_pet", "stanford_dogs": "stanford_dogs", "voc2012": "voc/2012", "coco2017": "coco/2017"}


def tfds_images(name: str, split: str = "train", data_dir=None):
    """Images of a dataset already prepared by TensorFlow Datasets, as a
    ``tf.data.Dataset`` of uint8 RGB images; feed it to
    ``pipeline.batch_images``. TFDS is never required: this only reads data
    that ``tfds`` has downloaded and prepared before (nothing is downloaded)."""
    if name not in TFDS_NAMES:
        raise ColorkitError(f"no TFDS source for {name!r}; TFDS can provide {', '.join(TFDS_NAMES)}")
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ColorkitError(f"tensorflow-datasets is not installed; use a local folder for {name} (see datasets/README.md)") from None
    try:
        images = tfds.load(TFDS_NAMES[name], split=split, data_dir=data_dir, download=False)
    except Exception as error:  # TFDS raises several types for "not prepared"
        where = data_dir or "its default data_dir"
        raise ColorkitError(f"TFDS has no prepared {TFDS_NAMES[name]} {split} split in {where} ({type(error).__name__}); prepare it with tfds or use a local folder") from error
    return images.map(lambda example: example["image"])
