"""Data: connectors, harmonization, contracts, validation, cleaning, features, datasets."""
