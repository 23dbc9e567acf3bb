"""A broken torchvision is named, with what to do, before it takes every command down."""

import sys

import pytest

from realfill.environment import check_torchvision


def test_a_torchvision_built_for_another_torch_says_what_to_do(tmp_path, monkeypatch):
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        'raise RuntimeError("operator torchvision::nms does not exist")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    with pytest.raises(ImportError) as error:
        check_torchvision()
    message = str(error.value)
    assert "cannot load beside torch" in message and "torchvision::nms" in message
    assert "--index-url https://download.pytorch.org/whl/cpu" in message


def test_no_torchvision_is_fine(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    check_torchvision()
