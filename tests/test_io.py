"""Atomic outputs: never half-written, never destroying a folder the user owns, usual modes."""

import os
import stat
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from realfill.errors import OutputError
from realfill.io import check_replaceable, save_image, save_images, staged_directory, umask_mode

OWNED = {"candidates", "scores.json"}


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def write_output(path, text: str) -> None:
    with staged_directory(path, OWNED) as staging:
        (staging / "candidates").mkdir()
        (staging / "scores.json").write_text(text)


def test_an_earlier_output_is_replaced_whole(tmp_path):
    out = tmp_path / "out"
    write_output(out, "first")
    (out / "candidates" / "stale.png").write_bytes(b"old")
    write_output(out, "second")
    assert (out / "scores.json").read_text() == "second"
    assert not (out / "candidates" / "stale.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging left


def test_a_folder_with_the_users_files_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "scores.json").write_text("ours")
    with pytest.raises(OutputError, match=r"mine: already holds notes.txt, which realfill"):
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
