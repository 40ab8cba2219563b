"""Usage windows reserved like money: a plan's rolling 5h / 24h / 7d / 30d caps on spend and tokens.

A user's admissions are counted in buckets of one hour (for the 5h and 24h windows) or one day (7d, 30d):
`usage_window_buckets` rows of settled (`used_*`) and held (`held_*`) spend and tokens, keyed by the start
of the hour or day the request was admitted in. A window is the sum of the buckets that started at or after
the start of the bucket holding `now − window`: it may count up to one bucket more than the exact rolling
window (never less), so it is never passed.

`reserve` runs inside `place_hold`'s transaction, after the user's row is locked (so every admission,
settlement and sweep of one user is serialized, on SQLite and PostgreSQL alike): per bucket span, one
INSERT … ON CONFLICT that adds the hold to the current bucket only when every window of that span still
has room for it, and raises `WindowFull` otherwise (rolling the whole hold back). `settle` moves a
request's hold to its real figure in the same buckets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from trollllm.storage.sqlprogram import Program, Query

HOUR_S = 3600
DAY_S = 86400
WINDOW_SECONDS = {"5h": 5 * HOUR_S, "24h": DAY_S, "7d": 7 * DAY_S, "30d": 30 * DAY_S}
"""The window names a plan may use, and their length."""
_SPAN_FLAGS = {HOUR_S: 1, DAY_S: 2}
BUCKET_RETENTION_S = 32 * DAY_S
"""Buckets older than this are no part of any window (the longest is 30 days plus one bucket)."""


@dataclass(frozen=True, slots=True)
class WindowLimit:
    """One window of a plan: its name and its limits (None: not limited)."""

    name: str
    usd_limit_nanos: int | None
    token_limit: int | None

    @property
    def seconds(self) -> int:
        """The window's length."""
        return WINDOW_SECONDS[self.name]

    @property
    def span_s(self) -> int:
        """The length of the buckets it is summed over."""
        return HOUR_S if self.seconds <= DAY_S else DAY_S

    def first_bucket(self, now_s: int) -> int:
        """The start of the oldest bucket counted at `now_s`."""
        return bucket_start(now_s - self.seconds, self.span_s)

    def frees_at(self, bucket_start_s: int) -> int:
        """When the bucket starting at `bucket_start_s` stops counting in this window."""
        return bucket_start_s + self.seconds + self.span_s


class WindowFull(Exception):
    """A window of this span has no room for the hold (raised so the hold's transaction rolls back)."""

    def __init__(self, span_s: int) -> None:
        super().__init__(f"a usage window of {span_s}-second buckets is full")
        self.span_s = span_s


def bucket_start(at_s: int, span_s: int) -> int:
    """The start of the bucket holding `at_s` (UTC hours and days)."""
    return at_s - at_s % span_s


def span_flags(windows: Iterable[WindowLimit]) -> int:
    """The bucket spans these windows are counted in, as the flags a hold row keeps."""
    flags = 0
    for window in windows:
        flags |= _SPAN_FLAGS[window.span_s]
    return flags


def spans_of(flags: int) -> list[int]:
    """The bucket spans named by `flags`."""
    return [span for span, flag in _SPAN_FLAGS.items() if flags & flag]


def reserve(
    user_id: int, windows: Sequence[WindowLimit], amount_nanos: int, tokens: int, now_s: int
) -> Program[None]:
    """Hold `amount_nanos` and `tokens` in the current bucket of each span, or raise `WindowFull`."""
    for span_s, group in _by_span(tuple(windows)):
        params: dict[str, int] = {
            "user_id": user_id,
            "span_s": span_s,
            "start_s": bucket_start(now_s, span_s),
            "amount": amount_nanos,
            "tokens": tokens,
            "from_min": min(window.first_bucket(now_s) for window in group),
        }
        for index, window in enumerate(group):
            params[f"from_{_TAGS[index]}"] = window.first_bucket(now_s)
            if window.usd_limit_nanos is not None:
                params[f"usd_{_TAGS[index]}"] = window.usd_limit_nanos
            if window.token_limit is not None:
                params[f"tok_{_TAGS[index]}"] = window.token_limit
        sql = _reserve_sql(_shape(group))
        if not (yield Query(sql, params)):
            raise WindowFull(span_s)


_SETTLE_BUCKET = (
    "UPDATE usage_window_buckets SET held_nanos = held_nanos - :released, "
    "held_tokens = held_tokens - :released_tokens, used_nanos = used_nanos + :charge, "
    "used_tokens = used_tokens + :used_tokens "
    "WHERE user_id = :user_id AND span_s = :span_s AND start_s = :start_s"
)


def settle(
    user_id: int,
    flags: int,
    admitted_s: int,
    *,
    released_nanos: int,
    released_tokens: int,
    charge_nanos: int,
    used_tokens: int,
) -> Program[None]:
    """Release a hold from the buckets it was admitted into and count the request's real figures there.

    `released_*` are 0 when the sweeper already released the hold (a late settlement).
    """
    for span_s in spans_of(flags):
        row = {
            "released": released_nanos,
            "released_tokens": released_tokens,
            "charge": charge_nanos,
            "used_tokens": used_tokens,
            "user_id": user_id,
            "span_s": span_s,
            "start_s": bucket_start(admitted_s, span_s),
        }
        yield Query(_SETTLE_BUCKET, row)


_BUCKETS = (
    "SELECT start_s, used_nanos, used_tokens, held_nanos, held_tokens FROM usage_window_buckets "
    "WHERE user_id = :user_id AND span_s = :span_s AND start_s >= :from_s ORDER BY start_s"
)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket's figures."""

    start_s: int
    used_nanos: int
    used_tokens: int
    held_nanos: int
    held_tokens: int


def buckets(user_id: int, window: WindowLimit, now_s: int) -> Program[list[Bucket]]:
    """The buckets counted in `window` at `now_s`, oldest first."""
    rows = yield Query(
        _BUCKETS, {"user_id": user_id, "span_s": window.span_s, "from_s": window.first_bucket(now_s)}
    )
    return [Bucket(*(int(value) for value in row)) for row in rows]


_Shape = tuple[tuple[bool, bool], ...]
_TAGS = "abcd"  # parameter suffixes of the windows of one span (a plan has at most 4 windows)


def _shape(group: Sequence[WindowLimit]) -> _Shape:
    return tuple((window.usd_limit_nanos is not None, window.token_limit is not None) for window in group)


def _by_span(windows: tuple[WindowLimit, ...]) -> list[tuple[int, list[WindowLimit]]]:
    groups: dict[int, list[WindowLimit]] = {}
    for window in windows:
        groups.setdefault(window.span_s, []).append(window)
    return sorted(groups.items())


@cache
def _reserve_sql(shape: _Shape) -> str:
    """The conditional upsert of one span's bucket for windows of this shape (which limits each has)."""
    sums, conditions = [], []
    for index, (usd, tok) in enumerate(shape):
        tag = _TAGS[index]
        within = f"start_s >= :from_{tag}"
        sums.append(
            f"COALESCE(SUM(CASE WHEN {within} THEN used_nanos + held_nanos ELSE 0 END), 0) AS n{index}"
        )
        sums.append(
            f"COALESCE(SUM(CASE WHEN {within} THEN used_tokens + held_tokens ELSE 0 END), 0) AS t{index}"
        )
        if usd:
            conditions.append(f"n{index} + CAST(:amount AS BIGINT) <= CAST(:usd_{tag} AS BIGINT)")
        if tok:
            conditions.append(f"t{index} + CAST(:tokens AS BIGINT) <= CAST(:tok_{tag} AS BIGINT)")
    # Built from the fixed fragments above only; every value is a bound parameter.
    return (
        "INSERT INTO usage_window_buckets (user_id, span_s, start_s, used_nanos, used_tokens, held_nanos, "  # noqa: S608
        "held_tokens) SELECT :user_id, :span_s, CAST(:start_s AS BIGINT), 0, 0, CAST(:amount AS BIGINT), "
        f"CAST(:tokens AS BIGINT) FROM (SELECT {', '.join(sums)} FROM usage_window_buckets "
        "WHERE user_id = :user_id AND span_s = :span_s AND start_s >= :from_min) AS sums "
        f"WHERE {' AND '.join(conditions) or '1 = 1'} "
        "ON CONFLICT (user_id, span_s, start_s) DO UPDATE SET "
        "held_nanos = usage_window_buckets.held_nanos + excluded.held_nanos, "
        "held_tokens = usage_window_buckets.held_tokens + excluded.held_tokens RETURNING start_s"
    )


SQL_VARIANTS = {"sql": [_reserve_sql(((True, False),)), _reserve_sql(((True, True), (False, True)))]}
"""Examples of the SQL built here, for the test that compiles every program's SQL against the schema."""
