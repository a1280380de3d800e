"""Item 5: inference end to end, from a JPEG file to a saved colour image; a folder; the API.

One 1024 x 768 JPEG per model (load, predict at the model's working size, 256 px, upsample
ab, join with the full-resolution L, save), in milliseconds; then where that time goes,
stage by stage, in CPU milliseconds (decode, Lab, network, colour: the ab resize, the gamut
fit and Lab -> RGB, encode and write), for that photo and for one batch of the folder's
photos; then a folder of photos, in images per second; then the HTTP API answering
uploads of the folder's photos, in requests per second, with 1 and 2 workers. Models are
freshly built and untrained: the network's time does not depend on its weights, but the
kit's gamut fit does (it bisects every pixel predicted outside sRGB, and a random model
puts many there: most of the ResNet decoder's extra time), so the kit's side is an upper
bound. The baseline clips instead, which changes L.

Baseline: the way the reports' sources do it, written here in our own words
(richzhang/colorization's demo recipe with scikit-image): Pillow to load and
to shrink the RGB to 256 px, ``rgb2lab`` of both sizes, the network, ab
upsampled with ``skimage.transform.resize``, ``lab2rgb``, Pillow to save. The
network is called the same way on both sides (Keras' ``predict_on_batch``, a
TensorFlow graph), so it bounds the end-to-end ratio of one photo: the row "all
but the network" is the part the kit's own work decides.
The kit: the ``colorize`` command's path (``batch.colorize_jobs``) for one file and for
the folder, where threads decode and encode while the network runs, and the public
``colorkit.colorize.colorize(model, path)`` file by file.
"""

from __future__ import annotations

import collections
import http.client
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import Comparison, Timing, interleaved, photo_crops, rate, write_jpegs
from colorkit import batch, color, colorize, models

ITEM = "5 inference"
#: the issue's targets: one photo, a folder (against the reports' way, file by file)
ONE_PHOTO_TARGET, FOLDER_TARGET = 2.0, 4.0
#: the stages of one photo, on both sides
STAGES = ("decode", "Lab", "network", "colour", "encode + write")
STAGE_NAMES = {"Lab": "Lab (the L the network sees and the one the output keeps)",
               "colour": "colour (ab resized and joined with L, gamut, RGB)"}
#: the API item: clients sending at once, and each worker count measured
API_CLIENTS, API_WORKERS = 4, (1, 2)


def build_colorizer(name: str, size: int, width: float = 1.0):
    """An untrained model at its working size, ready for inference (Zhang's gets its decode)."""
    model = models.build(name, input_shape=(size, size, 1), width=width, seed=0)
    return colorize.as_colorizer(model)


class Laps:
    """CPU seconds of the whole process (every thread) per named stage, added up over calls."""

    def __init__(self):
        self.seconds = collections.Counter()
        self._last = time.process_time()

    def start(self) -> None:
        self._last = time.process_time()

    def lap(self, stage: str) -> None:
        now = time.process_time()
        self.seconds[stage] += now - self._last
        self._last = now


def report_colorize(colorizer, source, target, laps: Laps | None = None) -> None:
    """The reports' way for one file (see the module docstring)."""
    from PIL import Image
    from skimage import color as skcolor
    from skimage import transform

    laps = laps or Laps()
    laps.start()
    size = colorize.working_size(colorizer)
    with Image.open(source) as image:
        original = image.convert("RGB")
        small = original.resize(size[::-1], Image.BICUBIC)
    laps.lap("decode")
    lab = skcolor.rgb2lab(np.asarray(original))
    l_small = skcolor.rgb2lab(np.asarray(small))[..., :1]
    laps.lap("Lab")
    ab_norm = np.asarray(colorizer.predict_on_batch(color.normalize_l(l_small)[None].astype(np.float32)))[0]
    laps.lap("network")
    ab = transform.resize(color.denormalize_ab(ab_norm), lab.shape[:2], order=1)
    rgb = skcolor.lab2rgb(np.concatenate([lab[..., :1], ab], axis=-1))
    laps.lap("colour")
    Image.fromarray((rgb * 255).round().astype(np.uint8)).save(target, quality=95)
    laps.lap("encode + write")


def kit_stages(colorizer, sources, out_dir, laps: Laps) -> None:
    """The kit's way for a batch of files, one stage after the other (the steps
    ``colorize_jobs`` takes, without its threads, so that each can be timed)."""
    from colorkit.data.decode import load_stored

    size = colorize.resolve_size(colorizer)
    laps.start()
    stored = [load_stored(source) for source in sources]
    laps.lap("decode")
    items = [colorize.prepare(colorizer, image.pixels, size) for image in stored]
    laps.lap("Lab")
    predicted = colorize.predict_ab(colorizer, colorize.stack_feeds([item.feed for item in items]))
    laps.lap("network")
    pictures = [batch.paint(item.l_full, ab_norm) for item, ab_norm in zip(items, predicted)]
    laps.lap("colour")
    for source, picture in zip(sources, pictures):
        batch.write_picture(picture, Path(out_dir) / Path(source).name, "JPEG")
    laps.lap("encode + write")


def kit_colorize(colorizer, source, target) -> None:
    """The public ``colorize`` call, then Pillow."""
    from PIL import Image

    rgb = colorize.colorize(colorizer, source)
    Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255).round().astype(np.uint8)).save(target, quality=95)


def kit_command(colorizer, sources, out_dir) -> None:
    """The ``colorize`` command's path: ``plan_jobs`` + ``colorize_jobs``."""
    jobs, problems = batch.plan_jobs([str(source) for source in sources], str(out_dir))
    failures = batch.colorize_jobs(colorizer, jobs, progress=False)
    if problems or failures:
        raise RuntimeError(f"the files did not colorize cleanly: {problems or failures}")


def one_image_rows(scale, tmp: Path) -> list[dict]:
    """Milliseconds per 1024x768 JPEG, every model, both ways; the first model's stages."""
    width, height = scale.inference_image
    source = write_jpegs(tmp / "one", photo_crops(1, width, height, seed=5))[0]
    rows = []
    for name in scale.inference_models:
        colorizer = build_colorizer(name, scale.inference_size, scale.inference_width)
        timings = interleaved({
            "report": lambda: report_colorize(colorizer, source, tmp / "report.jpg"),
            "kit": lambda: kit_command(colorizer, [source], tmp / "kit"),
            "kit call": lambda: kit_colorize(colorizer, source, tmp / "kit.jpg"),
        }, scale.inference_repeats)
        model = f"{name} (width {scale.inference_width:g}) at {scale.inference_size} px"
        comparison = Comparison(ITEM, f"one {width}x{height} JPEG, {model}", target=ONE_PHOTO_TARGET)
        comparison.baseline("Pillow + skimage rgb2lab/resize/lab2rgb around the network", 1000 * timings["report"].median,
                            "ms", timings["report"])
        comparison.kit("colorkit colorize command (colorize_jobs, one file)", 1000 * timings["kit"].median, "ms",
                       timings["kit"])
        comparison.kit("colorkit colorize(model, path) + Pillow save", 1000 * timings["kit call"].median, "ms",
                       timings["kit call"])
        rows += comparison.rows
        if name == scale.inference_models[0]:
            case = f"one {width}x{height} JPEG, {model}"
            rows += stage_rows(case, scale.inference_repeats,
                               lambda laps: report_colorize(colorizer, source, tmp / "report.jpg", laps),
                               lambda laps: kit_stages(colorizer, [source], tmp / "kit", laps))
    return rows


def stage_rows(case: str, repeats: int, report, kit, count: int = 1) -> list[dict]:
    """CPU milliseconds per image of each stage, the reports' way against the kit's
    (medians of ``repeats`` after a warm-up), and of all of them but the network."""
    per_run = {"report": [], "kit": []}
    for side, run in (("report", report), ("kit", kit)):
        run(Laps())
        for _ in range(max(1, repeats)):
            laps = Laps()
            run(laps)
            per_run[side].append({stage: seconds / count for stage, seconds in laps.seconds.items()})
    rows = []
    for stage in (*STAGES, "all but the network", "end to end"):
        picked = {side: Timing([_stage_seconds(run, stage) for run in runs]) for side, runs in per_run.items()}
        target = ONE_PHOTO_TARGET if stage == "all but the network" and count == 1 else None
        comparison = Comparison(ITEM, f"{case}, CPU per image: {STAGE_NAMES.get(stage, stage)}", target=target)
        comparison.baseline("the reports' way", 1000 * picked["report"].median, "ms", picked["report"])
        comparison.kit("colorkit", 1000 * picked["kit"].median, "ms", picked["kit"])
        rows += comparison.rows
    return rows


def _stage_seconds(run: dict, stage: str) -> float:
    if stage == "end to end":
        return sum(run.values())
    if stage == "all but the network":
        return sum(seconds for name, seconds in run.items() if name != "network")
    return run[stage]


def cpu_timed(run, seconds: list):
    """``run`` that also appends the CPU seconds each call takes (every thread of the process) to ``seconds``."""

    def timed():
        start = time.process_time()
        run()
        seconds.append(time.process_time() - start)

    return timed


def folder_rows(scale, tmp: Path) -> list[dict]:
    """Images per second over a folder of photos, one model; the stages of one batch of them."""
    width, height = scale.folder_image
    count = scale.folder_images
    folder = tmp / "folder"
    paths = write_jpegs(folder, photo_crops(count, width, height, seed=6))
    colorizer = build_colorizer(scale.folder_model, scale.inference_size, scale.folder_width)
    out = tmp / "out"
    out.mkdir()
    report_colorize(colorizer, paths[0], out / "warm.jpg")  # a few images warm every path up (a whole folder is slow):
    kit_colorize(colorizer, paths[0], out / "warm.jpg")  # the network's graph for a batch of one,
    kit_command(colorizer, paths[: batch.DEFAULT_BATCH_SIZE + 1], out / "warm")  # a full batch and a short one
    methods = {"report": ("the reports' way, file by file",
                          lambda: [report_colorize(colorizer, path, out / Path(path).name) for path in paths]),
               "kit": ("colorkit colorize_jobs (the colorize command: batched, threads decode and encode)",
                       lambda: kit_command(colorizer, [folder], tmp / "kit_out")),
               "kit loop": ("colorkit colorize(model, path) file by file",
                            lambda: [kit_colorize(colorizer, path, out / Path(path).name) for path in paths])}
    cpu = {name: [] for name in methods}
    timings = interleaved({name: cpu_timed(run, cpu[name]) for name, (_, run) in methods.items()},
                          scale.folder_repeats, warmup=0)
    model = f"{scale.folder_model} (width {scale.folder_width:g})"
    case = f"a folder of {count} JPEGs of {width}x{height}, {model}"
    comparison = Comparison(ITEM, case, target=FOLDER_TARGET)
    cpu_comparison = Comparison(ITEM, f"{case}, CPU per image (every thread)")
    for name, (method, _) in methods.items():
        add = comparison.baseline if name == "report" else comparison.kit
        add(method, rate(count, timings[name]), "images/s", timings[name])
        per_image = Timing([seconds / count for seconds in cpu[name]])
        (cpu_comparison.baseline if name == "report" else cpu_comparison.kit)(method, 1000 * per_image.median, "ms",
                                                                                per_image)
    sample = paths[: batch.DEFAULT_BATCH_SIZE]
    stages = stage_rows(f"a batch of {len(sample)} JPEGs of {width}x{height}, {model}", scale.folder_repeats,
                        lambda laps: [report_colorize(colorizer, path, out / Path(path).name, laps) for path in sample],
                        lambda laps: kit_stages(colorizer, sample, out, laps), count=len(sample))
    return comparison.rows + cpu_comparison.rows + stages


# --- The HTTP API -------------------------------------------------------------------------------------


def _multipart(data: bytes, boundary: str = "colorkit-bench") -> tuple[bytes, str]:
    """A form with the image in field ``file``, and its content type."""
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _post(port: int, body: bytes, content_type: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("POST", "/api/colorize", body, {"Content-Type": content_type})
        reply = connection.getresponse()
        reply.read()
        if reply.status != 200:
            raise RuntimeError(f"the API answered {reply.status}")
    finally:
        connection.close()


def api_requests_per_second(colorizer, uploads: list[bytes], workers: int, clients: int = API_CLIENTS) -> Timing:
    """Seconds to answer every upload once, ``clients`` sending at once, from a
    server with ``workers`` workers (uvicorn on a free local port, as ``serve`` runs it)."""
    import uvicorn

    from colorkit.web import Limits, create_app
    from colorkit.web.app import bind

    app = create_app(colorizer, Limits(workers=workers, queue=clients))
    with bind("127.0.0.1", 0) as listening:
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
        thread.start()
        try:
            while not server.started:
                time.sleep(0.05)
            port = listening.getsockname()[1]
            forms = [_multipart(data) for data in uploads]
            for body, content_type in forms[:clients]:  # warm-up
                _post(port, body, content_type)
            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as senders:
                list(senders.map(lambda form: _post(port, *form), forms))
            return Timing([time.perf_counter() - start])
        finally:
            server.should_exit = True
            thread.join()


def api_rows(scale, tmp: Path) -> list[dict]:
    """Requests per second of the API, uploads of the folder's photos, 1 and 2 workers."""
    width, height = scale.folder_image
    count = scale.folder_images
    paths = write_jpegs(tmp / "uploads", photo_crops(count, width, height, seed=7))
    uploads = [Path(path).read_bytes() for path in paths]
    colorizer = build_colorizer(scale.folder_model, scale.inference_size, scale.folder_width)
    timings = {workers: api_requests_per_second(colorizer, uploads, workers) for workers in API_WORKERS}
    model = f"{scale.folder_model} (width {scale.folder_width:g})"
    comparison = Comparison(ITEM, f"the API, {count} uploads of {width}x{height} JPEGs from {API_CLIENTS} clients, "
                                  f"{model}")
    baseline, *others = API_WORKERS
    comparison.baseline(f"serve --workers {baseline}", rate(count, timings[baseline]), "requests/s", timings[baseline])
    for workers in others:
        comparison.kit(f"serve --workers {workers}", rate(count, timings[workers]), "requests/s", timings[workers])
    return comparison.rows


def run(scale) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-") as tmp:
        return one_image_rows(scale, Path(tmp)) + folder_rows(scale, Path(tmp)) + api_rows(scale, Path(tmp))
