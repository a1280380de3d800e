"""Run the benchmarks, print the table, write reports/benchmarks/results.csv and results.md.

    python -m bench                 # the full run (under 20 minutes on 2 cores)
    python -m bench --quick         # smaller data and fewer repeats (under 5 minutes)
    python -m bench --only lab,soft --out /tmp/bench

The two scales differ only in how much work each item does (``QUICK``/``FULL``
below); every item measures the same things at both.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.common import COLUMNS
from colorkit.errors import ColorkitError

#: item name -> (module in bench/, one line saying what it measures)
ITEMS = {
    "lab": ("bench.lab", "1. RGB -> Lab, 256 px: skimage per image vs colorkit in tf.data"),
    "pipeline": ("bench.input_pipeline", "2. JPEG folder -> (L, ab) batches: ImageDataGenerator + skimage vs tf.data"),
    "soft": ("bench.soft_encoding", "3. soft-encoding 256 px ab maps (k=5, sigma=5): cKDTree vs colorkit"),
    "train": ("bench.training", "4. training images/s and peak memory per model and size, XLA off vs on"),
    "precision": ("bench.precision", "4b. float32 vs mixed_bfloat16 per model: images/s and the loss curve"),
    "versus": ("bench.versus_pytorch", "4c. GAN step and inference against PyTorch implementations of the same layers"),
    "inference": ("bench.inference", "5. a 1024x768 JPEG end to end per model; a folder of 100 images"),
    "scaling": ("bench.scaling", "6. one epoch over 1,000 vs 10,000 files: peak memory and time"),
    "video": ("bench.video", "7. clips: frames/s for none/ema/flow at 256 px and 720p; memory, 100 vs 1,000 frames"),
    "pretrained": ("bench.pretrained", "8. Zhang et al.'s released ECCV16 / SIGGRAPH17, one photo: Keras vs PyTorch"),
    "multiworker": ("bench.multiworker", "9. training images/s: 1 and 2 workers, a core each, vs 1 process on 2 cores"),
}

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "reports" / "benchmarks"


@dataclass(frozen=True)
class Scale:
    """How much work each item does. Every field is a plain value to read and change."""

    name: str
    repeats: int  # timed repeats after one warm-up; the median is reported
    batch_size: int = 16
    # 1. Lab conversion
    lab_size: int = 256
    lab_images: int = 64
    # 2. input pipeline
    pipeline_source: tuple = (320, 240)  # JPEG width x height on disk: cropped to 240, resized to 256
    pipeline_size: int = 256
    pipeline_images: int = 512
    # 3. soft-encoding
    soft_size: int = 256
    soft_maps: int = 8
    soft_k: int = 5
    soft_sigma: float = 5.0
    # 4. training throughput
    train_models: tuple = ("strided_cnn", "resnet18_decoder", "zhang_eccv16", "unet_generator", "patchgan")
    train_sizes: tuple = (64, 128, 256)
    train_jit_sizes: tuple = (64, 128, 256)  # compiling one step takes 4-18 s on 2 cores (first-step note)
    train_jit_models: tuple = ("strided_cnn", "resnet18_decoder", "zhang_eccv16", "unet_generator", "patchgan")
    train_width: float = 0.25
    train_steps: int = 2
    # 4b. precision policies (each model with its quick recipe's options)
    precision_models: tuple = ("strided_cnn", "resnet18_decoder", "zhang_eccv16", "unet_generator", "patchgan")
    precision_size: int = 64
    precision_width: float = 0.25
    precision_steps: int = 12  # the loss curve compared between the policies...
    precision_budget_s: float = 30.0  # ...unless the timed steps of one policy take longer than this
    # 4c. against PyTorch (the same networks in bench/torch_reference.py), the report's full widths
    versus_gan_size: int = 64
    versus_inference_size: int = 256
    versus_inference_models: tuple = ("unet_generator", "zhang_eccv16")
    versus_width: float = 1.0
    versus_repeats: int = 5
    # 5. inference
    inference_image: tuple = (1024, 768)
    inference_size: int = 256  # the models' working size
    inference_width: float = 1.0  # the reports' networks as they are
    inference_repeats: int = 3
    inference_models: tuple = ("strided_cnn", "resnet18_decoder", "zhang_eccv16", "unet_generator")
    folder_images: int = 100
    folder_repeats: int = 1  # after a one-image warm-up
    folder_image: tuple = (640, 480)
    folder_model: str = "strided_cnn"
    folder_width: float = 0.25  # a light network, so the folder figure shows the processing around it
    # 6. scaling
    scaling_counts: tuple = (1_000, 10_000)
    scaling_file: tuple = (80, 60)  # small JPEGs
    scaling_size: int = 64
    scaling_batch: int = 8  # divides both counts: no smaller last batch (and no extra compilation) in either
    # 7. video
    video_sizes: tuple = ((256, 256), (720, 1280))  # frame height x width
    video_frames: int = 24
    video_working_size: int = 256
    video_width: float = 0.25  # a light network, so the figures show the work around it
    video_memory_counts: tuple = (100, 1_000)
    video_memory_size: int = 64
    # 8. the released models (full size; image sides multiples of 8), width x height
    pretrained_models: tuple = ("eccv16", "siggraph17")
    pretrained_sizes: tuple = ((256, 256), (1024, 768))
    pretrained_repeats: int = 3
    # 9. multi-worker training (workers on 127.0.0.1, one core each; timed steps cut into `repeats` windows)
    multiworker_images: int = 512
    multiworker_file: tuple = (160, 120)
    multiworker_size: int = 64
    multiworker_warmup: int = 5
    multiworker_steps: int = 60
    # items run again in a child process with TensorFlow's BFC allocator on the CPU (see ``allocator_rows``)
    allocator_items: tuple = ("lab", "pipeline", "soft")
    # items run again in a child process pinned to one CPU core (see ``one_core_rows``)
    one_core_items: tuple = ("pipeline",)


FULL = Scale(name="full", repeats=5, pipeline_images=320, soft_maps=6)
QUICK = Scale(
    name="quick", repeats=3, lab_images=32, pipeline_images=160, soft_maps=3,
    train_sizes=(64,), train_jit_models=("strided_cnn",), train_steps=2,
    precision_models=("strided_cnn", "zhang_eccv16"), precision_steps=6, precision_budget_s=10.0, versus_repeats=3,
    inference_models=("strided_cnn",), inference_repeats=2, folder_images=20, allocator_items=("lab", "pipeline"),
    one_core_items=(), video_frames=8, pretrained_repeats=1, multiworker_steps=30,
)


def parse_only(text: str | None) -> list[str]:
    """``lab,soft`` or ``1,3`` (the issue's item numbers) -> item names (all of them for None)."""
    if not text:
        return list(ITEMS)
    numbers = {description.split(".")[0]: name for name, (_, description) in ITEMS.items()}  # "1", ..., "4b", ...
    chosen = []
    for word in (part.strip() for part in text.split(",") if part.strip()):
        name = numbers.get(word, word)
        if name not in ITEMS:
            raise ColorkitError(f"unknown benchmark {word!r}; choose from {', '.join(ITEMS)} "
                                f"(or their numbers {', '.join(numbers)})")
        chosen.append(name)
    return chosen


def run_items(names, scale: Scale, log=print, durations: dict | None = None) -> list[dict]:
    """Run the named items in order and return their result rows; each item's
    wall time goes into ``durations`` (name -> seconds) when one is given."""
    rows = []
    for name in names:
        module_name, description = ITEMS[name]
        log(f"[bench] {description} ...", flush=True)
        start = time.perf_counter()
        rows += importlib.import_module(module_name).run(scale)
        seconds = time.perf_counter() - start
        if durations is not None:
            durations[name] = seconds
        log(f"[bench]   done in {seconds:.0f} s", flush=True)
    return rows


#: TensorFlow reads it when it creates its CPU allocator, i.e. before the first op of a process.
BFC_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"


def _child_rows(chosen, scale: "Scale", tag: str, log=print, env=None, cpus=None) -> list[dict]:
    """Run the ``chosen`` items in a child process, with ``env`` added to its
    environment and, given ``cpus``, only those CPU cores; its rows (each with
    its own baseline, measured in that same process) get `` [tag]`` on their case."""
    log(f"[bench] again with {tag} (a child process): {', '.join(chosen)} ...", flush=True)
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, **(env or {}))
    start = ["-m", "bench.runner"]
    if cpus:  # the child pins itself before any import (a preexec_fn is unsafe in a threaded parent)
        start = ["-c", f"import os, runpy; os.sched_setaffinity(0, {set(cpus)!r}); "
                       "runpy.run_module('bench.runner', run_name='__main__', alter_sys=True)"]
    done = subprocess.run(
        [sys.executable, *start, "--child", ",".join(chosen), "--scale-json", json.dumps(dataclasses.asdict(scale))],
        capture_output=True, text=True, env=env, cwd=root, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the run with {tag} failed: {done.stderr.strip()[-2000:]}")
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    for row in rows:
        row["case"] += f" [{tag}]"
    return rows


def allocator_rows(names, scale: "Scale", log=print) -> list[dict]:
    """The data-path items again, in a child process with the other CPU allocator.

    Why: by default TensorFlow's CPU allocator hands large buffers (a batch of
    256 px images is 12 MB) back to the operating system when they are freed,
    so a ``tf.data`` map that makes a new batch every step pays page faults
    for all of its memory again (measured: system time of the same order as
    the work). TensorFlow's BFC allocator keeps and reuses them, and importing
    colorkit chooses it (``TF_CPU_ALLOCATOR_USE_BFC=true``, unless already set).
    It can only be chosen before a process's first op, hence the child, which
    shows what that choice is worth."""
    chosen = [name for name in names if name in scale.allocator_items]
    if not chosen:
        return []
    other = "false" if os.environ.get(BFC_VARIABLE, "").lower() == "true" else "true"
    return _child_rows(chosen, scale, f"{BFC_VARIABLE}={other}", log, env={BFC_VARIABLE: other})


#: the tag of the rows measured on one CPU core
ONE_CORE = "one CPU core"


def one_core_rows(names, scale: "Scale", log=print) -> list[dict]:
    """The input pipeline again, in a child process pinned to one CPU core.

    Why: the reports' generator and skimage run on one core whatever the
    machine has, while ``tf.data`` spreads decoding and the Lab step over all
    of them. Both sides on one core give the speed-up per core, from which a
    machine with more cores can be judged (Linux only: elsewhere there is no
    call to pin a process). Full scale only, to keep ``--quick`` short."""
    chosen = [name for name in names if name in scale.one_core_items]
    if not chosen or not hasattr(os, "sched_setaffinity"):
        return []
    return _child_rows(chosen, scale, ONE_CORE, log, cpus={min(os.sched_getaffinity(0))})


def _child(names: str, scale_json: str) -> None:
    """``python -m bench.runner --child ITEMS --scale-json JSON``: run items, print their rows as JSON."""
    values = json.loads(scale_json)
    scale = Scale(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})
    rows = run_items(parse_only(names), scale, log=lambda *args, **kwargs: print(*args, file=sys.stderr, **kwargs))
    print(json.dumps(rows))


def results_frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    return frame.reindex(columns=list(COLUMNS))


def environment() -> dict:
    """What the numbers were measured on."""
    import tensorflow as tf

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, {cpu_bf16_units()}",
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "devices": ", ".join(device.name for device in tf.config.list_logical_devices()),
    }


#: CPU flags (Linux /proc/cpuinfo) of instructions that compute in bfloat16: what item 4b's policy needs.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """Which bfloat16 instructions the CPU reports, in words (item 4b depends on them)."""
    try:
        flags = set(cpuinfo.read_text(encoding="utf-8", errors="replace").split())
    except OSError:
        return "bf16 units unknown"
    found = [flag for flag in BF16_FLAGS if flag in flags]
    return f"bf16 units: {', '.join(found)}" if found else "no bf16 units (no avx512_bf16 or amx_bf16 flag)"


def markdown_report(frame: pd.DataFrame, scale: Scale, wall_seconds: float, durations: dict | None = None) -> str:
    """results.md: how it was measured, the targets, then the table."""
    from colorkit.report import markdown_table

    env = environment()
    shown = frame.drop(columns=["role", "baseline_value"])
    judged = frame[frame["target"] != ""]
    targets = [f"- {row.item} ({row.case}): {row.method}, **{row.ratio:.2f}x** {row.vs} "
               f"(target {row.target}: {row.met})" for row in judged.itertuples()]
    timed = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in (durations or {}).items())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# colorkit benchmarks",
        "",
        f"`make bench` ({scale.name} scale), {env['date']}, {wall_seconds / 60:.1f} min in all ({timed}). "
        f"Machine: {env['machine']}; Python {env['python']}, TensorFlow {env['tensorflow']} ({env['devices']}); "
        f"load average at the end {load:.1f}.",
        "",
        *(["## Targets", "", *targets, ""] if targets else []),
        "## All figures",
        "",
        "Each figure is the median of the timed repeats after an untimed warm-up. `ratio` compares a row with "
        "the baseline row named in `vs`, run in the same process on the same data (alternating with it where the "
        "two are timed): how many times better, i.e. the baseline's time or memory divided by this row's, or "
        "this row's rate divided by the baseline's. `spread`: the fastest and slowest repeat against the median.",
        "",
        markdown_table(shown),
    ]
    return "\n".join(lines)


def write_results(rows, out_dir, scale: Scale, wall_seconds: float, durations: dict | None = None):
    """results.csv (full precision) and results.md, both written atomically; their paths."""
    from colorkit.io import atomic_write_text

    frame = results_frame(rows)
    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / "results.csv", out_dir / "results.md"
    atomic_write_text(csv_path, frame.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(md_path, markdown_report(frame, scale, wall_seconds, durations))
    return csv_path, md_path


def format_table(rows) -> str:
    """The table printed at the end: one line per row."""
    lines = [f"{'item':20} {'method':58} {'value':>12}  {'unit':10} {'ratio':>7}  target"]
    for row in rows:
        value = f"{row['value']:.4g}"
        target = f"{row['target']} {row['met']}".strip()
        lines.append(f"{row['item'][:20]:20} {row['method'][:58]:58} {value:>12}  {row['unit']:10} "
                     f"{row['ratio']:7.2f}  {target}")
    return "\n".join(lines)


def main(quick: bool = False, only: str | None = None, out=None, scale: Scale | None = None, log=print) -> list[dict]:
    """Run, print and write. ``scale`` overrides ``quick`` (the tests pass a tiny one)."""
    scale = scale or (QUICK if quick else FULL)
    names = parse_only(only)
    start = time.perf_counter()
    durations = {}
    rows = run_items(names, scale, log, durations)
    for label, child in (("BFC child", allocator_rows), ("one-core child", one_core_rows)):
        start_child = time.perf_counter()
        rows += child(names, scale, log)
        if time.perf_counter() - start_child > 1:
            durations[label] = time.perf_counter() - start_child
    wall = time.perf_counter() - start
    csv_path, md_path = write_results(rows, out or DEFAULT_OUT, scale, wall, durations)
    log(format_table(rows))
    log(f"[bench] {scale.name} run: {wall / 60:.1f} min; wrote {csv_path} and {md_path}")
    return rows


def tiny(**changes) -> Scale:
    """A scale small enough for the test suite (seconds per item)."""
    small = dataclasses.replace(
        QUICK, name="tiny", repeats=1, lab_size=32, lab_images=4, pipeline_source=(40, 32), pipeline_size=32,
        pipeline_images=8, batch_size=4, soft_size=16, soft_maps=1, train_models=("strided_cnn",), train_sizes=(16,),
        train_jit_models=(), train_steps=1, precision_models=("strided_cnn",),
        precision_size=16, precision_steps=2, versus_gan_size=32, versus_inference_size=32, versus_width=0.125,
        versus_repeats=1, inference_image=(48, 40), inference_size=32,
        inference_width=0.25, inference_models=("strided_cnn",), folder_images=3, folder_image=(40, 32),
        inference_repeats=1, scaling_counts=(8, 16), scaling_file=(24, 16), scaling_size=16, scaling_batch=4,
        allocator_items=("lab",), one_core_items=("lab",), video_sizes=((32, 32), (24, 40)), video_frames=3,
        video_working_size=32, video_memory_counts=(4, 8), video_memory_size=32,
        pretrained_models=("eccv16",), pretrained_sizes=((32, 24),), pretrained_repeats=1, multiworker_images=16,
        multiworker_file=(24, 16), multiworker_size=16, multiworker_warmup=2, multiworker_steps=2,
    )
    return dataclasses.replace(small, **changes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="bench child process (the entry point is python -m bench)")
    parser.add_argument("--child", required=True)
    parser.add_argument("--scale-json", required=True)
    arguments = parser.parse_args()
    _child(arguments.child, arguments.scale_json)
