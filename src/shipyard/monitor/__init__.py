"""Monitoring: drift, performance and concept drift, anomalies, alerts, retraining triggers."""
