"""``python -m bench [--quick] [--only ITEMS] [--out DIR]``: run the benchmarks (``make bench``)."""

import argparse

from bench import runner

parser = argparse.ArgumentParser(prog="python -m bench", description="time colorkit against the reports' ways")
parser.add_argument("--quick", action="store_true", help="less data and fewer repeats (under 5 minutes)")
parser.add_argument("--only", metavar="ITEMS", help="comma-separated items (see python -m colorkit bench --help)")
parser.add_argument("--out", metavar="DIR", help="where results.csv and results.md go (default reports/benchmarks)")
arguments = parser.parse_args()
runner.main(quick=arguments.quick, only=arguments.only, out=arguments.out)
