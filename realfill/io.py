"""Files in and out: atomic output (a reader never sees a half-written image or folder),
output folders checked before the work that fills them, text read with one-line errors."""

import json
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from realfill.errors import OutputError, RealFillError

PNG_COMPRESSION = 1
"""zlib level of the PNGs written. On the tiny model's 512x512 candidates (a 2-core CPU), level 1
encodes in 21 ms against 99 ms at Pillow's default 6, for files 16% larger; lossless either
way."""


def make_parent(path: Path) -> None:
    """Create the folder `path` goes in, or refuse in one line (`OutputError`) when it cannot
    be: a file in the way, no permission."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{path}: cannot be written ({error.strerror or error})") from None


@contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder (same suffix) that is renamed onto `path`
    only if the block succeeds."""
    path = Path(path)
    make_parent(path)
    handle, staging = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    os.chmod(staging, umask_mode(directory=False))
    try:
        yield Path(staging)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def save_image(image: Image.Image, path: Path) -> None:
    """Write an image atomically (a PNG at `PNG_COMPRESSION`)."""
    with staged_file(path) as staging:
        image.save(staging, compress_level=PNG_COMPRESSION)


def save_images(images: Sequence[Image.Image], paths: Sequence[Path]) -> None:
    """`save_image` of each image to its path, encoded in parallel: Pillow's encoders release
    the GIL, so a many-core host writes a batch of candidates in about the time of one."""
    if len(images) != len(paths):
        raise ValueError(f"{len(images)} images for {len(paths)} paths")
    with ThreadPoolExecutor() as pool:
        list(pool.map(save_image, images, paths))


def write_text(text: str, path: Path) -> None:
    """Write text atomically."""
    with staged_file(path) as staging:
        staging.write_text(text, newline="")


def finite_json(value: object) -> object:
    """`value` with every non-finite float as the string "inf", "-inf" or "nan": JSON has no
    literal for them (Python writes `Infinity`, which strict parsers reject)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    return value


def write_json(data: object, path: Path) -> None:
    """Write strict JSON (indented, non-finite floats as strings) atomically."""
    write_text(json.dumps(finite_json(data), indent=2, default=str, allow_nan=False), path)


UMASK_LOCK = threading.Lock()
"""The umask can only be read by setting it: threads writing files (`save_images`) take turns,
or one could read the 0 another has just set, and set it for good."""


def umask_mode(directory: bool) -> int:
    """The permissions `open` or `mkdir` would give under the current umask: temporary files
    and folders are created owner-only, and keep that mode through the final rename."""
    with UMASK_LOCK:
        umask = os.umask(0)
        os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


FILE_BROWSER_METADATA = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
"""Files a file browser leaves in a folder it shows: never counted as the user's own."""


def check_replaceable(path: Path, owned: Collection[str]) -> None:
    """Refuse (`OutputError`) to replace `path` unless it is absent, or a folder holding
    nothing but the entries `owned` by its writer (an earlier output of the same kind): an
    output folder pointed at the wrong place must not delete the user's files."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder; choose another output folder")
    expected = FILE_BROWSER_METADATA.union(owned)
    foreign = sorted(entry.name for entry in path.iterdir() if entry.name not in expected)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise OutputError(
            f"{path}: already holds {shown}, which realfill did not write there; choose "
            "another output folder (it would be replaced)"
        )


@contextmanager
def staged_directory(path: Path, owned: Collection[str]) -> Iterator[Path]:
    """Yield an empty staging folder that replaces `path` only if the block succeeds.

    `path` may already exist only as `check_replaceable` allows (checked before the block
    runs). The swap renames the old folder aside, the new one in, then deletes the old: at no
    point is `path` missing an output that was there.
    """
    path = Path(path)
    check_replaceable(path, owned)
    make_parent(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    os.chmod(staging, umask_mode(directory=True))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not path.exists():
        staging.rename(path)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{path.name}-old-", dir=path.parent))
    path.rename(retired / path.name)
    staging.rename(path)
    shutil.rmtree(retired)


def check_writable_folder(folder: Path, owner: str) -> None:
    """Refuse (`OutputError` naming `owner`), creating nothing, a folder that outputs cannot be
    written in: it, or what lies above it, is a file, or it cannot be written for want of
    permission. Found at the first write, after training, it would cost the run."""
    folder = Path(folder).absolute()
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        made = "" if existing == folder else f" cannot be made: {existing}"
        raise OutputError(f"{owner}: {folder}{made} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{owner}: {folder} cannot be written: no permission in {existing}")


def read_text(path: Path, error: type[RealFillError]) -> str:
    """A UTF-8 text file's content, or `error` naming the file if it cannot be read (a folder,
    no permission) or is not UTF-8 (a binary file, another encoding)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as decode:
        byte = decode.object[decode.start]
        raise error(f"{path}: not UTF-8 text (byte {byte:#04x} at offset {decode.start})") from None
    except OSError as read:
        raise error(f"{path}: cannot be read ({read.strerror or read})") from None
