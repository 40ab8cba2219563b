"""TrollLLM: a self-hostable, multi-tenant LLM API gateway with exact prepaid billing."""

__version__ = "0.1.0"
