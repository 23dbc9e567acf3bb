"""Third-party notices dropped at their loggers; everything else they log still shows."""

import logging

import realfill  # noqa: F401  (importing realfill attaches the filters)
from realfill.notices import IRRELEVANT_NOTICES, DropNotice


def record(logger: str, message: str) -> logging.LogRecord:
    return logging.LogRecord(logger, logging.WARNING, __file__, 1, message, None, None)


def test_each_irrelevant_notice_is_dropped_and_its_loggers_other_messages_pass():
    for name, phrases in IRRELEVANT_NOTICES.items():
        logger = logging.getLogger(name)
        for phrase in phrases:
            assert not logger.filter(record(name, f"`CLIPImageProcessor` {phrase} to X"))
        assert logger.filter(record(name, "something a user should read"))


def test_a_gpu_in_use_is_still_said():
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert logger.filter(record(logger.name, "GPU available: True (cuda), used: True"))


def test_the_filters_are_attached_once_however_often_realfill_is_imported():
    realfill.drop_irrelevant_notices()
    for name, phrases in IRRELEVANT_NOTICES.items():
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, DropNotice) for f in filters) == len(phrases)
