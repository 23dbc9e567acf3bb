"""What the commands share: a config file that cannot be a config is one line, exit 2."""

import os

import pytest

from realfill.fit import main as fit
from realfill.sample import main as sample


def binary(path):
    path.write_bytes(b"\x83\x00\xff binary")
    return path


def latin1(path):
    path.write_bytes("trainer:\n  default_root_dir: caf\xe9\n".encode("latin-1"))
    return path


def fifo(path):
    os.mkfifo(path)
    return path


def folder(path):
    path.mkdir()
    return path


@pytest.mark.parametrize("command", [fit, sample], ids=["fit", "sample"])
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (binary, "not UTF-8 text (byte 0x83 at offset 0)"),
        (latin1, "not UTF-8 text (byte 0xe9 at offset 32)"),
        (fifo, "the config is not a regular file"),
        (folder, "the config is not a regular file"),
    ],
)
@pytest.mark.parametrize("spelling", ["--config {}", "--config={}", "-c {}"])
def test_a_config_that_is_not_a_text_file_is_one_line_and_exit_2(
    tmp_path, capsys, command, make, expected, spelling
):
    path = make(tmp_path / "config.yaml")
    with pytest.raises(SystemExit) as exit_info:
        command(spelling.format(path).split())
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == f"realfill: error: {path}: {expected}"
