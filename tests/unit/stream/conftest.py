"""The stream fixtures (real Redis, a registered model): see ``tests.redis_streams``."""

from tests.redis_streams import churn_project, redis_client, stream_config

__all__ = ["churn_project", "redis_client", "stream_config"]
