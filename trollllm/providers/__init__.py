"""Providers: upstream APIs as rows (name, wire format, API root), and their admin endpoints."""
