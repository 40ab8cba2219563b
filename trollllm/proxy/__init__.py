"""The proxy hot path: OpenAI and Anthropic endpoints, gate, upstream relay and settlement."""
