"""Uniteller's merchant protocol: signatures and an HTTP client, free of Flask and DB."""
