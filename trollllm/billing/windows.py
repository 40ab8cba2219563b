"""Usage windows reserved like money: a plan's rolling 5h / 24h / 7d / 30d caps on spend and tokens.

A user's admissions are counted in buckets of one hour (for the 5h and 24h windows) or one day (7d, 30d):
`usage_window_buckets` rows of settled (`used_*`) and held (`held_*`) spend and tokens, keyed by the start
of the hour or day the request was admitted in. A window is the sum of the buckets that started at or after
the start of the bucket holding `now − window`: it may count up to one bucket more than the exact rolling
window (never less), so it is never passed.

`reserve` runs inside `place_hold`'s transaction, after the user's row is locked (so every admission,
settlement and sweep of one user is serialized, on SQLite and PostgreSQL alike). The statement that writes
the hold row reads whether every window has room for it (`Reservation.room_sql`: the span flags whose
windows all do, kept as the hold's `window_spans`); when a span is missing `place_hold` raises `WindowFull`,
rolling the whole hold back, else one upsert adds the hold to the current bucket of every span. `settle`
moves a request's hold to its real figure in the same buckets.

Why this shape: on SQLite a statement's cost is mostly the temporary tables it opens, and `RETURNING` or an
`INSERT … SELECT` reading its own table each open one; reading the room inside the hold's own insert (one
row of VALUES) and adding to the buckets without `RETURNING` opens none beyond the hold's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from trollllm.storage.sqlprogram import Program, Query

HOUR_S = 3600
DAY_S = 86400
WINDOW_SECONDS = {"5h": 5 * HOUR_S, "24h": DAY_S, "7d": 7 * DAY_S, "30d": 30 * DAY_S}
"""The window names a plan may use, and their length."""
_SPAN_FLAGS = {HOUR_S: 1, DAY_S: 2}
_SPAN_NAMES = {HOUR_S: "hour", DAY_S: "day"}  # in parameter names
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


@dataclass(frozen=True, slots=True)
class Reservation:
    """A hold's place in a plan's windows: `room_sql`, the SQL expression of the span flags whose windows
    all have room for it (to write as the hold row's `window_spans`), `params` for it and for `in_buckets`,
    the upsert that adds the hold to the current bucket of each span once the room is known."""

    room_sql: str
    params: dict[str, int]
    in_buckets: Query


def reserve(
    user_id: int, windows: Sequence[WindowLimit], amount_nanos: int, tokens: int, now_s: int
) -> Reservation:
    """How to hold `amount_nanos` and `tokens` in `windows` at `now_s` (see `Reservation`)."""
    shape = _shape(tuple(windows))
    params = {"user_id": user_id, "amount": amount_nanos, "tokens": tokens, **shape.limits}
    for name, span_s in shape.starts:
        params[name] = bucket_start(now_s, span_s)
    for name, seconds, span_s in shape.firsts:
        params[name] = bucket_start(now_s - seconds, span_s)
    upsert_sql = shape.upsert_sql
    return Reservation(shape.room_sql, params, Query(upsert_sql, params))


def check_room(flags: int, with_room: int) -> None:
    """Raise `WindowFull` for a span of `flags` missing from `with_room` (the room read with the hold)."""
    missing = spans_of(flags & ~with_room)
    if missing:
        raise WindowFull(missing[0])


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


_TAGS = "abcd"  # parameter suffixes of the windows of one span (a plan has at most 4 windows)


@dataclass(frozen=True, slots=True)
class _Shape:
    """A plan's windows as SQL: the room expression and the bucket upsert, their fixed parameters (spans
    and limits) and those computed per request (the current bucket of each span, the oldest each counts)."""

    room_sql: str
    upsert_sql: str
    limits: dict[str, int]
    starts: tuple[tuple[str, int], ...]  # (parameter, span)
    firsts: tuple[tuple[str, int, int], ...]  # (parameter, window length, span)


def _by_span(windows: tuple[WindowLimit, ...]) -> list[tuple[int, list[WindowLimit]]]:
    groups: dict[int, list[WindowLimit]] = {}
    for window in windows:
        groups.setdefault(window.span_s, []).append(window)
    return sorted(groups.items())


@lru_cache(maxsize=256)
def _shape(windows: tuple[WindowLimit, ...]) -> _Shape:
    limits: dict[str, int] = {}
    starts: list[tuple[str, int]] = []
    firsts: list[tuple[str, int, int]] = []
    rooms, rows = [], []
    for span_s, group in _by_span(windows):
        span = _SPAN_NAMES[span_s]
        limits[f"span_{span}"] = span_s
        starts.append((f"start_{span}", span_s))
        # The buckets read: those of the longest window of this span.
        firsts.append((f"from_{span}", max(window.seconds for window in group), span_s))
        rooms.append(
            f"CASE WHEN ({_room(span, group, limits, firsts)}) THEN {_SPAN_FLAGS[span_s]:d} ELSE 0 END"
        )
        rows.append(
            f"(CAST(:user_id AS INTEGER), CAST(:span_{span} AS INTEGER), CAST(:start_{span} AS BIGINT), "
            "0, 0, CAST(:amount AS BIGINT), CAST(:tokens AS BIGINT))"
        )
    # Built from fixed fragments only; every value is a bound parameter.
    upsert_sql = (
        "INSERT INTO usage_window_buckets (user_id, span_s, start_s, used_nanos, used_tokens, held_nanos, "  # noqa: S608
        f"held_tokens) VALUES {', '.join(rows)} ON CONFLICT (user_id, span_s, start_s) DO UPDATE SET "
        "held_nanos = usage_window_buckets.held_nanos + excluded.held_nanos, "
        "held_tokens = usage_window_buckets.held_tokens + excluded.held_tokens"
    )
    return _Shape(" + ".join(rooms), upsert_sql, limits, tuple(starts), tuple(firsts))


def _room(
    span: str, group: list[WindowLimit], limits: dict[str, int], firsts: list[tuple[str, int, int]]
) -> str:
    """Whether every window of this span (one bucket span) has room for the hold: one read of its buckets."""
    conditions = []
    for window, tag in zip(group, _TAGS, strict=False):
        name = f"{span}_{tag}"
        nanos, tokens = "used_nanos + held_nanos", "used_tokens + held_tokens"
        if len(group) > 1:  # the buckets read are its longest window's: count this window's only
            firsts.append((f"from_{name}", window.seconds, window.span_s))
            nanos = f"CASE WHEN start_s >= :from_{name} THEN {nanos} END"
            tokens = f"CASE WHEN start_s >= :from_{name} THEN {tokens} END"
        if window.usd_limit_nanos is not None:
            limits[f"usd_{name}"] = window.usd_limit_nanos
            conditions.append(
                f"COALESCE(SUM({nanos}), 0) + CAST(:amount AS BIGINT) <= CAST(:usd_{name} AS BIGINT)"
            )
        if window.token_limit is not None:
            limits[f"tok_{name}"] = window.token_limit
            conditions.append(
                f"COALESCE(SUM({tokens}), 0) + CAST(:tokens AS BIGINT) <= CAST(:tok_{name} AS BIGINT)"
            )
    return (
        f"SELECT {' AND '.join(conditions) or '1 = 1'} FROM usage_window_buckets "  # noqa: S608
        f"WHERE user_id = :user_id AND span_s = :span_{span} AND start_s >= :from_{span}"
    )


SQL_VARIANTS = {
    "upsert_sql": [
        _shape((WindowLimit("5h", 10, None),)).upsert_sql,
        _shape(
            (WindowLimit("5h", 10, 5), WindowLimit("24h", None, 7), WindowLimit("7d", 9, None))
        ).upsert_sql,
    ]
}
"""Examples of the SQL built here, for the test that compiles every program's SQL against the schema."""

ROOM_EXAMPLES = [
    _shape((WindowLimit("5h", 10, None),)).room_sql,
    _shape((WindowLimit("5h", 10, 5), WindowLimit("24h", None, 7), WindowLimit("7d", 9, None))).room_sql,
]
"""Examples of `Reservation.room_sql`, for the examples of the hold's insert (`trollllm.billing.holds`)."""
