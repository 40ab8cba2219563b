"""The audit log of admin writes: its table, `record_audit`, and the admin endpoint that lists it."""
