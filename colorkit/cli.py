"""``python -m colorkit``: the command line.

Each subcommand is a small ``add_*`` function that declares its arguments and
points at a ``run_*`` function doing the work through the package's public
functions. User mistakes (``ColorkitError``) become one line on stderr and exit
code 2; nothing here prints a traceback for them.
"""

from __future__ import annotations

import argparse
import sys

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m colorkit",
        description="colorkit: deep image colorization course kit",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_data_commands(subparsers)
    return parser


def main(argv=None) -> int:
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
