"""The event loop a process runs on (EVENT_LOOP). Kept apart from the server so that the
benchmark's bare ceiling can run on the same loop without importing the service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory(name: str | None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's own."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name is None:
            return None
        from authsvc.settings import ConfigError  # only here: the ceiling stays light

        raise ConfigError("EVENT_LOOP=uvloop needs uvloop: pip install uvloop") from None
    return uvloop.new_event_loop
