"""Zhang et al.'s released colorizers, ECCV16 and SIGGRAPH17, with the authors' weights, in Keras.

    >>> from colorkit import colorize, pretrained
    >>> model = pretrained.load("eccv16")            # downloads once, converts once
    >>> rgb = colorize.colorize(model, "photo.jpg")
    >>> guided = pretrained.load("siggraph17", path="siggraph17-df00044c.pth")

The networks (``networks.py``) are the released PyTorch ones layer for layer;
the weights are the authors' own ``.pth`` files, read by ``torch_file.py``
without PyTorch and without running anything from the file, and checked name
by name and shape by shape (``weights.py``). The models follow the kit's
conventions ("l" in, "ab" out; SIGGRAPH17 also takes "hint_ab" and
"hint_mask"), so every colorize function of the kit takes them as they are.

Getting the files: with no ``path``, ``load`` downloads the release from the
authors' address into the Keras cache (``~/.keras/models``, or
``$KERAS_HOME/models``). Each released file name carries the first 8 hex
digits of the file's SHA-256 (PyTorch's convention), and a file of that name
is read only if its digest starts with them. The converted model is saved
beside the ``.pth`` as ``.keras`` and used while it is newer than the
``.pth``, so conversion happens once.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Callable, NamedTuple
from urllib.parse import urlsplit

import keras

from colorkit import quantize
from colorkit.errors import ColorkitError
from colorkit.io import atomic_path
from colorkit.pretrained import networks, weights
from colorkit.pretrained.networks import bin_centres, eccv16, siggraph17
from colorkit.pretrained.torch_file import read_state_dict

__all__ = ["RELEASES", "load", "load_spec", "logits_model", "convert", "identify", "download", "sha256", "eccv16", "siggraph17", "bin_centres",
           "read_state_dict"]


class Release(NamedTuple):
    """One released model: where its weights are and which network they fill."""

    url: str
    build: Callable[[], keras.Model]
    unused: dict  # tensors in the file the network does not use: name -> shape


RELEASES = {
    "eccv16": Release(
        "https://colorizers.s3.us-east-2.amazonaws.com/colorization_release_v2-9b330a0b.pth", eccv16, {}),
    "siggraph17": Release(
        "https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth", siggraph17,
        networks.SIGGRAPH17_UNUSED),
}
#: PyTorch's convention: "name-<first hex digits of the SHA-256>.ext".
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.")


def _release(name: str) -> Release:
    if name not in RELEASES:
        raise ColorkitError(f"unknown released model {name!r}; choose {' or '.join(RELEASES)}")
    return RELEASES[name]


def file_name(url: str) -> str:
    """The file name at the end of ``url``."""
    return Path(urlsplit(url).path).name


def keras_cache() -> Path:
    """Where ``load`` keeps downloads: ``$KERAS_HOME/models``, by default ``~/.keras/models``."""
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "models"


# --- Checksums ------------------------------------------------------------------------------------


def sha256(path) -> str:
    """The SHA-256 of the file at ``path``, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_prefix(name: str) -> str | None:
    """The hex digits a file name like ``siggraph17-df00044c.pth`` promises its SHA-256 starts with."""
    found = _HASH_IN_NAME.search(name)
    return found.group(1) if found else None


def check_hash_prefix(path, prefix: str | None, what: str, remedy: str) -> None:
    """Raise one line unless the file's SHA-256 starts with ``prefix`` (no check for None)."""
    if prefix is None:
        return
    actual = sha256(path)
    if not actual.startswith(prefix):
        raise ColorkitError(f"{what} has SHA-256 {actual[:16]}..., but its name promises one starting {prefix}: "
                            f"a damaged or different file; {remedy}")


# --- Download -------------------------------------------------------------------------------------


def download(name: str, url: str | None = None, cache_dir=None) -> Path:
    """The weights file of release ``name`` in the cache folder (default ``keras_cache()``),
    downloaded from ``url`` (default the authors' address) if it is not there yet.

    ``keras.utils.get_file`` fetches it (with a progress bar) under a hidden
    temporary name; it takes its own name only once its SHA-256 prefix has been
    checked, so a broken or substituted download never stays. Offline, the
    error says where to get the file and where to put it."""
    url = url or _release(name).url
    folder = Path(cache_dir).expanduser() if cache_dir is not None else keras_cache()
    target = folder / file_name(url)
    if target.exists():
        return target
    try:
        with atomic_path(target) as partial:
            keras.utils.get_file(partial.name, url, cache_subdir=str(partial.parent.resolve()))
            check_hash_prefix(partial, hash_prefix(target.name), f"the file downloaded from {url}",
                              "it was not kept")
    except ColorkitError:
        raise
    except Exception as error:  # get_file raises a bare Exception when the network fails
        reason = " ".join(str(error).split())
        raise ColorkitError(
            f"could not download the {name} weights ({reason}); get {url} by any means and put it at {target}, "
            f"or pass its path: load({name!r}, path=FILE)") from None
    return target


# --- Conversion, cached ---------------------------------------------------------------------------


#: Input channels of each release's first conv ("model1.0.weight", [64, C, 3, 3]): L alone, or L, ab and mask.
_FIRST_LAYER_INPUTS = {1: "eccv16", 4: "siggraph17"}


def identify(state: dict, source: str) -> str:
    """Which release a state dict holds, told by its first conv's input channels."""
    first = state.get("model1.0.weight")
    name = _FIRST_LAYER_INPUTS.get(first.shape[1]) if first is not None and first.ndim == 4 else None
    if name is None:
        raise ColorkitError(f"{source} holds neither released model ({' nor '.join(RELEASES)}): "
                            "its first layer model1.0 is not theirs")
    return name


def convert(name: str | None, path) -> keras.Model:
    """A fresh network holding the weights of the PyTorch file at ``path`` (no cache):
    release ``name``, or with None whichever release the file holds (``identify``)."""
    state = read_state_dict(path)
    release = _release(name or identify(state, str(path)))
    return weights.assign(release.build(), state, str(path), release.unused)


def cache_file(weights_file) -> Path:
    """Where the converted model of ``weights_file`` is kept: beside it, as ``.keras``."""
    return Path(weights_file).with_suffix(".keras")


def _read_cache(path: Path, name: str | None) -> keras.Model | None:
    """The cached model at ``path`` if it loads and is a ``name`` network (None: any release)."""
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception:  # any cache that does not load (another Keras version, a full disk) is converted again
        return None
    return model if model.name == name or (name is None and model.name in RELEASES) else None


def _converted(name: str | None, weights_file: Path, release_names: set) -> keras.Model:
    """``convert``, through the ``.keras`` cache beside ``weights_file``. A file that
    bears one of ``release_names`` (names carrying their file's hash) is checked first."""
    cached = cache_file(weights_file)
    if cached.exists() and cached.stat().st_mtime >= weights_file.stat().st_mtime:
        model = _read_cache(cached, name)
        if model is not None:
            return model
    if weights_file.name in release_names:
        check_hash_prefix(weights_file, hash_prefix(weights_file.name), str(weights_file),
                          "delete it and download it again")
    model = convert(name, weights_file)
    try:
        with atomic_path(cached) as tmp:
            model.save(tmp)
    except OSError:  # a folder we may not write to: the conversion is simply done again next time
        pass
    return model


def load(name: str | None, path=None, *, annealed_mean: bool = False,
         temperature: float = quantize.DEFAULT_TEMPERATURE, url: str | None = None, cache_dir=None) -> keras.Model:
    """Release ``name`` ("eccv16" or "siggraph17") as a Keras model with the authors' weights.

    ``path``: the release's ``.pth`` file (with ``name`` None, the file says
    which release it is); without it, the file is found in (or downloaded
    into) the cache folder (``download``; ``url`` overrides the authors'
    address, ``cache_dir`` the folder). ``annealed_mean``: ECCV16 only, decode
    with the paper's annealed mean at ``temperature`` instead of the release's
    plain expectation (``networks.eccv16``). The model takes "l" (and
    SIGGRAPH17 "hint_ab", "hint_mask") and gives "ab", as every kit model."""
    if name is None and path is None:
        raise ColorkitError(f"name a released model ({' or '.join(RELEASES)}) or give the path of its .pth file")
    release = _release(name) if name is not None else None
    if annealed_mean and name not in (None, "eccv16"):
        raise ColorkitError(f"the annealed mean decodes ECCV16's bin distribution; {name} predicts ab directly")
    weights_file = Path(path).expanduser() if path is not None else download(name, url, cache_dir)
    if not weights_file.is_file():
        where = f"; the {name} release is {release.url}" if release else ""
        raise ColorkitError(f"no weights file at {weights_file}{where}")
    release_names = {file_name(known.url) for known in RELEASES.values()} | ({file_name(url)} if url else set())
    model = _converted(name, weights_file, release_names)
    if not annealed_mean:
        return model
    if model.name != "eccv16":
        raise ColorkitError(f"the annealed mean decodes ECCV16's bin distribution; {weights_file} holds {model.name}")
    annealed = eccv16(annealed_mean=True, temperature=temperature)
    annealed.set_weights(model.get_weights())
    return annealed


def load_spec(spec: str) -> keras.Model:
    """What ``--pretrained`` takes: a release's name (found in the cache or
    downloaded, as ``load`` does) or the path of a released ``.pth`` file."""
    return load(spec) if spec in RELEASES else load(None, path=spec)


def logits_model(model: keras.Model) -> keras.Model:
    """The released ECCV16 up to its 313 logits per pixel at 1/4 size (the weights
    are shared, not copied): what fine-tuning trains with Zhang et al.'s
    rebalanced cross-entropy over the release's own bins (``bin_centres(model)``)."""
    if model.name != "eccv16":
        raise ColorkitError(f"fine-tuning starts from the released eccv16 classifier; this file holds {model.name}")
    return keras.Model(model.input, model.get_layer("softmax").input, name="eccv16_logits")
