"""A small SSE parser for tests (the format is simple; what matters is checking it strictly)."""

from __future__ import annotations

import json
from typing import Any


def parse_events(raw: str) -> list[tuple[str, Any]]:
    """Parse a complete SSE body into (event, decoded JSON data) pairs."""
    events = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        events.append((name, json.loads("\n".join(data))))
    return events
