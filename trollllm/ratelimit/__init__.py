"""Rate limits, in one place: the sliding-window limiters (`limiter`) and the shared-with-fallback decision
every limit of the gateway goes through (`fallback`): RPM, login attempts, key reveals, registrations."""
