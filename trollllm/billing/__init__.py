"""Billing: the append-only ledger, holds and settlement of charges."""
