"""Serving: HTTP and batch inference, traffic policies, prediction log, load tests."""
