"""Connectors: one small class per source kind, picked by URI scheme or format."""
