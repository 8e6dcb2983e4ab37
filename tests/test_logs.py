"""Log lines that a library repeats through an outage are said once per interval."""

from __future__ import annotations

import io
import logging

from authsvc.logs import LIBRARY_LOGGERS_THROTTLED, RepeatedLines, configure_logging


def test_a_repeated_library_line_is_said_once_per_interval_with_the_count_held_back():
    now = [0.0]
    lines = RepeatedLines(10.0, clock=lambda: now[0])
    logger = logging.getLogger("tests.repeated")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.addFilter(lines)
    logger.propagate = False
    try:
        for second in range(12):  # once a second, as redis-py's topology refresh does
            now[0] = float(second)
            logger.error("Topology refresh failed, keeping the current one: node %d", second)
        logger.error("Another kind of line")
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(lines)
    assert stream.getvalue().splitlines() == [
        "Topology refresh failed, keeping the current one: node 0",
        "Topology refresh failed, keeping the current one: node 10"
        " (9 more like it since the last line)",
        "Another kind of line",
    ]


def test_logging_as_the_service_does_throttles_the_cluster_client():
    configure_logging("INFO")
    configure_logging("INFO")  # configured again (the CLI does): one filter, not two
    for name in LIBRARY_LOGGERS_THROTTLED:
        filters = logging.getLogger(name).filters
        assert [type(f) for f in filters] == [RepeatedLines]
