"""Third-party notices that tell a RealFill user nothing, dropped where they are logged."""

import logging

IRRELEVANT_NOTICES = {
    # diffusers imports the CLIP and SigLIP image processors for pipelines realfill never runs;
    # without torchvision, transformers says it falls back to their PIL versions.
    "transformers.utils.import_utils": ("requires torchvision (not installed); falling back",),
    # Lightning advertises its cloud logger and model registry at the start of every fit, says
    # the seed (the config holds it), that there is no TPU or HPU, and that max_steps was
    # reached (the progress bar shows it; a prompt-only baseline's fit of 0 steps said so too).
    "lightning.pytorch.utilities.rank_zero": (
        "Tip: For seamless cloud",
        "GPU available: False",  # on a machine without one; which GPU is used still shows
        "TPU available:",
        "HPU available:",
        "`Trainer.fit` stopped: `max_steps=",
        "Trainer already configured with model summary callbacks",  # ours, ParameterSummary
        "Automatic Mixed Precision (AMP)",  # the config's trainer.precision says it
    ),
    "lightning.fabric.utilities.rank_zero": ("Tip: For seamless cloud",),
    "lightning.fabric.utilities.seed": ("Seed set to",),
    # diffusers warns on every dtype cast of a model whose list of modules to keep in fp32 is
    # empty (SDXL's VAE, cast to fp32 for sampling): nothing is kept, nothing is inconsistent.
    "diffusers.models.modeling_utils": ("that should be kept in float32: []",),
}
"""Logger name -> phrases of the notices dropped from it; its other messages pass."""


class DropNotice(logging.Filter):
    """Drops the records whose message contains `phrase`."""

    def __init__(self, phrase: str) -> None:
        super().__init__()
        self.phrase = phrase

    def filter(self, record: logging.LogRecord) -> bool:
        return self.phrase not in record.getMessage()


def drop_irrelevant_notices() -> None:
    """Attach a `DropNotice` for each phrase of `IRRELEVANT_NOTICES` to its logger, once."""
    for name, phrases in IRRELEVANT_NOTICES.items():
        logger = logging.getLogger(name)
        for phrase in phrases:
            if not any(getattr(f, "phrase", None) == phrase for f in logger.filters):
                logger.addFilter(DropNotice(phrase))
