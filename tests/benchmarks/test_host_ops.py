"""The operator count runs on the tiny model, so it cannot rot."""

import pytest

pytestmark = pytest.mark.slow  # benchmark smoke tests: python -m pytest -m slow


def test_operators_are_counted_per_component_and_for_the_backward_pass(load_script):
    host_ops = load_script("host_ops")
    counts = host_ops.main(["--scale", "tiny", "--resolution", "32"])
    for label in ("forward unet", "forward text_encoder", "forward vae", "backward"):
        assert counts[label] > 0, label
    # the backward pass of the adapted denoiser and text encoder outnumbers the VAE's forward
    assert counts["backward"] > counts["forward vae"]
