"""Registry: safe model bundles, versions, aliases and promotion gates."""
