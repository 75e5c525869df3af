"""Model providers behind one interface (`Provider`)."""

from .base import ChatRequest, ChatResponse, Provider

__all__ = ["ChatRequest", "ChatResponse", "Provider"]
