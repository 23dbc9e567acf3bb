"""Atomic outputs: never half-written, never destroying a folder the user owns, usual modes."""

import errno
import os
import stat
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from realfill import io
from realfill.errors import OutputError
from realfill.io import (
    MANIFEST_FILENAME,
    check_replaceable,
    make_staging_folder,
    output_lock,
    save_image,
    save_images,
    staged_directory,
    umask_mode,
    write_text,
)

OWNED = ("candidates/seed*.png", "scores.json")


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def write_output(path, text: str, seeds: tuple[int, ...] = (1,)) -> None:
    with staged_directory(path, OWNED) as staging:
        (staging / "candidates").mkdir()
        for seed in seeds:
            (staging / "candidates" / f"seed{seed:05d}.png").write_bytes(b"png")
        (staging / "scores.json").write_text(text)


def test_an_earlier_output_is_replaced_whole(tmp_path):
    out = tmp_path / "out"
    write_output(out, "first", seeds=(1, 2))
    write_output(out, "second", seeds=(3,))
    assert (out / "scores.json").read_text() == "second"
    assert sorted(p.name for p in (out / "candidates").iterdir()) == ["seed00003.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging, no lock left


def test_a_users_file_deep_inside_an_output_is_refused_and_left_alone(tmp_path):
    """Defect 1: the top-level names look like realfill's, a file below them is the user's."""
    out = tmp_path / "X"
    (out / "candidates").mkdir(parents=True)
    (out / "candidates" / "holiday.jpg").write_bytes(b"photo")
    with pytest.raises(OutputError, match=r"X/candidates/holiday.jpg: realfill did not write"):
        write_output(out, "new")
    assert (out / "candidates" / "holiday.jpg").read_bytes() == b"photo"
    write_output(tmp_path / "mine", "first")
    (tmp_path / "mine" / "candidates" / "holiday.jpg").write_bytes(b"photo")
    with pytest.raises(OutputError, match=r"candidates/holiday.jpg: realfill did not write"):
        write_output(tmp_path / "mine", "second")
    assert (tmp_path / "mine" / "candidates" / "holiday.jpg").exists()


def test_a_file_realfill_wrote_but_the_user_changed_is_refused(tmp_path):
    out = tmp_path / "out"
    write_output(out, "first")
    (out / "scores.json").write_text("my edited scores, longer")
    with pytest.raises(OutputError, match=r"scores.json \(changed since realfill wrote it\)"):
        write_output(out, "second")


def test_an_output_of_the_previous_version_is_replaced_if_it_holds_only_its_names(tmp_path):
    """No manifest: every file, at every depth, must match what the old version wrote."""
    out = tmp_path / "out"
    (out / "candidates").mkdir(parents=True)
    (out / "candidates" / "seed00001.png").write_bytes(b"old")
    (out / "scores.json").write_text("old")
    write_output(out, "new")
    assert (out / "scores.json").read_text() == "new"
    assert (out / MANIFEST_FILENAME).is_file()


def test_a_stale_staging_folder_of_a_killed_run_is_removed_and_a_lookalike_kept(
    tmp_path, monkeypatch
):
    """Defect 12: a kill mid-write leaves a marked staging folder; the next run removes it
    once its process is gone, and leaves a user's folder merely named like one."""
    out = tmp_path / "out"
    stale = make_staging_folder(out)
    (stale / "half.png").write_bytes(b"half")
    lookalike = tmp_path / f".out.realfill-staging-{os.getpid()}-mine"
    lookalike.mkdir()
    monkeypatch.setattr("realfill.io.process_alive", lambda pid: False)
    monkeypatch.setattr("realfill.io.os.getpid", lambda: 1)  # the next run is another process
    write_output(out, "new")
    assert not stale.exists()
    assert lookalike.is_dir()


def test_a_second_writer_of_the_same_output_is_refused_in_one_line(tmp_path, lock_held_elsewhere):
    """Defect 7: two commands writing one output; the second is refused, the first goes on."""
    out = tmp_path / "out"
    refused = pytest.raises(OutputError, match="out: another realfill command is writing it")
    with lock_held_elsewhere(out), refused:
        write_output(out, "second")
    write_output(out, "third")  # the lock went with its holder
    with output_lock(out), output_lock(out):  # re-entrant within a process
        write_output(out, "fourth")


def test_a_full_disk_is_one_line_naming_the_output_and_keeps_the_old_one(tmp_path, monkeypatch):
    """Defect 13: ENOSPC while writing is an `OutputError` naming the output."""
    out = tmp_path / "out"
    write_output(out, "first")

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pathlib.Path.write_text", no_space)
    with pytest.raises(OutputError, match=r"out: cannot be written \(No space left on device\)"):
        write_output(out, "second")
    with pytest.raises(OutputError, match=r"notes.md: cannot be written \(No space left"):
        write_text("x", tmp_path / "notes.md")
    monkeypatch.undo()
    assert (out / "scores.json").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_folder_with_the_users_files_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "scores.json").write_text("ours")
    with pytest.raises(OutputError, match=r"mine/notes.txt: realfill did not write it"):
        write_output(out, "new")
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "scores.json").read_text() == "ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_a_file_browsers_metadata_does_not_block_replacing(tmp_path):
    out = tmp_path / "out"
    write_output(out, "first")
    (out / ".DS_Store").write_bytes(b"finder")
    write_output(out, "second")
    assert (out / "scores.json").read_text() == "second"


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        check_replaceable(tmp_path / "out", OWNED)


def test_a_failed_write_leaves_the_earlier_output(tmp_path):
    out = tmp_path / "out"
    write_output(out, "first")
    with pytest.raises(RuntimeError), staged_directory(out, OWNED) as staging:
        (staging / "scores.json").write_text("half")
        raise RuntimeError("interrupted")
    assert (out / "scores.json").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_outputs_get_the_modes_the_umask_gives(tmp_path, umask_022):
    out = tmp_path / "out"
    write_output(out, "x")
    save_image(Image.new("RGB", (2, 2)), out / "image.png")
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "image.png").stat().st_mode) == 0o644


def test_save_images_writes_each_image_losslessly_to_its_own_path(tmp_path):
    generator = np.random.default_rng(0)
    images = [
        Image.fromarray(generator.integers(0, 256, (24, 32, 3), dtype=np.uint8)) for _ in range(5)
    ]
    paths = [tmp_path / f"seed{i:05d}.png" for i in range(5)]
    save_images(images, paths)
    for image, path in zip(images, paths, strict=True):
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(image))
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]  # no staging
    with pytest.raises(ValueError, match="2 images for 1 paths"):
        save_images(images[:2], paths[:1])


def test_threads_reading_the_umask_at_once_leave_it_as_it_was(umask_022):
    """`save_images` writes from several threads; reading the umask means setting it."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    seen = set()

    def read_modes() -> None:
        seen.update(umask_mode(directory=False) for _ in range(20_000))

    threads = [threading.Thread(target=read_modes) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert seen == {0o644}
    assert os.umask(0o022) == 0o022


def test_an_output_under_a_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(OutputError, match="afile/report.md: cannot be written"):
        save_image(Image.new("RGB", (2, 2)), tmp_path / "afile" / "report.md")
    with pytest.raises(OutputError, match="afile/out: cannot be written"):
        write_output(tmp_path / "afile" / "out", "x")
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("atomic", [True, False], ids=["exchanged", "renamed-aside"])
def test_a_replaced_output_is_swapped_in_and_the_old_one_removed(tmp_path, monkeypatch, atomic):
    """Defect 12: the swap left no folder at `path` for an instant; where the system can
    exchange two paths in one step it now does (the fallback renames the old one aside)."""
    calls = []
    real_exchange = io.exchange

    def exchange(first, second):
        calls.append((first, second))
        return real_exchange(first, second) if atomic else False

    monkeypatch.setattr(io, "exchange", exchange)
    out = tmp_path / "out"
    with io.staged_directory(out, {"a.txt"}) as staging:
        (staging / "a.txt").write_text("old")
    with io.staged_directory(out, {"a.txt"}) as staging:
        (staging / "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new"
    assert len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_two_folders_are_exchanged_in_one_step(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "one").write_text("1")
    if not io.exchange(first, second):
        pytest.skip("this system cannot exchange two paths in one step")
    assert (second / "one").read_text() == "1" and not any(first.iterdir())
