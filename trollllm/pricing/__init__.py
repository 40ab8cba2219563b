"""Pricing: model rows with their per-million-token prices."""
