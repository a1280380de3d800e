"""colorkit: a Keras 3 / TensorFlow course kit for deep image colorization.

Importing the package imports TensorFlow quietly. TensorFlow's C++ start-up
lines (CUDA probing on a machine without a GPU, oneDNN notices) are printed by
absl *before* ``TF_CPP_MIN_LOG_LEVEL`` is read, so the only reliable way to
keep a student's notebook clean is to point file descriptor 2 at /dev/null for
the duration of the import. Set ``COLORKIT_VERBOSE_TF=1`` to see them again.
"""

import os

__version__ = "0.1.0"


def _match_threads_to_cores():
    """Give TensorFlow one intra-op thread per core this process may use.

    A process held to some of the machine's cores (``taskset``, a container's
    cpuset, a Slurm job) otherwise gets TensorFlow's default thread count, and
    the input pipeline's threads crowd those cores (bench/'s one-core rows show it)."""
    if not hasattr(os, "sched_getaffinity"):  # Linux only; elsewhere the default stands
        return
    cores = len(os.sched_getaffinity(0))
    if cores < (os.cpu_count() or cores):
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(cores))


def _import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up log silenced (see module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # TensorFlow's default CPU allocator returns every large freed buffer to the
    # operating system, so a tf.data map that builds a fresh batch each step pays
    # page faults for all of its memory again; the BFC allocator keeps and reuses
    # them. Read once, before the first op (bench/ times the kit with and without it).
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    _match_threads_to_cores()
    if os.environ.get("COLORKIT_VERBOSE_TF"):
        import tensorflow  # noqa: F401
        return
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(devnull)
    tf.get_logger().setLevel("ERROR")


_import_tensorflow_quietly()
