"""What a call on a Redis client may raise, without loading redis-py in a process that has no Redis."""

from __future__ import annotations


def redis_failures(client: object | None, *more: type[Exception]) -> tuple[type[Exception], ...]:
    """redis-py's `RedisError` (when there is a `client`) and `more`: the exceptions to catch around a call.

    redis-py is imported here, and only for a client: the embedded shape never loads it (~7 MB resident).
    """
    if client is None:
        return more
    from redis.exceptions import RedisError

    return (RedisError, *more)
