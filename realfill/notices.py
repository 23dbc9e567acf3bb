"""Third-party notices that tell a RealFill user nothing, dropped where they are logged."""

import logging

IRRELEVANT_NOTICES = {
    # diffusers imports the CLIP and SigLIP image processors for pipelines realfill never runs;
    # without torchvision, transformers says it falls back to their PIL versions.
    "transformers.utils.import_utils": "requires torchvision (not installed); falling back",
    # Lightning advertises its cloud logger at the start of every fit.
    "lightning.pytorch.utilities.rank_zero": "Tip: For seamless cloud logging",
    "lightning.fabric.utilities.rank_zero": "Tip: For seamless cloud logging",
}
"""Logger name -> a phrase of the one notice dropped from it; its other messages pass."""


class DropNotice(logging.Filter):
    """Drops the records whose message contains `phrase`."""

    def __init__(self, phrase: str) -> None:
        super().__init__()
        self.phrase = phrase

    def filter(self, record: logging.LogRecord) -> bool:
        return self.phrase not in record.getMessage()


def drop_irrelevant_notices() -> None:
    """Attach a `DropNotice` for each of `IRRELEVANT_NOTICES` to its logger, once."""
    for name, phrase in IRRELEVANT_NOTICES.items():
        logger = logging.getLogger(name)
        if not any(getattr(f, "phrase", None) == phrase for f in logger.filters):
            logger.addFilter(DropNotice(phrase))
