"""What is alerted on, as pure functions of figures already stored: each condition in force has a key;
a key not yet announced is a crossing. Among the conditions of one measure (e.g. a user's 5h window in
USD at 80 % and at 100 %) a single pass announces only the highest new one, and marks the lower ones as
announced too, so a jump from 50 % to 100 % is one alert, not two."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from trollllm.money import Money

OUTBOX_KEY_PREFIX = "outbox:"
"""Keys of the per-instance settlement outbox alert: each instance sets and clears only its own."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A condition in force. `user_id` None: an operator alert, for every admin."""

    key: str
    type: str
    message: str
    data: dict[str, Any] = field(hash=False, compare=False)
    user_id: int | None = None
    measure: str = ""  # conditions sharing it are thresholds of one figure; `rank` orders them
    rank: int = 0


def crossings(active: Iterable[Condition], announced: set[str]) -> tuple[list[Condition], list[Condition]]:
    """Of the conditions in force, those to announce now and those only to mark announced (lower
    thresholds of a measure crossed at the same time as a higher one)."""
    best: dict[str, Condition] = {}
    silent: list[Condition] = []
    for condition in active:
        if condition.key in announced:
            continue
        group = condition.measure or condition.key
        current = best.get(group)
        if current is None or condition.rank > current.rank:
            if current is not None:
                silent.append(current)
            best[group] = condition
        else:
            silent.append(condition)
    return list(best.values()), silent


def percent_conditions(
    user_id: int,
    measure: str,
    used: int,
    limit: int,
    percents: Sequence[int],
    *,
    type_: str,
    describe: str,
    data: dict[str, Any],
) -> list[Condition]:
    """One condition per threshold reached: `used` ≥ percent × `limit` (limits of 0 never alert)."""
    if limit <= 0:
        return []
    reached = [p for p in percents if used * 100 >= p * limit]
    return [
        Condition(
            key=f"u{user_id}:{measure}:{percent}",
            type=type_,
            message=f"{describe} reached {percent}%",
            data={**data, "percent": percent},
            user_id=user_id,
            measure=f"u{user_id}:{measure}",
            rank=percent,
        )
        for percent in reached
    ]


def low_balance_condition(user_id: int, balance: Money, threshold: Money | None) -> list[Condition]:
    """Credits + refCredits below the user's threshold."""
    if threshold is None or balance >= threshold:
        return []
    return [
        Condition(
            key=f"u{user_id}:low_balance",
            type="low_balance",
            message=f"Your balance {balance.format_balance()} is below {threshold.format_balance()}",
            data={"balanceUsd": balance.to_json(), "thresholdUsd": threshold.to_json()},
            user_id=user_id,
        )
    ]


def plan_expiry_condition(
    user_id: int, plan: str, expires_at: datetime | None, days: int | None, now: datetime
) -> list[Condition]:
    """A plan expiring within `days` (keyed by the expiry, so a renewed plan is reminded again)."""
    if expires_at is None or days is None or not now < expires_at <= now + timedelta(days=days):
        return []
    return [
        Condition(
            key=f"u{user_id}:plan_expiry:{int(expires_at.timestamp())}",
            type="plan_expiring",
            message=f"Your {plan} plan expires on {expires_at.date().isoformat()}",
            data={"plan": plan, "planExpiresAt": expires_at.isoformat(), "days": days},
            user_id=user_id,
        )
    ]


def factory_key_disabled_condition(key_id: int, name: str, provider: str, error: str | None) -> Condition:
    """An operator alert: a factory key was disabled (the upstream refused it)."""
    return Condition(
        key=f"admin:factory_key_disabled:{key_id}",
        type="factory_key_disabled",
        message=f"Factory key {name} ({provider}) is disabled" + (f": {error}" if error else ""),
        data={"factoryKeyId": key_id, "name": name, "provider": provider, "lastError": error},
    )


def no_healthy_key_condition(provider: str) -> Condition:
    """An operator alert: no factory key of a provider is healthy (its requests answer 503)."""
    return Condition(
        key=f"admin:no_healthy_key:{provider}",
        type="no_healthy_key",
        message=f"No healthy factory key for provider {provider}",
        data={"provider": provider},
    )


def settlement_outbox_condition(instance_key: str, instance: str, depth: int) -> Condition:
    """An operator alert: settlements wait in an instance's outbox (the database refused them)."""
    return Condition(
        key=f"{OUTBOX_KEY_PREFIX}{instance_key}",
        type="settlement_outbox",
        message=f"{depth} settlement(s) wait in the outbox of {instance}; they are replayed when the "
        "database takes them",
        data={"instance": instance, "depth": depth},
    )
