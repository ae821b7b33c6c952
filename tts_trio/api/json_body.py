"""Reading a request body with a size limit that holds without Content-Length (and decoding JSON)."""

from __future__ import annotations

import json
from typing import Any

from quart import request

from tts_trio.errors import BodyTooLarge, InvalidJson


async def read_body(limit: int) -> bytes:
    """Read the body, counting bytes as they arrive, and refuse it past ``limit``.

    Quart enforces ``MAX_CONTENT_LENGTH`` only when the client sends a
    Content-Length; a chunked body is counted here instead.
    """
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"the body is {request.content_length} bytes; the limit is {limit}")
    data = bytearray()
    async for chunk in request.body:
        data += chunk
        if len(data) > limit:
            raise BodyTooLarge(f"the body is over the limit of {limit} bytes")
    return bytes(data)


async def read_json_body(limit: int) -> Any:
    """Read (see :func:`read_body`) and decode a JSON body."""
    data = await read_body(limit)
    if not data.strip():
        raise InvalidJson('the body is empty; send a JSON object such as {"text": "Hello"}')
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise InvalidJson(f"the body is not valid JSON ({type(error).__name__})") from None
