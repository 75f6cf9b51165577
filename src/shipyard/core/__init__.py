"""Settings, errors, ids, clock and fault points: what every other package may use."""
