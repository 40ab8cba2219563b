"""Storage beneath the ORM: the hot path's SQL programs and the embedded database's WAL upkeep."""
