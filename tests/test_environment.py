"""A torchvision built for another torch imports all the same, or is named with what to do."""

import os
import subprocess
import sys
from pathlib import Path

from realfill.environment import check_torchvision

REPO = Path(__file__).resolve().parents[1]


def run_with_torchvision(tmp_path: Path, init: str, code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter that finds a fake torchvision whose C++ library (a
    file that is no shared library) cannot load and whose __init__.py is `init`."""
    package = tmp_path / "torchvision"
    package.mkdir()
    (package / "__init__.py").write_text(init)
    (package / "_C.so").write_bytes(b"not a shared library")
    path = os.pathsep.join([str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pypi_torchvision_beside_a_cpu_torch_imports_and_keeps_its_ops_error(tmp_path):
    # What PyPI's torchvision does at import when its _C cannot load: register shape functions
    # for nms and qnms, which fails unless the operators are declared.
    init = (
        "import torch\n"
        "for name in ('nms', 'qnms'):\n"
        "    torch.library.register_fake(f'torchvision::{name}')(lambda *args: args[0])\n"
        "def nms(*args):\n"
        '    raise RuntimeError("Couldn\'t load custom C++ ops")\n'
    )
    code = "import realfill, torchvision\ntorchvision.nms()"
    result = run_with_torchvision(tmp_path, init, code)
    assert "does not exist" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "RuntimeError: Couldn't load custom C++ ops"


def test_a_torchvision_that_still_cannot_load_says_what_to_do(tmp_path):
    result = run_with_torchvision(
        tmp_path, "raise RuntimeError('undefined symbol: _ZN3c10')\n", "import realfill"
    )
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError: torchvision ")  # "?" or the installed version
    assert "is installed but cannot load beside torch" in message
    assert "undefined symbol" in message and 'pip install -e ".[eval]"' in message


def test_no_torchvision_is_fine(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    check_torchvision()
