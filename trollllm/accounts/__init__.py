"""Accounts: registration, login, JWT sessions and the user's own API key."""
