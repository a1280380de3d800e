"""What every benchmark shares: timing, peak memory, result rows and test images.

Timing rule (these machines are noisy, other jobs share the cores): every
figure is the median of several timed repeats that follow an untimed warm-up
(tracing, XLA compilation, file caches), measured with ``time.perf_counter``;
the kit and its baseline run in the same process, on the same data, one after
the other, so a slow moment hurts both and their ratio stays meaningful.

A result row says what was measured (``item``, ``case``, ``method``), its
absolute figure (``value`` in ``unit``) and its ``ratio`` to the baseline row
of the same item and case (``vs`` names it): how many times *better* than the
baseline, whichever way "better" goes for the unit (more images/s, fewer ms,
fewer MiB). A baseline row has ratio 1.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Units where a smaller number is better; the ratio is then baseline / value.
LOWER_IS_BETTER = ("ms", "s", "MiB", "ms/file")

#: The columns of results.csv, in order.
COLUMNS = (
    "item", "case", "method", "role", "value", "unit", "vs", "baseline_value", "ratio",
    "target", "met", "repeats", "spread", "notes",
)


# --- Timing --------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Seconds of each timed repeat (the warm-up is not among them)."""

    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> str:
        """Fastest and slowest repeat relative to the median, e.g. "-3%/+8%": how noisy it was."""
        if len(self.seconds) < 2 or self.median <= 0:
            return ""
        low, high = min(self.seconds) / self.median - 1, max(self.seconds) / self.median - 1
        return f"{low:+.0%}/{high:+.0%}"


def time_repeats(run, repeats: int, warmup: int = 1) -> Timing:
    """Call ``run()`` ``warmup`` times untimed, then ``repeats`` times timed.

    Why a warm-up: the first call pays one-off costs (tracing a tf.function,
    compiling XLA, filling the page cache with the files) that a long training
    run pays once; they are reported separately where they matter."""
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return Timing(seconds)


def interleaved(runs: dict, repeats: int, warmup: int = 1) -> dict[str, Timing]:
    """Time several ``name -> run`` callables round-robin (A, B, A, B, ...).

    Why: on a shared machine the load changes over seconds; alternating the
    kit and its baseline exposes both to the same load, which keeps their
    ratio honest even when the absolute numbers drift."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    seconds = {name: [] for name in runs}
    for _ in range(max(1, repeats)):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return {name: Timing(values) for name, values in seconds.items()}


# --- Memory -------------------------------------------------------------------------------------------


def _status_kib(field_name: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def rss_mib() -> float:
    """This process's resident memory now, in MiB (Linux)."""
    return _status_kib("VmRSS") / 1024


def reset_peak_rss() -> None:
    """Start a new peak-memory window: Linux resets VmHWM to the current RSS on
    ``5`` written to clear_refs, so a peak can be attributed to one piece of work
    in a long-lived process. Collects garbage first, so freed objects do not count."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    """The highest RSS since the last ``reset_peak_rss`` (or process start), in MiB."""
    return _status_kib("VmHWM") / 1024


def json_from_child(module: str, *args) -> dict:
    """Run ``python -m <module> ARGS...`` in a fresh process (from the repository
    root, so ``bench`` and ``colorkit`` import) and return the JSON its last
    line prints: a peak memory measured there belongs to that work alone."""
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=root, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"python -m {module} {' '.join(map(str, args))} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- Result rows ------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """The rows of one item and case: a baseline first, then the kit's methods.

    ``target``: the ratio the kit's *first* method must reach (e.g. 3.0), or
    None where the issue sets none."""

    item: str
    case: str
    target: float | None = None
    rows: list[dict] = field(default_factory=list)

    def baseline(self, method: str, value: float, unit: str, timing: Timing | None = None, notes: str = ""):
        self.rows.append(_row(self, method, "baseline", value, unit, "", value, 1.0, timing, notes))
        return self

    def kit(self, method: str, value: float, unit: str, timing: Timing | None = None, notes: str = "",
            judged: bool | None = None, target: float | None = None):
        """Add a row measured against the baseline. ``judged``: whether the
        comparison's target applies to this row (default: only to the first
        kit row). ``target``: a ratio this row must reach instead, where one
        case holds several goals (it judges the row whatever ``judged`` says)."""
        base = self.rows[0] if self.rows else {"role": None}
        if base["role"] != "baseline" or base["unit"] != unit:
            raise ValueError(f"{self.item} / {self.case}: add the baseline (in {unit}) before the kit's rows")
        ratio = ratio_against(value, base["value"], unit)
        judged = judged if judged is not None else not any(r["role"] == "kit" for r in self.rows)
        row = _row(self, method, "kit", value, unit, base["method"], base["value"], ratio, timing, notes)
        goal = target if target is not None else self.target if judged else None
        if goal is not None:
            row["target"] = f">= {goal:g}x"
            row["met"] = "yes" if ratio >= goal else "NO"
        self.rows.append(row)
        return self


def ratio_against(value: float, baseline_value: float, unit: str) -> float:
    """How many times better than the baseline (see the module docstring)."""
    if unit in LOWER_IS_BETTER:
        return baseline_value / value if value > 0 else math.inf
    return value / baseline_value if baseline_value > 0 else math.inf


def _row(comparison, method, role, value, unit, vs, baseline_value, ratio, timing, notes) -> dict:
    return {
        "item": comparison.item, "case": comparison.case, "method": method, "role": role,
        "value": float(value), "unit": unit, "vs": vs, "baseline_value": float(baseline_value),
        "ratio": float(ratio), "target": "", "met": "",
        "repeats": len(timing.seconds) if timing else "", "spread": timing.spread if timing else "",
        "notes": notes,
    }


def rate(count: int, timing: Timing) -> float:
    """Items per second from the median repeat."""
    return count / timing.median


# --- Test images -------------------------------------------------------------------------------------


def photos() -> list[np.ndarray]:
    """Colour photos that ship with scikit-image (uint8 RGB): real colour statistics
    without downloading anything."""
    import skimage.data

    return [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket(),
            skimage.data.immunohistochemistry()]


def photo_crops(count: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` different uint8 RGB images of ``width`` x ``height``: random crops
    (60-100% of each side) of the bundled photos, resized, some mirrored."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sources = photos()
    images = []
    for index in range(count):
        photo = sources[index % len(sources)]
        h, w = photo.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = Image.fromarray(photo[y : y + ch, x : x + cw]).resize((width, height), Image.BILINEAR)
        images.append(np.asarray(crop)[:, ::-1] if rng.random() < 0.5 else np.asarray(crop))
    return images


def write_jpegs(folder, images, quality: int = 90) -> list[str]:
    """Save uint8 RGB images as numbered JPEGs in ``folder``; their paths, sorted."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        path = folder / f"{index:05d}.jpg"
        Image.fromarray(np.ascontiguousarray(image)).save(path, quality=quality)
        paths.append(str(path))
    return paths


def jpeg_folder(folder, count: int, width: int, height: int, seed: int = 0) -> list[str]:
    """A folder of ``count`` JPEG photos of ``width`` x ``height`` (see ``photo_crops``)."""
    return write_jpegs(folder, photo_crops(count, width, height, seed))
