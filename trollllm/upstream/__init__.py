"""Upstream: the operator's factory keys and outbound proxies."""
