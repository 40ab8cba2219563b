"""Login throttling that slows guessing down without letting anyone lock anyone else out (SPEC §9).

Failures are counted per (username, address) and per address, never per username alone: a guesser
rotating addresses cannot shut the real owner out, and the right password from an address that has not
failed is always accepted. Each count is a sliding window (`FallbackLimiter`, in memory or on Redis): an
address that used up its failures gets its next attempt as soon as its oldest failure leaves the window —
a slower pace, not a lock that further attempts would extend (a refused attempt records nothing).

An attempt is counted before the password is checked (one atomic hit on each key), so parallel guesses
cannot all pass a check made before any of them failed; a correct password gives the attempt back.
"""

from __future__ import annotations

from dataclasses import dataclass

from trollllm.errors import TooManyLoginAttempts
from trollllm.ratelimit.fallback import FallbackLimiter
from trollllm.settings import Settings


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """An admitted attempt, counted as a failure unless `succeeded` gives it back."""

    limits: FallbackLimiter
    pair_key: str
    address_key: str

    async def succeeded(self) -> None:
        """The password was right: this attempt was no failure, and the pair starts afresh.

        The address's own count only gets this attempt back: knowing one password (say, one's own) must not
        wipe the failures an address made guessing others.
        """
        await self.limits.reset(self.pair_key)
        await self.limits.release(self.address_key)


async def admit_login_attempt(
    limits: FallbackLimiter, settings: Settings, username: str, address: str
) -> LoginAttempt:
    """Count an attempt of `username` from `address`; 429 `too_many_attempts` once either count is used up."""
    window_s = settings.login_window_s
    pair_key = f"login:pair:{address}:{username.lower()}"
    address_key = f"login:addr:{address}"
    decision = await limits.hit(pair_key, settings.login_max_failures, window_s)
    if decision.allowed:
        by_address = await limits.hit(address_key, settings.login_address_max_failures, window_s)
        if not by_address.allowed:
            await limits.release(pair_key)
            decision = by_address
    if not decision.allowed:
        raise TooManyLoginAttempts(retry_after_s=int(decision.retry_after_s + 0.999))
    return LoginAttempt(limits, pair_key, address_key)
