"""The admin pages (SPEC §8): server-rendered over the same services as the operator JSON API."""
