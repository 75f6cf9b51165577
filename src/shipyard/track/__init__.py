"""The run-tracking API that users call."""
