"""Small HTTP helpers shared by the simulator's endpoints: JSON bodies, errors, pages."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from report_pipeline.simulator._chat import error_payload

JSON_HEADERS = {"Content-Type": "application/json"}


def json_response(
    payload: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        headers={**JSON_HEADERS, **(headers or {})},
    )


def api_error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    type_: str | None = None,
) -> web.Response:
    """An OpenAI-shaped error response (the SDK raises the matching APIStatusError)."""
    payload = error_payload(status, message, type_=type_, code=code, param=param)
    return json_response(payload, status=status)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; ValueError says what is wrong."""
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise ValueError("We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise ValueError("The request body must be a JSON object.")
    return body


def query_limit(request: web.Request, *, default: int, maximum: int) -> int:
    """The ``limit`` query parameter, 1..maximum; ValueError names the bad value."""
    raw = request.query.get("limit")
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= maximum:
        raise ValueError(f"Invalid 'limit': {raw!r}; it must be between 1 and {maximum}.")
    return limit


def cursor_page(
    items: Sequence[Mapping[str, Any]], *, after: str | None, limit: int
) -> dict[str, Any]:
    """OpenAI's cursor page: the ``limit`` items after the one with id ``after``.

    An ``after`` that names no item gives an empty page, as a cursor past the
    end would; ``has_more`` tells the SDK whether to ask again.
    """
    start = 0
    if after is not None:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    page = list(items[start : start + limit])
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": start + limit < len(items),
    }
