"""The checkpoint folder is written only where every file is realfill's."""

import pytest

from realfill.callbacks.checkpoint import check_checkpoint_folder
from realfill.callbacks.run_config import RUN_CONFIG_HEADER
from realfill.errors import OutputError
from realfill.io import write_manifest


def test_a_checkpoint_folder_realfill_wrote_may_be_written_again(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "last.ckpt").write_bytes(b"weights")
    write_manifest(folder)
    check_checkpoint_folder(folder)
    check_checkpoint_folder(tmp_path / "absent")


def test_an_old_runs_checkpoints_without_a_manifest_pass_beside_its_config(tmp_path):
    """Run dirs of realfill before manifests: their config.yaml proves the folder."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "last.ckpt").write_bytes(b"weights")
    with pytest.raises(OutputError, match="last.ckpt: realfill did not write it"):
        check_checkpoint_folder(folder)
    (tmp_path / "config.yaml").write_text(RUN_CONFIG_HEADER + "trainer: {}\n")
    check_checkpoint_folder(folder)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt: realfill did not write it"):
        check_checkpoint_folder(folder)


def test_a_file_changed_or_added_after_the_manifest_is_refused(tmp_path):
    folder = tmp_path / "checkpoints"
    (folder / "old").mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"weights")
    write_manifest(folder)
    (folder / "old" / "theirs.ckpt").write_bytes(b"other tool")
    with pytest.raises(OutputError, match="old/theirs.ckpt: realfill did not write it"):
        check_checkpoint_folder(folder)
    (folder / "old" / "theirs.ckpt").unlink()
    (folder / "last.ckpt").write_bytes(b"replaced by a user")
    with pytest.raises(OutputError, match="changed since realfill wrote it"):
        check_checkpoint_folder(folder)
