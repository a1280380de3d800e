"""Atomic file writes: a file is either the old version or the complete new one.

A training run can be killed at any moment (Ctrl-C, a preempted Colab, a full
disk). If it dies half-way through writing ``best.keras`` or ``summary.csv``,
the next reader finds a truncated file and fails in a confusing way. So every
file colorkit writes goes to a temporary name in the *same folder* first and is
then renamed over the target with ``os.replace``, which is atomic on POSIX and
Windows when both names are on the same file system (hence the same folder).

The temporary name is hidden (leading dot) and *ends with the target's name*,
so it keeps every suffix: Keras insists on ``.keras`` / ``.weights.h5``, numpy
appends ``.npy`` unless it is there, matplotlib reads the format from it.
``atomic_folder`` does the same for a folder that must not exist yet (a
TF SavedModel): it is written under a hidden sibling name, then renamed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path


def _temporary_sibling(path: Path) -> Path:
    """A hidden, unused name next to ``path`` that ends with ``path``'s own name."""
    return path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")


@contextlib.contextmanager
def _written_beside(path, commit, discard):
    """Yield a temporary name next to ``path``; ``commit(tmp, path)`` on success,
    ``discard(tmp)`` if the block raises. The parent folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def atomic_path(path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Use it for writers that want a file name (``model.save``, ``np.save``,
    ``fig.savefig``). If the block raises, the temporary file is removed and
    ``path`` is left exactly as it was.
    """
    return _written_beside(path, os.replace, lambda tmp: tmp.unlink(missing_ok=True))


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return path


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; newlines are written as given."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_folder(path):
    """Yield a temporary folder path next to ``path`` (not yet created); rename it
    onto ``path``, which must not exist, on success. If the block raises, the
    temporary folder is removed and nothing appears at ``path``."""
    return _written_beside(path, os.rename, lambda tmp: shutil.rmtree(tmp, ignore_errors=True))
