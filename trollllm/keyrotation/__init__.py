"""Server secret rotation: every stored secret re-encrypted under a new secret (`trollllm rotate-secret`)."""
