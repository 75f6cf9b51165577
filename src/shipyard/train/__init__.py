"""Training and validation: splits, tuning, imbalance, evaluation, reference profiles."""
