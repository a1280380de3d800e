"""Item 6: one training epoch over 1,000 vs 10,000 small files.

The pipeline streams: it shuffles file *names* and holds only the images in
flight, so its peak memory must not grow with the number of files, and the
time of an epoch must grow in proportion to it. Each epoch runs in a fresh
process (``python -m bench.scaling FOLDER SIZE BATCH`` prints one JSON line),
so its peak resident memory belongs to that epoch alone.

Baseline: the 1,000-file epoch. Rows: the peak memory (ratio near 1: flat)
and the time per file (ratio near 1: linear) of the 10,000-file epoch.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Comparison, jpeg_folder, json_from_child

ITEM = "6 scaling"
#: 10x the files may cost at most this much more peak memory / time per file and still count as flat / linear.
FLAT = 0.9
LINEAR = 0.8


def measure_epoch(folder, size: int, batch: int) -> dict:
    """In this process: build the training pipeline over ``folder`` and run one epoch.

    The peak-memory window opens after TensorFlow is imported, so it holds the
    file list, the probe of every file, and the epoch itself."""
    import colorkit  # noqa: F401  (TensorFlow, quietly)
    from bench.common import peak_rss_mib, reset_peak_rss, rss_mib
    from colorkit.data import pipeline

    reset_peak_rss()
    start_rss = rss_mib()
    start = time.perf_counter()
    dataset = pipeline.make_dataset(str(folder), size, batch, augment=True, shuffle=True, seed=0)
    for _ in dataset.take(2):  # the one-off costs (tracing, XLA compilation) stay out of the epoch's time
        pass
    setup = time.perf_counter() - start
    start = time.perf_counter()
    count = sum(int(l_norm.shape[0]) for l_norm, _ in dataset)
    epoch = time.perf_counter() - start
    return {"files": count, "setup_s": setup, "epoch_s": epoch, "peak_mib": peak_rss_mib(), "start_mib": start_rss}


def run(scale) -> list[dict]:
    small, large = scale.scaling_counts
    width, height = scale.scaling_file
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-") as tmp:
        found = {}
        for count in (small, large):
            folder = Path(tmp) / f"files_{count}"
            jpeg_folder(folder, count, width, height, seed=7)
            found[count] = json_from_child("bench.scaling", folder, scale.scaling_size, scale.scaling_batch)
    for count, result in found.items():
        if result["files"] != count:
            raise RuntimeError(f"an epoch over {count} files yielded {result['files']} images")

    case = (f"one epoch, {small:,} vs {large:,} JPEGs of {width}x{height} -> {scale.scaling_size} px, "
            f"batch {scale.scaling_batch}")
    memory = Comparison(ITEM, f"{case}: peak memory", target=FLAT)
    speed = Comparison(ITEM, f"{case}: time per file", target=LINEAR)
    for count, role_memory, role_speed in ((small, memory.baseline, speed.baseline), (large, memory.kit, speed.kit)):
        result = found[count]
        role_memory(f"{count:,} files: peak memory", result["peak_mib"], "MiB",
                    notes=f"{result['peak_mib'] - result['start_mib']:+.0f} MiB over the process after import")
        role_speed(f"{count:,} files: time per file", 1000 * result["epoch_s"] / count, "ms/file",
                   notes=f"epoch {result['epoch_s']:.1f} s; set-up (probing every file, first batches) "
                         f"{result['setup_s']:.1f} s")
    return memory.rows + speed.rows


if __name__ == "__main__":
    print(json.dumps(measure_epoch(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
