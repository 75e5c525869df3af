"""Any OpenAI-compatible endpoint through the official `openai` SDK.

    provider.py    `OpenAIProvider`: retries, the shared throttle, answers and errors
    transport.py   the httpx2 connection pool and the whole-exchange deadline
"""
