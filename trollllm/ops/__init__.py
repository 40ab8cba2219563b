"""Operating the gateway: health and readiness probes, and the Prometheus metrics."""
