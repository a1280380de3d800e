"""Seeded train/val/test splits and the manifest that records them.

Every split here is a pure function of (the set of items, the sizes, the seed):
items are sorted before they are shuffled, so the order in which a folder
happens to list its files never changes a split, and the same seed always
gives the same split. Each returned list is sorted again, so a manifest diff
shows membership changes only.

Two ways to size a split, matching how the reports described theirs:

* by counts, e.g. the ResNet report's 134 / 36 / 30 basset hound images;
* by fractions, e.g. the classification slides' 70 / 10 / 20.

``report_split`` uses a report's exact counts when the data has exactly the
report's number of items, and the same proportions otherwise (a partial
download, a newer version of a dataset).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from colorkit.errors import ColorkitError
from colorkit.io import atomic_write_text

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)


def _shuffled(items, seed: int) -> list:
    """The items, sorted and then permuted by a generator seeded with ``seed``."""
    ordered = sorted(items)
    order = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in order]


def _cut(shuffled: list, counts) -> dict:
    """Consecutive slices of ``shuffled`` of the given sizes, each sorted."""
    split, start = {}, 0
    for name, count in zip(SPLIT_NAMES, counts):
        split[name] = sorted(shuffled[start : start + count])
        start += count
    return split


def split_by_counts(items, counts, seed: int = 0) -> dict:
    """``{"train", "val", "test"}`` with exactly ``counts`` items each.

    Items beyond ``sum(counts)`` are left out (the report used a subset)."""
    counts = tuple(int(c) for c in counts)
    if len(counts) != 3 or min(counts) < 0:
        raise ColorkitError(f"split counts must be three non-negative numbers (train, val, test), got {counts}")
    items = list(items)
    if sum(counts) > len(items):
        raise ColorkitError(f"a {'/'.join(map(str, counts))} split needs {sum(counts)} images but only {len(items)} were found")
    return _cut(_shuffled(items, seed), counts)


def fraction_counts(total: int, fractions) -> tuple[int, int, int]:
    """Sizes of a fractional split of ``total`` items: val and test are rounded,
    train takes the rest, so nothing is lost to rounding."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ColorkitError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    val, test = round(total * fractions[1]), round(total * fractions[2])
    return total - val - test, val, test


def split_by_fractions(items, fractions=DEFAULT_FRACTIONS, seed: int = 0) -> dict:
    """``{"train", "val", "test"}`` holding the given fractions of ``items``."""
    items = list(items)
    return _cut(_shuffled(items, seed), fraction_counts(len(items), fractions))


def report_split(items, counts, seed: int = 0) -> dict:
    """A report's split: its exact ``counts`` when there are exactly that many
    items, otherwise the same proportions of however many there are."""
    items = list(items)
    if len(items) == sum(counts):
        return split_by_counts(items, counts, seed)
    return split_by_fractions(items, [c / sum(counts) for c in counts], seed)


def split_with_training_count(items, train_count: int | None, fractions=DEFAULT_FRACTIONS, seed: int = 0) -> dict:
    """``{"train", "val", "test"}`` with exactly ``train_count`` training items and
    held-out ones beside them, as many as ``fractions`` give for that training set
    (70 / 10 / 20: 400 training images get 57 for validation and 114 for testing),
    drawn from the items left over. A report that "trained on 400 images" is
    reproduced so, rather than by splitting 400 images. With too few items for
    all three (or no ``train_count``), a plain fractional split of them all."""
    items = list(items)
    if train_count is None:
        return split_by_fractions(items, fractions, seed)
    if train_count < 1:
        raise ColorkitError(f"a training split needs at least one image, got a limit of {train_count}")
    train_share = float(fractions[0])
    if train_share <= 0:
        raise ColorkitError(f"the training fraction must be positive to size a split by its training count, got {fractions}")
    held_out = [round(train_count * float(share) / train_share) for share in fractions[1:]]
    counts = (train_count, *held_out)
    if sum(counts) > len(items):
        return split_by_fractions(items, fractions, seed)
    return split_by_counts(items, counts, seed)


def take(items, count: int | None, seed: int = 0) -> list:
    """A seeded subset of ``count`` items (all of them when ``count`` is None or
    larger than the list), sorted. Reports that trained on "400 of the images"
    or "30% of each dataset" are reproduced with this."""
    items = list(items)
    if count is None or count >= len(items):
        return sorted(items)
    if count < 1:
        raise ColorkitError(f"a subset needs at least one image, got a limit of {count}")
    return sorted(_shuffled(items, seed)[:count])


def take_fraction(items, fraction: float, seed: int = 0) -> list:
    """A seeded subset holding ``fraction`` of the items (at least one)."""
    if not 0.0 < fraction <= 1.0:
        raise ColorkitError(f"a subset fraction must be in (0, 1], got {fraction}")
    items = list(items)
    return take(items, max(1, round(len(items) * fraction)), seed)


def write_manifest(split: dict, path, **info) -> Path:
    """Write a split to JSON (atomically) with its counts and any ``info``
    (dataset name, seed, root), so a run records exactly which file went where."""
    document = {
        "info": info,
        "counts": {name: len(split[name]) for name in SPLIT_NAMES},
        **{name: [str(p) for p in split[name]] for name in SPLIT_NAMES},
    }
    return atomic_write_text(Path(path), json.dumps(document, indent=1, sort_keys=True) + "\n")


def read_manifest(path) -> dict:
    """Read a manifest written by ``write_manifest``: ``{"train", "val", "test",
    "info"}``."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return {"info": document.get("info", {}), **{name: list(document[name]) for name in SPLIT_NAMES}}
    except FileNotFoundError:
        raise ColorkitError(f"no split manifest at {path}; it is written by write_manifest or a training run") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ColorkitError(f"{path} is not a split manifest (expected JSON with train, val and test lists)") from None
