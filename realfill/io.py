"""Atomic output: a reader never sees a half-written image or folder."""

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image


@contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder (same suffix) that is renamed onto `path`
    only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(staging)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def save_image(image: Image.Image, path: Path) -> None:
    """Write an image atomically."""
    with staged_file(path) as staging:
        image.save(staging)


def write_text(text: str, path: Path) -> None:
    """Write text atomically."""
    with staged_file(path) as staging:
        staging.write_text(text, newline="")


def write_json(data: object, path: Path) -> None:
    """Write JSON (indented) atomically."""
    write_text(json.dumps(data, indent=2, default=str), path)


@contextmanager
def staged_directory(path: Path) -> Iterator[Path]:
    """Yield an empty staging folder that replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    staging.rename(path)
