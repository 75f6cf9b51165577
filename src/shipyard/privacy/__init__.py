"""Personal data: PII detection, pseudonymization, masking, generalization, k-anonymity, erasure."""
