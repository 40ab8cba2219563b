"""BYOK: users' own provider keys, stored encrypted."""
