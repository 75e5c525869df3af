"""The one token estimate, for whatever has to count tokens before (or without) a server's count.

OpenAI's rule of thumb, and the simulator's: a token is about four characters, and each
message costs a few more for its role and separators. Used for the tokens-per-minute
limiter and the budget's worst case before a call is sent, for an answer whose server sends
no `usage`, for the offline provider's counts, for `--dry-run`'s prices, and for the cost a
batch wave is checked against before it is submitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .base import ChatRequest

__all__ = ["CHARS_PER_TOKEN", "TOKENS_PER_MESSAGE", "call_tokens", "prompt_tokens", "prompt_tokens_at_most",
           "text_tokens"]

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def text_tokens(text: str) -> int:
    """A text's tokens: its characters / 4, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def prompt_tokens(messages: Iterable[Mapping[str, object]]) -> int:
    """A prompt's tokens: each message's text plus its role and separators."""
    return sum(text_tokens(str(message.get("content") or "")) + TOKENS_PER_MESSAGE for message in messages)


def call_tokens(request: ChatRequest) -> int:
    """What one call may use at most: its prompt plus `max_tokens`.

    OpenAI reserves the completion's maximum against a tokens-per-minute limit when the
    call arrives, not what the model ends up writing; the budget reserves it too.
    """
    return prompt_tokens(request.messages) + request.max_tokens


def prompt_tokens_at_most(messages: Iterable[Mapping[str, object]]) -> int:
    """A prompt's tokens at most, for the budget's worst case: one a byte (a byte-level BPE
    tokenizer never makes more tokens than the text has bytes), plus each message's overhead."""
    return sum(len(str(message.get("content") or "").encode("utf-8")) + TOKENS_PER_MESSAGE for message in messages)
