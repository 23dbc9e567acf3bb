"""Files in and out: atomic output (a reader never sees a half-written image or folder),
output folders checked before the work that fills them, text read with one-line errors."""

import ctypes
import errno
import fcntl
import json
import math
import os
import re
import shutil
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from fnmatch import fnmatchcase
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


DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The `errno`s of a write refused for want of space: a full disk, a quota reached."""


class DiskFullError(OutputError):
    """An output could not be written for want of space; the earlier one is kept."""


def raise_if_disk_full(error: BaseException, path: Path) -> None:
    """Raise `DiskFullError` naming `path` if `error` is a write refused for want of space
    (an `OSError`, or a `DiskFullError` naming a file inside `path`'s staging folder)."""
    if isinstance(error, DiskFullError) or (
        isinstance(error, OSError) and error.errno in DISK_FULL
    ):
        reason = os.strerror(errno.ENOSPC)
        message = f"{path}: cannot be written ({reason}); the earlier output is kept"
        raise DiskFullError(message) from None


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
    except BaseException as error:
        Path(staging).unlink(missing_ok=True)
        raise_if_disk_full(error, path)
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
MANIFEST_FILENAME = ".realfill-manifest.json"
"""Written last into every folder realfill replaces as a whole: every file it wrote there, by
path relative to the folder, with its size. The proof that the folder is realfill's."""
MANIFEST_WRITER = "realfill"
"""The manifest's `writer`: tells it from a file of the same name written by something else."""
STAGING_MARKER = ".realfill-staging"
"""In a staging or retired folder while realfill writes or swaps it: the host and process id
that made it, so that a later run removes it only once that process is gone."""
STAGING_NAME = re.compile(r"\.(?P<name>.+)\.realfill-(?:staging|retired)-(?P<pid>\d+)-[^/]*")
"""The name of a staging or retired folder, beside the output it is for (see
`staging_prefix`)."""
LOCK_SUFFIX = ".realfill-lock"
"""Beside an output while a command writes it (see `output_lock`)."""
LegacyProof = Callable[[Path], bool]
"""A test an output folder without a manifest must pass to be replaced (see `foreign_file`)."""
ANY_BELOW = "**"
"""As the last part of an owned pattern: anything at any depth below (a model's sub-folder)."""


def relative_files(folder: Path) -> dict[str, os.stat_result]:
    """Every entry under `folder` that is not a folder (files, links, FIFOs), at any depth,
    by its POSIX path relative to `folder`, with its `lstat`. Links are not followed."""
    found = {}
    for root, folders, files in os.walk(folder):
        linked = [name for name in folders if os.path.islink(os.path.join(root, name))]
        folders[:] = sorted(set(folders) - set(linked))
        for name in sorted([*files, *linked]):
            path = Path(root, name)
            found[path.relative_to(folder).as_posix()] = path.lstat()
    return found


def write_manifest(folder: Path) -> None:
    """Record, in `folder`'s manifest, every regular file realfill has written there."""
    files = {
        relative: info.st_size
        for relative, info in relative_files(folder).items()
        if stat.S_ISREG(info.st_mode) and relative != MANIFEST_FILENAME
    }
    write_json({"writer": MANIFEST_WRITER, "files": files}, Path(folder) / MANIFEST_FILENAME)


def read_manifest(folder: Path) -> dict[str, int] | None:
    """The files `folder`'s manifest lists, with their sizes; None without a (well-formed)
    manifest: an output of realfill before manifests, or not realfill's."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("writer") != MANIFEST_WRITER:
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(n, int) for n in files.values()):
        return None
    return files


def matches_owned(relative: str, pattern: str) -> bool:
    """Whether a relative path is one a `pattern` of `check_replaceable` owns: part by part
    (`fnmatch`, `*` never crosses a `/`), a final `**` matching anything below."""
    parts, wanted = relative.split("/"), pattern.split("/")
    if wanted[-1] == ANY_BELOW:
        wanted = wanted[:-1]
        parts = parts[: len(wanted)] if len(parts) > len(wanted) else parts + [""]
    return len(parts) == len(wanted) and all(map(fnmatchcase, parts, wanted))


def foreign_file(
    folder: Path, owned: Collection[str], legacy: LegacyProof | None = None
) -> str | None:
    """The first file under `folder`, at any depth, that realfill cannot prove it wrote, and
    why; None if every file is its own. With a manifest, a file is realfill's if the manifest
    lists it at its size (and it is a regular file); without one (an output of an earlier
    version), if its path matches one of the `owned` patterns and the folder passes the
    `legacy` test, when given (names alone being too weak a proof)."""
    manifest = read_manifest(folder)
    proven = manifest is not None or legacy is None or legacy(Path(folder))
    for relative, info in relative_files(folder).items():
        if Path(relative).name in FILE_BROWSER_METADATA or relative == MANIFEST_FILENAME:
            continue
        if manifest is None:
            if not proven or not any(matches_owned(relative, pattern) for pattern in owned):
                return relative
        elif not stat.S_ISREG(info.st_mode) or manifest.get(relative) != info.st_size:
            changed = relative in manifest and stat.S_ISREG(info.st_mode)
            return relative + (" (changed since realfill wrote it)" if changed else "")
    return None


def check_replaceable(
    path: Path,
    owned: Collection[str],
    legacy: LegacyProof | None = None,
    advice: str | None = None,
) -> None:
    """Refuse (`OutputError` naming the file) to replace `path` unless it is absent, or a
    folder holding nothing, at any depth, but files realfill wrote there (see `foreign_file`;
    `owned` are the patterns of what an output of this kind held before manifests): an output
    folder pointed at the wrong place must not delete the user's files. `advice` ends the
    message (default: choose another output folder)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder; choose another output folder")
    foreign = foreign_file(path, owned, legacy)
    if foreign is not None:
        advice = advice or f"choose another output folder ({path} would be replaced)"
        raise OutputError(f"{path / foreign}: realfill did not write it; {advice}")


def staging_prefix(path: Path, kind: str) -> str:
    """The name prefix of a staging (`kind` "staging") or retired ("retired") folder for
    `path`: hidden, beside it, naming it and this process (see `STAGING_NAME`)."""
    return f".{Path(path).name}.realfill-{kind}-{os.getpid()}-"


def make_staging_folder(path: Path, kind: str = "staging") -> Path:
    """A new, empty folder beside `path`, unique to this call, marked as this process's."""
    make_parent(path)
    folder = None
    try:
        folder = Path(tempfile.mkdtemp(prefix=staging_prefix(path, kind), dir=Path(path).parent))
        os.chmod(folder, umask_mode(directory=True))
        marker = {"host": socket.gethostname(), "pid": os.getpid()}
        (folder / STAGING_MARKER).write_text(json.dumps(marker), encoding="utf-8")
    except OSError as error:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise_if_disk_full(error, path)
        raise OutputError(f"{path}: cannot be written ({error.strerror or error})") from None
    return folder


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_staging(folder: Path) -> bool:
    """Whether `folder` is a staging or retired folder realfill made (its marker says so) in a
    process of this host that is gone: killed while it wrote."""
    try:
        marker = json.loads((folder / STAGING_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("host") != socket.gethostname():
        return False
    pid = marker.get("pid")
    return isinstance(pid, int) and pid != os.getpid() and not process_alive(pid)


def remove_stale_staging(path: Path) -> None:
    """Remove the staging and retired folders that runs killed while writing `path` left
    beside it, saying so on stderr; folders merely named like them are left alone."""
    parent = Path(path).parent
    if not parent.is_dir():
        return
    for entry in sorted(parent.iterdir()):
        match = STAGING_NAME.fullmatch(entry.name)
        if match and match["name"] == Path(path).name and stale_staging(entry):
            shutil.rmtree(entry, ignore_errors=True)
            print(f"realfill: removed {entry}, left by a run killed while writing", file=sys.stderr)


HELD_LOCKS: dict[Path, tuple[int, int]] = {}
"""The output locks this process holds: lock file to (its descriptor, how many holders)."""


def lock_path(path: Path) -> Path:
    """The lock file of an output: beside it, hidden."""
    path = Path(path).absolute()
    return path.parent / f".{path.name}{LOCK_SUFFIX}"


def acquire_lock(lock: Path, path: Path) -> int:
    """A descriptor of `lock`, locked exclusively, or `OutputError` if another process holds
    it. A lock file unlinked by its last holder between our open and lock is opened again."""
    while True:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise OutputError(
                f"{path}: another realfill command is writing it now; wait for it to end or "
                "choose another output folder"
            ) from None
        try:
            same = os.fstat(descriptor).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return descriptor
        os.close(descriptor)


@contextmanager
def output_lock(path: Path) -> Iterator[None]:
    """Hold `path`'s lock while the block writes it: a second command writing the same output
    meanwhile is refused in one line (`OutputError`). Re-entrant within a process; the lock
    file goes when the last holder is done."""
    make_parent(Path(path).absolute())
    lock = lock_path(path)
    descriptor, holders = HELD_LOCKS.get(lock) or (acquire_lock(lock, path), 0)
    HELD_LOCKS[lock] = (descriptor, holders + 1)
    try:
        yield
    finally:
        descriptor, holders = HELD_LOCKS.pop(lock)
        if holders > 1:
            HELD_LOCKS[lock] = (descriptor, holders - 1)
        else:
            lock.unlink(missing_ok=True)
            os.close(descriptor)


RENAME_EXCHANGE = 2
"""renameat2's flag (Linux >= 3.15) that swaps two paths in one step."""
AT_FDCWD = -100
"""renameat2's "relative to the working directory" folder descriptor."""


def exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux's renameat2 with RENAME_EXCHANGE), so
    that no reader ever finds either missing; False where the system or file system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    names = [os.fsencode(os.path.abspath(path)) for path in (first, second)]
    if renameat2(AT_FDCWD, names[0], AT_FDCWD, names[1], RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(second))


def swap_in(staging: Path, path: Path) -> None:
    """Put the finished `staging` folder in `path`'s place: exchanged with the old folder in
    one step where the system can (then the old deleted from the staging name), else the old
    renamed aside (into a marked retired folder), the new one in, and the old deleted."""
    (staging / STAGING_MARKER).unlink()
    write_manifest(staging)
    if not path.exists():
        staging.rename(path)
        return
    if exchange(staging, path):
        shutil.rmtree(staging)
        return
    retired = make_staging_folder(path, "retired")
    path.rename(retired / path.name)
    staging.rename(path)
    shutil.rmtree(retired)


@contextmanager
def staged_directory(
    path: Path, owned: Collection[str], legacy: LegacyProof | None = None
) -> Iterator[Path]:
    """Yield an empty staging folder that replaces `path` only if the block succeeds.

    `path` may already exist only as `check_replaceable` allows (checked before the block
    runs, with `owned` and `legacy`). The output is locked meanwhile (`output_lock`), stale
    staging folders of killed runs are removed first, and the new folder gets a manifest of
    what the block wrote. The swap exchanges the two folders in one step (`swap_in`; where the
    system cannot, `path` is missing for an instant between two renames), then deletes the old.
    """
    path = Path(path)
    with output_lock(path):
        check_replaceable(path, owned, legacy)
        remove_stale_staging(path)
        staging = make_staging_folder(path)
        try:
            yield staging
            swap_in(staging, path)
        except BaseException as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise_if_disk_full(error, path)
            raise


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
