"""Alerts (SPEC §11): thresholds a user chooses, each crossing noticed once by a periodic job off the
request path, shown as a notification and sent by email (SMTP) and signed webhooks through a durable
outbox; admins also hear of disabled factory keys, providers with no healthy key and settlements waiting in
an instance's outbox."""
