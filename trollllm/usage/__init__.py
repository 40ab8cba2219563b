"""Usage: request logs, history and metrics."""
