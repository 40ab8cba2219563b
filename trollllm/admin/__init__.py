"""Admin: the operator JSON API and its audit log."""
