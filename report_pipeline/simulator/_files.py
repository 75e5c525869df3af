"""The Files API's storage: uploaded batch inputs and the batch result files.

Files live in memory for the simulator's life (``/_sim/reset`` zeroes
counters, not storage): a test may read a batch's results after resetting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from aiohttp import BodyPartReader, web

#: Purposes OpenAI accepts on upload (``batch_output`` is written, never uploaded).
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# OpenAI keeps batch input and output files 30 days unless told otherwise.
_BATCH_FILE_TTL_S = 30 * 24 * 3600
_EXPIRING_PURPOSES = ("batch", "batch_output")
_CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class StoredFile:
    """One file and its metadata, rendered as OpenAI's ``FileObject``."""

    id: str
    filename: str
    purpose: str
    created_at: int
    data: bytes

    def as_dict(self) -> dict[str, Any]:
        expires_at = (
            self.created_at + _BATCH_FILE_TTL_S if self.purpose in _EXPIRING_PURPOSES else None
        )
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": expires_at,
            "status_details": None,
        }


class FileStore:
    """Files by id, in upload order. Event-loop only, like the rest of the server."""

    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}
        self._serial = 0

    def add(self, data: bytes, *, filename: str, purpose: str, created_at: int) -> StoredFile:
        self._serial += 1
        stored = StoredFile(f"file-sim{self._serial:010d}", filename, purpose, created_at, data)
        self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def delete(self, file_id: str) -> bool:
        return self._files.pop(file_id, None) is not None

    def listed(self, purpose: str | None = None) -> list[StoredFile]:
        """Files with ``purpose`` (all if None), newest first, as OpenAI lists them."""
        return [
            stored
            for stored in reversed(self._files.values())
            if purpose is None or stored.purpose == purpose
        ]


class Upload(NamedTuple):
    """The parts of a ``POST /v1/files`` form the simulator reads.

    ``data`` is None when no file part came, and holds only the first
    ``max_bytes`` when the file was larger (``size`` is its full size).
    """

    filename: str | None
    purpose: str | None
    data: bytes | None
    size: int


async def read_upload(request: web.Request, *, max_bytes: int) -> Upload:
    """Stream a multipart upload, keeping at most ``max_bytes`` of the file.

    Streaming, rather than ``request.post()``, so an oversized file is counted
    and refused with OpenAI's 400 instead of aiohttp's 413 for the whole body,
    and never held in memory past the limit. ValueError if not multipart.
    """
    if not request.content_type.startswith("multipart/"):
        raise ValueError("Uploads must be multipart/form-data with 'file' and 'purpose' fields.")
    reader = await request.multipart()
    filename = purpose = None
    chunks: list[bytes] = []
    size = 0
    has_file = False
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            await part.release()
            continue
        if part.name == "purpose":
            purpose = await part.text()
        elif part.name == "file":
            has_file = True
            filename = part.filename
            while chunk := await part.read_chunk(_CHUNK_BYTES):
                size += len(chunk)
                if size <= max_bytes:
                    chunks.append(chunk)
        else:
            await part.release()
    return Upload(filename, purpose, b"".join(chunks) if has_file else None, size)
