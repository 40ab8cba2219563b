"""`anthropic-beta` values as data: which the gateway refuses, which it forwarded lately (SPEC §6)."""
