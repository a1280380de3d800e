"""Seeded splits: sizes, determinism, disjointness, and the manifest."""

import json

import pytest

from colorkit.data import splits
from colorkit.errors import ColorkitError

ITEMS = [f"img_{i:03d}.jpg" for i in range(200)]


def _assert_partition(split, items):
    """train/val/test are disjoint and together are a subset of ``items``."""
    members = split["train"] + split["val"] + split["test"]
    assert len(members) == len(set(members))
    assert set(members) <= set(items)


def test_split_by_counts_gives_the_resnet_reports_134_36_30():
    split = splits.split_by_counts(ITEMS, (134, 36, 30), seed=0)
    assert [len(split[k]) for k in ("train", "val", "test")] == [134, 36, 30]
    _assert_partition(split, ITEMS)
    assert set(split["train"] + split["val"] + split["test"]) == set(ITEMS)
    assert all(split[k] == sorted(split[k]) for k in split)


def test_same_seed_same_split_whatever_the_input_order():
    first = splits.split_by_counts(ITEMS, (134, 36, 30), seed=7)
    again = splits.split_by_counts(list(reversed(ITEMS)), (134, 36, 30), seed=7)
    other = splits.split_by_counts(ITEMS, (134, 36, 30), seed=8)
    assert first == again
    assert first["test"] != other["test"]


def test_split_by_fractions_is_70_10_20():
    split = splits.split_by_fractions(ITEMS[:100], seed=0)
    assert [len(split[k]) for k in ("train", "val", "test")] == [70, 10, 20]
    _assert_partition(split, ITEMS[:100])


def test_fraction_counts_round_val_and_test_and_lose_nothing():
    assert splits.fraction_counts(7, (0.7, 0.1, 0.2)) == (5, 1, 1)
    assert splits.fraction_counts(11, (0.7, 0.1, 0.2)) == (8, 1, 2)
    assert splits.fraction_counts(200, (0.67, 0.18, 0.15)) == (134, 36, 30)
    assert sum(splits.fraction_counts(12345, (0.7, 0.1, 0.2))) == 12345


def test_report_split_uses_exact_counts_or_the_same_proportions():
    assert [len(v) for v in splits.report_split(ITEMS, (134, 36, 30)).values()] == [134, 36, 30]
    smaller = splits.report_split(ITEMS[:100], (134, 36, 30))
    assert [len(smaller[k]) for k in ("train", "val", "test")] == [67, 18, 15]
    coco_like = splits.report_split(ITEMS[:50], (8000, 0, 2000))
    assert [len(coco_like[k]) for k in ("train", "val", "test")] == [40, 0, 10]


def test_take_is_a_seeded_sorted_subset():
    subset = splits.take(ITEMS, 30, seed=1)
    assert len(subset) == 30 and subset == sorted(subset) and set(subset) <= set(ITEMS)
    assert subset == splits.take(reversed(ITEMS), 30, seed=1)
    assert splits.take(ITEMS, None) == ITEMS
    assert len(splits.take_fraction(ITEMS, 0.3, seed=0)) == 60


@pytest.mark.parametrize(
    "call",
    [
        lambda: splits.split_by_counts(ITEMS[:10], (134, 36, 30)),
        lambda: splits.split_by_counts(ITEMS, (1, 2)),
        lambda: splits.split_by_fractions(ITEMS, (0.5, 0.1, 0.1)),
        lambda: splits.take_fraction(ITEMS, 1.5),
        lambda: splits.take(ITEMS, 0),
    ],
)
def test_impossible_splits_are_user_errors(call):
    with pytest.raises(ColorkitError):
        call()


def test_manifest_round_trip_is_atomic_json(tmp_path):
    split = splits.split_by_counts(ITEMS, (134, 36, 30), seed=3)
    path = splits.write_manifest(split, tmp_path / "run" / "split.json", dataset="oxford_pets", seed=3)
    assert sorted(p.name for p in path.parent.iterdir()) == ["split.json"]  # no temporary file left
    document = json.loads(path.read_text())
    assert document["counts"] == {"train": 134, "val": 36, "test": 30}
    back = splits.read_manifest(path)
    assert back["info"] == {"dataset": "oxford_pets", "seed": 3}
    assert {k: back[k] for k in ("train", "val", "test")} == split


def test_reading_a_missing_or_foreign_manifest_is_a_user_error(tmp_path):
    with pytest.raises(ColorkitError, match="no split manifest"):
        splits.read_manifest(tmp_path / "absent.json")
    (tmp_path / "other.json").write_text('{"train": []}')
    with pytest.raises(ColorkitError, match="not a split manifest"):
        splits.read_manifest(tmp_path / "other.json")
