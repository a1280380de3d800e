"""colorkit's performance benchmarks (``make bench``; ``python -m bench [--quick]``).

One module per item of the performance issue, each with a ``run(scale)`` that
returns result rows; ``bench.runner`` runs them and writes
``reports/benchmarks/results.csv`` and ``results.md``. The reference
implementations the kit is compared with (per-image skimage conversion,
``ImageDataGenerator``, a cKDTree soft-encoder, skimage inference) are written
here, in the modules that use them. ``bench.common`` holds the timing rules.
"""
