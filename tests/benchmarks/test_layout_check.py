"""The layout check runs on the tiny model, so it cannot rot."""

import pytest

pytestmark = pytest.mark.slow  # benchmark smoke tests: python -m pytest -m slow


def test_layout_decisions_are_reported_for_training_and_inference_graphs(load_script, capsys):
    decided = load_script("layout_check").main(["--scale", "tiny", "--latent_size", "8"])
    assert set(decided) == {
        "unet forward",
        "unet backward",
        "unet inference",
        "vae encoder inference",
    }
    assert all(isinstance(value, bool) for value in decided.values())
    printed = capsys.readouterr().out
    assert all(f"{graph}: " in printed for graph in decided)
