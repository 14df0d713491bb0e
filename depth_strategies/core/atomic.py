"""The one way this package writes a file: to a temporary name beside it, then renamed into place.

``os.replace`` within one folder is atomic, so an interrupted write (Ctrl-C, a crash, a full disk) leaves either
the previous file or none, never a truncated one that a resumed run, ``--load-dir`` or a reader would take for
finished. Used for checkpoints, results, scenes, figures and videos alike.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union


@contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """A temporary path beside ``path`` that becomes ``path`` when the block completes.

    The temporary name keeps the suffix (writers that pick a format from it, such as matplotlib, PIL, numpy's
    ``savez`` and ffmpeg, still do) and starts with a dot. If the block raises, the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Union[str, Path], text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes_atomic(path: Union[str, Path], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
