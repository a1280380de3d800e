"""``python -m colorkit``: the command line.

Each subcommand is a small ``add_*`` function that declares its arguments and
points at a ``run_*`` function doing the work through the package's public
functions. User mistakes (``ColorkitError``) become one line on stderr and exit
code 2; nothing here prints a traceback for them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from colorkit.cluster import DEFAULT_PEER_TIMEOUT  # runs no TensorFlow op: see join_cluster_first
from colorkit.errors import ColorkitError


def add_data_commands(subparsers):
    """``colorkit data ...``: build the sample set, describe it, check a dataset folder."""
    data = subparsers.add_parser("data", help="build the sample set; check a dataset folder")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    sample = data_sub.add_parser("sample", help="build the embedded sample set (deterministic)")
    sample.add_argument("--out", default=None, help="output folder (default datasets/sample)")
    sample.set_defaults(func=run_data_sample)

    show = data_sub.add_parser("show", help="describe a built sample set")
    show.add_argument("--root", default=None, help="sample set folder (default datasets/sample)")
    show.set_defaults(func=run_data_show)

    check = data_sub.add_parser("check", help="validate a dataset folder and print its split")
    check.add_argument("name", help="dataset name (`data list` shows them; see datasets/README.md)")
    check.add_argument("root", nargs="?", default=None, help="the dataset's folder (optional for sample)")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--breed", help="oxford_pets / stanford_dogs: one breed, e.g. basset_hound")
    check.add_argument("--limit", type=int, help="a seeded subset of at most this many images")
    check.add_argument("--fraction", type=float, help="sports100 / intel_landscapes / voc2012 / zhang_mix: share kept")
    check.add_argument("--kind", choices=("photos", "shapes"), help="sample: one kind of image only")
    check.set_defaults(func=run_data_check)

    listing = data_sub.add_parser("list", help="list the dataset names data check and training accept")
    listing.set_defaults(func=run_data_list)


def run_data_sample(args) -> int:
    from colorkit.data import sample

    summary = sample.build_sample_set(args.out)
    print(summary)
    return 0


def run_data_show(args) -> int:
    from colorkit.data import sample

    print(sample.describe_sample_set(args.root))
    return 0


def run_data_check(args) -> int:
    from colorkit.data import sources

    given = {option: getattr(args, option) for option in ("breed", "limit", "fraction", "kind")}
    options = {option: value for option, value in given.items() if value is not None}
    split = sources.load_split(args.name, args.root, seed=args.seed, **options)
    print(" ".join(f"{name}={len(split[name])}" for name in ("train", "val", "test")))
    return 0


def run_data_list(args) -> int:
    from colorkit.data import sources

    for name, description in sources.available_datasets().items():
        print(f"{name:18} {description}")
    return 0


def parse_key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (key, value); the value is read as JSON when it is JSON
    (0.25, true, [1, 2]) and kept as a string otherwise (bilinear)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ColorkitError(f"options are given as KEY=VALUE (e.g. width=0.25), got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def add_train_command(subparsers):
    """``colorkit train``: one report recipe (or a model's default recipe) with overrides."""
    from colorkit import experiments, models

    parser = subparsers.add_parser("train", help="train a model; writes one run folder")
    what = parser.add_argument_group("what to train")
    what.add_argument("--model", help=f"one of {', '.join(models.available())}")
    what.add_argument("--experiment", choices=sorted(experiments.EXPERIMENTS), help="a report's recipe")
    what.add_argument("--scale", choices=experiments.SCALES, default="quick", help="the recipe's scale (default quick)")
    what.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                      help="a builder option, e.g. width=0.25 (repeatable)")
    data = parser.add_argument_group("data (default: the sample set)")
    data.add_argument("--data", help="any folder of images (its train/ val/ test/ or a seeded 70/10/20)")
    data.add_argument("--dataset", help="a named dataset (`python -m colorkit data list`)")
    data.add_argument("--root", help="the named dataset's folder")
    data.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                      help="e.g. breed=basset_hound or limit=400 (repeatable)")
    knobs = parser.add_argument_group("hyper-parameters (default: the recipe's)")
    for flag, kind in (("--image-size", int), ("--epochs", int), ("--batch-size", int), ("--seed", int),
                       ("--steps-per-epoch", int), ("--learning-rate", float), ("--pretrain-epochs", int),
                       ("--l1-weight", float), ("--sample-every", int)):
        knobs.add_argument(flag, type=kind)
    for name, allowed in experiments.CHOICES.items():
        knobs.add_argument(f"--{name.replace('_', '-')}", choices=allowed)
    guided = parser.add_argument_group("user-guided colorization (simulated users give hints while it trains)")
    guided.add_argument("--hints", action="store_true", default=None,
                        help="train the model's hint variant (unet_generator, strided_cnn)")
    guided.add_argument("--global-hints", action="store_true", default=None,
                        help="also a global hint: the target's ab histogram (unet_generator)")
    guided.add_argument("--hint-p", type=float, metavar="P",
                        help="simulated users give a geometric(P) number of points, mean (1-P)/P (default 1/8: 7)")
    run = parser.add_argument_group("the run")
    what.add_argument("--init", metavar="pretrained:eccv16",
                      help="fine-tune Zhang et al.'s released ECCV16 (or pretrained:FILE.pth) on your data")
    run.add_argument("--out", help="run folder (default runs/<model>-<time>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--peer-timeout", type=float, default=DEFAULT_PEER_TIMEOUT, metavar="SECONDS",
                     help="--strategy multi_worker: how long to wait for the other machines, at the start and at "
                          f"every exchange (default {DEFAULT_PEER_TIMEOUT:g})")
    parser.set_defaults(func=run_train)


def join_cluster_first(argv) -> None:
    """``train --strategy multi_worker``: join the cluster before anything else.

    TensorFlow sets up its collective ops only before its first op, and building
    the parser imports the kit, whose colour module runs ops; so the two flags
    that matter are read here first, with a parser of their own."""
    if not argv or argv[0] != "train":
        return
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--strategy")
    early.add_argument("--peer-timeout", type=float, default=DEFAULT_PEER_TIMEOUT)
    known, _ = early.parse_known_args(argv[1:])
    if known.strategy == "multi_worker":
        from colorkit import cluster

        cluster.join(known.peer_timeout)


#: CLI flags copied into TrainConfig fields of the same name when given.
_TRAIN_FLAGS = ("image_size", "epochs", "batch_size", "seed", "steps_per_epoch", "learning_rate", "pretrain_epochs",
                "l1_weight", "sample_every", "trainer", "loss", "optimizer", "strategy", "mixed_precision",
                "jit_compile", "gan_loss", "out", "hints", "global_hints", "hint_location", "hint_p", "init", "keep")


def train_config_from_args(args):
    """The ``TrainConfig`` a ``train`` command line asks for (not yet validated)."""
    from colorkit import experiments

    if args.init and not args.model:
        args.model = "zhang_eccv16"  # the family of the released network --init starts from
    if not args.model and not args.experiment:
        raise ColorkitError("say what to train: --model NAME, --experiment NAME or --init pretrained:eccv16")
    experiment = args.experiment or experiments.default_experiment_for(args.model, hints=bool(args.hints))
    changes = {name: getattr(args, name) for name in _TRAIN_FLAGS if getattr(args, name) is not None}
    if args.model:
        changes["model"] = args.model
    if args.init:  # the released architecture, at Zhang et al.'s own learning rate unless one is given
        changes.update(model_options={}, learning_rate=args.learning_rate or experiments.FINE_TUNING_RATE)
    if args.model_option:
        changes["model_options"] = dict(map(parse_key_value, args.model_option))
    changes.update(data_changes(args))
    if experiment is None:
        return experiments.TrainConfig().replace(**changes)
    return experiments.experiment_config(experiment, args.scale, **changes)


def data_changes(args) -> dict:
    """TrainConfig fields for --data / --dataset / --root / --dataset-option."""
    if args.data and args.dataset:
        raise ColorkitError("give either --data DIR (any folder) or --dataset NAME --root DIR, not both")
    if args.data:
        return {"dataset": "folder", "root": args.data, "dataset_options": {}}
    if not args.dataset:
        return {}
    if args.dataset != "sample" and not args.root:
        raise ColorkitError(f"--dataset {args.dataset} needs --root DIR, the folder holding it (see datasets/README.md)")
    changes = {"dataset": args.dataset, "root": args.root, "dataset_options": {}}
    if args.dataset_option:
        changes["dataset_options"] = dict(map(parse_key_value, args.dataset_option))
    return changes


def run_train(args) -> int:
    from colorkit import cluster, training

    run_dir = training.train(train_config_from_args(args), resume=args.resume, verbose=0 if args.quiet else 1)
    joined = cluster.joined()
    machines = joined[1] if joined else None
    if machines and not machines.is_chief:
        print(f"{machines.task_type} {machines.task_index} done; the chief wrote the run to {run_dir} on its machine")
    else:
        print(f"run written to {run_dir}")
    return 0


def add_evaluate_command(subparsers):
    parser = subparsers.add_parser("evaluate", help="score a run against the gray and random baselines, "
                                                    "or the temporal modes on colour clips (--video)")
    add_model_source(parser, required=False)
    parser.add_argument("--data", help="evaluate on this folder of images instead of the run's own data")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--video", nargs="+", metavar="CLIP",
                        help="colour clips: made gray, colorized frame by frame, with ema and with flow, and scored")
    parser.add_argument("--size", type=int, help="working size of a model without a run folder (default 256)")
    parser.add_argument("--out", help="output folder (default RUN/eval/SPLIT, or RUN/eval/video with --video)")
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    if args.video:
        return run_evaluate_video(args)
    from colorkit import colorize, evaluate

    if args.run:
        out = evaluate.evaluate_run(args.run, split_name=args.split, data_root=args.data, out=args.out)
    elif args.data and args.out:
        colorizer = colorize.load_colorizer(model_source(args))
        out = evaluate.evaluate_on_folder(colorizer, args.data, args.out, split_name=args.split,
                                          image_size=args.size or colorize.DEFAULT_SIZE)
    else:
        raise ColorkitError("say what to evaluate: --run RUN_DIR, or a model (--model, --pretrained) with "
                            "--data DIR and --out DIR")
    print((out / "summary.md").read_text(encoding="utf-8"), end="")
    print(f"tables written to {out}")
    return 0


def run_evaluate_video(args) -> int:
    """The temporal modes compared on colour clips: a table and a per-frame plot per clip."""
    from pathlib import Path

    from colorkit import colorize
    from colorkit.video import evaluate

    if not args.out and not args.run:
        raise ColorkitError("--video with --model or --pretrained needs --out DIR for the tables and plots")
    out = Path(args.out) if args.out else Path(args.run) / "eval" / "video"
    evaluate.evaluate_clips(colorize.load_colorizer(model_source(args)), args.video, out, size=args.size)
    print((out / "summary.md").read_text(encoding="utf-8"), end="")
    print(f"tables and plots written to {out}")
    return 0


def add_model_source(parser, required: bool = True):
    """``--run RUN_DIR``, ``--model FILE`` or ``--pretrained NAME``: where the model comes from (one of them)."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--run", metavar="RUN_DIR", help="a run folder written by `train` (its best checkpoint)")
    source.add_argument("--model", metavar="FILE", help="a .keras model file")
    source.add_argument("--pretrained", metavar="NAME", help="Zhang et al.'s released eccv16 or siggraph17 "
                        "(downloaded once into the Keras cache), or the path of such a .pth file")


def model_source(args) -> str:
    """The source ``colorize.load_colorizer`` takes, from ``add_model_source``'s flags."""
    from colorkit.experiments import PRETRAINED

    return args.run or args.model or f"{PRETRAINED}{args.pretrained}"


def add_colorize_command(subparsers):
    """``colorkit colorize``: image files and folders of any size and format, and clips; bad files are skipped."""
    parser = subparsers.add_parser("colorize", help="colorize image files and folders (any size and format) and clips")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files or folders (searched recursively), or clips (.mp4 .mov .mkv .avi .webm, "
                             "animated .gif)")
    add_model_source(parser)
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="output folder; folders are mirrored in it")
    parser.add_argument("--hints", metavar="FILE", help="JSON colour hints applied to every input (see colorkit.hints)")
    parser.add_argument("--reference", metavar="FILE", help="an image whose colours are the global hint")
    parser.add_argument("--compare", action="store_true", help="write gray | colorized side by side")
    parser.add_argument("--temporal", choices=("none", "ema", "flow"), default="flow",
                        help="clips: frame by frame, a moving average of the colours, or colours carried along "
                             "the optical flow (default flow)")
    parser.add_argument("--size", type=int, help="working size of a model that takes any size (default 256)")
    parser.add_argument("--batch-size", type=int, default=8, help="images through the network at once (default 8)")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="largest image (width x height) taken, and the most pixels a folder holds in memory at "
                             "once (default 144 megapixels: at most about 3.5 GB besides the model)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_colorize)


def _report_failure(line: str) -> None:
    """One line on stderr, after whatever the progress bar has printed so far."""
    sys.stdout.flush()
    print(f"error: {line}", file=sys.stderr, flush=True)


def run_colorize(args) -> int:
    """Exit 0 when every input was colorized, 1 when any was skipped (each named on stderr)."""
    from colorkit import batch, colorize
    from colorkit.data.decode import DEFAULT_MAX_PIXELS, load_rgb

    if args.batch_size < 1:
        raise ColorkitError(f"--batch-size must be at least 1, got {args.batch_size}")
    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels
    if max_pixels < 1:
        raise ColorkitError(f"--max-pixels must be at least 1, got {max_pixels}")
    clips, images = batch.split_clips(args.inputs)
    if clips and (args.hints or args.reference or args.compare):
        raise ColorkitError("--hints, --reference and --compare apply to images, not to clips")
    hints = batch.read_hints_file(args.hints) if args.hints else None
    reference = load_rgb(args.reference) if args.reference else None
    jobs, problems = batch.plan_jobs(images, args.out) if images else ([], [])
    colorizer = colorize.load_colorizer(model_source(args))
    for source, problem in problems:
        _report_failure(f"{source} {problem}")
    failures = batch.colorize_jobs(colorizer, jobs, size=args.size, hints=hints, reference=reference,
                                   compare=args.compare, batch_size=args.batch_size, progress=not args.quiet,
                                   on_error=_report_failure, max_pixels=max_pixels) if jobs else []
    failures += batch.colorize_clips(colorizer, clips, args.out, temporal=args.temporal, size=args.size,
                                     batch_size=args.batch_size, progress=not args.quiet, on_error=_report_failure)
    total = len(jobs) + len(problems) + len(clips)
    print(f"colorized {len(jobs) + len(clips) - len(failures)} of {total} inputs into {args.out}")
    return 1 if failures or problems else 0


def add_serve_command(subparsers):
    """``colorkit serve``: the HTTP API and the web page, on this machine only unless --host says otherwise."""
    parser = subparsers.add_parser("serve", help="the HTTP API and web page (binds 127.0.0.1 by default)")
    add_model_source(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="default 8000; 0: any free port")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="answer requests for this host name too (repeatable; '*': any); by default only "
                             "the bound address's own names are answered (a defence against DNS rebinding)")
    parser.add_argument("--size", type=int, help="working size of a model that takes any size (default 256)")
    limits = parser.add_argument_group("limits (defaults: 20 MB, 134 megapixels, 2 workers, 8 waiting, 60 s, 10 s)")
    limits.add_argument("--max-upload-mb", type=float, help="largest upload; above it the answer is 413")
    limits.add_argument("--max-pixels", type=int,
                        help="largest image (width x height); above it 413 (default: what keeps the images of all "
                             "workers within 6 GiB, 24 bytes a pixel)")
    limits.add_argument("--workers", type=int, help="requests colorized at once")
    limits.add_argument("--queue", type=int, help="requests waiting for a worker; beyond them the answer is 503")
    limits.add_argument("--body-timeout", type=float, metavar="SECONDS", help="an upload must arrive within this; else 408")
    limits.add_argument("--idle-timeout", type=float, metavar="SECONDS", help="an upload may pause this long; else 408")
    parser.set_defaults(func=run_serve)


def run_serve(args) -> int:
    """Every option is checked before the socket is bound and the model loaded (see ``web.serve``)."""
    from colorkit.web import Limits, serve

    given = {"max_pixels": args.max_pixels, "workers": args.workers, "queue": args.queue,
             "body_timeout": args.body_timeout, "idle_timeout": args.idle_timeout}
    if args.max_upload_mb is not None:
        if not 0 < args.max_upload_mb < math.inf:
            raise ColorkitError(f"--max-upload-mb must be a positive number, got {args.max_upload_mb}")
        given["max_upload_bytes"] = max(1, int(args.max_upload_mb * 1024 * 1024))
    limits = Limits(**{name: value for name, value in given.items() if value is not None})
    serve(model_source(args), host=args.host, port=args.port, limits=limits, size=args.size,
          allow_hosts=args.allow_host)
    return 0


def add_export_command(subparsers):
    """``colorkit export``: the inference model as a .keras file or a TF SavedModel, for serving elsewhere."""
    from colorkit import batch

    parser = subparsers.add_parser("export", help="write a model for serving elsewhere (.keras or TF SavedModel)")
    add_model_source(parser)
    parser.add_argument("--format", required=True, choices=batch.EXPORT_FORMATS)
    parser.add_argument("-o", "--out", required=True, metavar="PATH",
                        help="a .keras file, or a new folder for the SavedModel")
    parser.set_defaults(func=run_export)


def run_export(args) -> int:
    from colorkit import batch

    path = batch.export_model(model_source(args), args.format, args.out)
    print(f"exported the {args.format} model to {path}")
    return 0


def add_reproduce_command(subparsers):
    from colorkit.experiments import SCALES

    parser = subparsers.add_parser("reproduce", help="run the report notebooks and write reports/")
    parser.add_argument("names", nargs="*", help="notebooks to run (e.g. 01_strided_cnn or strided_cnn; default all)")
    parser.add_argument("--scale", choices=SCALES, default="quick", help="quick (sample set, minutes) or full (the reports')")
    parser.add_argument("--data-root", help="the folder holding the reports' datasets (full scale)")
    parser.set_defaults(func=run_reproduce)


def run_reproduce(args) -> int:
    from colorkit import reproduce

    index = reproduce.reproduce(args.names, scale=args.scale, data_root=args.data_root)
    print(f"index written to {index}")
    return 0


def add_bench_command(subparsers):
    """``colorkit bench``: the performance benchmarks of bench/ (``make bench``)."""
    parser = subparsers.add_parser("bench", help="time the kit against the reports' ways; writes reports/benchmarks/")
    parser.add_argument("--quick", action="store_true", help="less data and fewer repeats (under 5 minutes)")
    parser.add_argument("--only", metavar="ITEMS",
                        help="comma-separated items: lab, pipeline, soft, train, precision, inference, scaling, video, "
                             "multiworker (or their numbers 1, 2, 3, 4, 4b, 5, 6, 7, 8)")
    parser.add_argument("--out", metavar="DIR", help="where results.csv and results.md go (default reports/benchmarks)")
    parser.set_defaults(func=run_bench)


def run_bench(args) -> int:
    """The benchmarks are the ``bench`` package of a colorkit checkout (``make`` installs it beside colorkit)."""
    try:
        from bench import runner
    except ImportError:
        raise ColorkitError("the benchmarks are not installed: run this from a colorkit checkout after `make venv`") from None
    runner.main(quick=args.quick, only=args.only, out=args.out)
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (like every other user error)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m colorkit",
        description="colorkit: deep image colorization course kit",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_data_commands(subparsers)
    add_train_command(subparsers)
    add_evaluate_command(subparsers)
    add_reproduce_command(subparsers)
    add_colorize_command(subparsers)
    add_serve_command(subparsers)
    add_export_command(subparsers)
    add_bench_command(subparsers)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        join_cluster_first(argv)
    except ColorkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ColorkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
