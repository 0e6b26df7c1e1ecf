"""Uniteller's merchant protocol: signatures and an HTTP client; no Flask, no DB."""
