"""What the end-of-fit selection refuses before training."""

import os

import pytest

from realfill.errors import ConfigError, OutputError
from realfill.io import check_writable_folder
from realfill.modules.realfill import check_resolution


def test_a_sampling_resolution_the_denoiser_cannot_take_is_refused(tiny_base):
    """The tiny model's sides go in multiples of 4; at 4 its deepest GroupNorm sees one value
    per group and fails, so 8 is its smallest."""
    for resolution in (None, 8, 64):
        check_resolution("resolution", resolution, tiny_base)
    for resolution in (3, 4, 10):
        with pytest.raises(ConfigError, match=f"^resolution={resolution} must be a multiple of 4"):
            check_resolution("resolution", resolution, tiny_base)


def test_a_folder_outputs_cannot_be_written_in_is_refused_creating_nothing(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(OutputError, match=f"^owner: {afile} is not a folder$"):
        check_writable_folder(afile, "owner")
    below = afile / "sub" / "run"
    with pytest.raises(OutputError, match=f"^owner: {below} cannot be made: {afile} is not a"):
        check_writable_folder(below, "owner")
    check_writable_folder(tmp_path / "new" / "run", "owner")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_read_only_folder_is_refused(tmp_path, monkeypatch):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.access(read_only, os.W_OK):  # root writes anywhere: deny as a read-only mount does
        access = os.access
        monkeypatch.setattr(
            os, "access", lambda path, mode: path != read_only and access(path, mode)
        )
    with pytest.raises(OutputError, match="cannot be written: no permission in"):
        check_writable_folder(read_only / "run", "owner")
