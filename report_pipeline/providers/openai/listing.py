"""A model listing read into ids: OpenAI's `{"data": [{"id"}]}`, Ollama's `{"models": [{"name"}]}`, or a bare list."""

from __future__ import annotations

from ...errors import ProviderError

__all__ = ["model_ids"]


def model_ids(data: object) -> list[str]:
    """The sorted model ids; ProviderError when the endpoint lists none, ValueError (what came) when unreadable."""
    entries = _entries(data)
    if entries == []:
        raise ProviderError("the endpoint lists no models: check base_url, or pull or deploy a model")
    if not isinstance(entries, list):
        raise ValueError('the model list is not the JSON expected ({"data": [{"id": ...}]})')
    ids = {_model_id(entry) for entry in entries} - {""}
    if not ids:
        raise ValueError("the model list names no model ids")
    return sorted(ids)


def _entries(data: object) -> object:
    """The list in a model listing: OpenAI's `data`, Ollama's `models`; `{"object": "list"}` alone is empty."""
    if not isinstance(data, dict):
        return None
    if "data" in data:
        return data["data"]
    if "models" in data:
        return data["models"]
    return [] if data.get("object") == "list" else None


def _model_id(entry: object) -> str:
    """A model's id in a listing: OpenAI's `id`, or Ollama's `name`; '' when neither."""
    if isinstance(entry, dict):
        return str(entry.get("id") or entry.get("name") or "")
    return entry if isinstance(entry, str) else ""
