"""Friend Keys: shareable keys billed to their owner with per-model USD caps."""
