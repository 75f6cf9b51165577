"""Streaming: events in from a broker, checked, scored by a registry alias, predictions out.

The package sits below ``serve`` and above ``registry`` and ``monitor`` (DESIGN.md). Its seams:
``backend.StreamBackend`` (Redis Streams today, NATS JetStream later), the ``Predictor`` factory
and ``ModelSource`` that the caller wires in (the CLI passes the server's fast path), and
``Sink`` for where predictions go. See docs/streaming.md for the delivery model.
"""
