"""The one exception hierarchy of the gateway.

Services raise these; `trollllm.http_errors` renders them for each surface (OpenAI shape, Anthropic shape,
plain JSON for `/api`). Each class fixes its HTTP status and its `type` string.
"""

from __future__ import annotations

from typing import Any


class ConfigurationError(Exception):
    """The configuration cannot start a gateway (raised at startup, never during a request)."""


class CommandError(Exception):
    """A command-line command cannot do what was asked (printed as `error: …`, exit status 2)."""


class GatewayError(Exception):
    """Base of every error that becomes an HTTP response."""

    status_code: int = 500
    error_type: str = "internal_error"
    default_message: str = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.message = message or self.default_message
        self.field = field
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.message)

    def body_fields(self) -> dict[str, Any]:
        """Fields rendered beside `type` and `message`."""
        fields: dict[str, Any] = dict(self.extra)
        if self.field is not None:
            fields["field"] = self.field
        return fields


class InvalidRequest(GatewayError):
    """The request is malformed or a field is invalid (the field is named)."""

    status_code = 400
    error_type = "invalid_request_error"
    default_message = "Invalid request"


class ValidationFailed(InvalidRequest):
    """A JSON body did not match the endpoint's schema."""

    status_code = 422


class PayloadTooLarge(InvalidRequest):
    """The body is larger than the configured limit."""

    status_code = 413
    default_message = "Request body is too large"


class IncompleteBody(InvalidRequest):
    """The client went away before its whole body arrived: what came is never taken for the body."""

    default_message = "The request body ended before its announced length"


class Unauthenticated(GatewayError):
    """No valid credentials for a dashboard API call."""

    status_code = 401
    error_type = "unauthorized"
    default_message = "Authentication required"


class InvalidApiKey(GatewayError):
    """No key, an unknown key or a rotated key."""

    status_code = 401
    error_type = "invalid_api_key"
    default_message = "Invalid API key"


class OwnerInactive(GatewayError):
    """The key's owner is deactivated."""

    status_code = 401
    error_type = "owner_inactive"
    default_message = "API key owner account is inactive"


class Forbidden(GatewayError):
    """Authenticated, but not allowed (e.g. a user on an admin route)."""

    status_code = 403
    error_type = "forbidden"
    default_message = "You do not have access to this resource"


class CsrfFailed(Forbidden):
    """A cookie-authenticated write without a matching CSRF token."""

    error_type = "csrf_failed"
    default_message = "Missing or invalid CSRF token"


class RegistrationClosed(Forbidden):
    """The operator closed registration (`TROLLLLM_REGISTRATION=closed`)."""

    error_type = "registration_closed"
    default_message = "Registration is closed on this gateway; ask its operator for an account"


class InviteRequired(Forbidden):
    """Registration needs an invite (`TROLLLLM_REGISTRATION=invite`) and none valid came with it."""

    error_type = "invite_required"
    default_message = "Registration needs an invite: a referral link or a redemption code"


class NotFound(GatewayError):
    """The addressed thing does not exist (or is not the caller's)."""

    status_code = 404
    error_type = "not_found"
    default_message = "Not found"


class Conflict(GatewayError):
    """The write conflicts with existing state (duplicate name, thing in use)."""

    status_code = 409
    error_type = "conflict"
    default_message = "Conflict"


class RateLimited(GatewayError):
    """Too many requests; `retry_after_s` becomes the `Retry-After` header."""

    status_code = 429
    error_type = "rate_limit_exceeded"
    default_message = "Rate limit exceeded"

    def __init__(self, message: str | None = None, *, retry_after_s: int = 1, **extra: Any) -> None:
        self.retry_after_s = max(1, int(retry_after_s))
        super().__init__(message, headers={"Retry-After": str(self.retry_after_s)}, **extra)


class TooManyLoginAttempts(RateLimited):
    """Login throttled after repeated failures."""

    error_type = "too_many_attempts"
    default_message = "Too many failed login attempts; try again later"


class MonthlyTokenLimitExceeded(RateLimited):
    """The owner's plan has used its monthly tokens; `Retry-After` is the time to the monthly reset."""

    error_type = "monthly_token_limit_exceeded"
    default_message = "Monthly token limit reached"


class UsageWindowExceeded(RateLimited):
    """A usage window of the owner's plan has no room for the request (`window`, `resetsAt` beside)."""

    error_type = "usage_window_exceeded"
    default_message = "Usage window limit reached"


class ModelNotInPlan(Forbidden):
    """The model is not among the models of the owner's plan."""

    error_type = "model_not_in_plan"
    default_message = "This model is not included in your plan"


class InsufficientCredits(GatewayError):
    """The balance cannot cover the request's maximum cost."""

    status_code = 402
    error_type = "insufficient_credits"
    default_message = "Insufficient credits"


class OwnerCreditsExhausted(InsufficientCredits):
    """A Friend Key's owner cannot cover the request (the owner's balance is never disclosed)."""

    error_type = "owner_credits_exhausted"
    default_message = "API key owner has insufficient credits"


class FriendKeyModelNotAllowed(GatewayError):
    """The model is not in the Friend Key's limits, is disabled there, or has a limit of 0."""

    status_code = 402
    error_type = "friend_key_model_not_allowed"
    default_message = "This model is not enabled for your Friend Key"


class FriendKeyModelLimitExceeded(GatewayError):
    """The Friend Key's cap on this model cannot cover the request (`model`, `limitUsd`, `usedUsd`)."""

    status_code = 402
    error_type = "friend_key_model_limit_exceeded"
    default_message = "Model spending limit exceeded"


class ServiceUnavailable(GatewayError):
    """A dependency (database, Redis, upstream) is not available."""

    status_code = 503
    error_type = "service_unavailable"
    default_message = "Service unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached now: nothing was held or sent upstream; retry after `Retry-After`."""

    error_type = "database_unavailable"
    default_message = "The service cannot reach its database right now; retry shortly"
    retry_after_s = 5

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        super().__init__(message, headers={"Retry-After": str(self.retry_after_s)}, **extra)


class ServerShutdown(ServiceUnavailable):
    """The gateway is shutting down and its graceful period is over: the request was cut (what a stream
    delivered is charged)."""

    error_type = "server_shutdown"
    default_message = "The gateway is shutting down; retry the request"


class FreeTierRestricted(Forbidden):
    """The key owner's plan has no API access."""

    error_type = "free_tier_restricted"
    default_message = "Your plan does not include API access; upgrade your plan to use the API"


class ModelNotFound(NotFound):
    """Unknown or disabled model."""

    error_type = "model_not_found"
    default_message = "The model does not exist or is not available"


class UpstreamUnavailable(ServiceUnavailable):
    """No healthy factory key could serve the request."""

    error_type = "upstream_unavailable"
    default_message = "No healthy upstream key is available"


class UpstreamError(GatewayError):
    """The upstream broke, or answered something unreadable, after the request was sent."""

    status_code = 502
    error_type = "upstream_error"
    default_message = "The upstream connection broke before the answer was complete"


class UpstreamUnreadable(UpstreamError):
    """The upstream answered 2xx with a body no client can read (undecodable, or a stream without events)."""

    error_type = "upstream_unreadable"
    default_message = "The upstream answered with a body that cannot be read"


class ProviderKeyRejected(GatewayError):
    """The provider refused the caller's own provider key (BYOK) with 401: the key is marked invalid."""

    status_code = 401
    error_type = "provider_key_invalid"
    default_message = "The provider refused your own provider key"


class UpstreamTimeout(GatewayError):
    """The request reached its total deadline (`TROLLLLM_UPSTREAM_TOTAL_TIMEOUT_S`) before the upstream's
    answer was complete. The request's own limit, not the factory key's fault: the key is not cooled."""

    status_code = 504
    error_type = "upstream_timeout"
    default_message = "The upstream did not complete its answer within the request deadline"


class MethodNotAllowed(GatewayError):
    """The path exists but not with this method."""

    status_code = 405
    error_type = "method_not_allowed"
    default_message = "Method not allowed"


class InsufficientBalance(InvalidRequest):
    """A deduction would take a balance below zero, or below what open holds have reserved."""

    error_type = "insufficient_balance"
    default_message = "The balance does not cover this deduction"


class BalanceLimitExceeded(InvalidRequest):
    """A grant would take a balance above the largest balance the gateway keeps ($1,000,000,000)."""

    error_type = "balance_limit_exceeded"
    default_message = "The balance would exceed $1000000000"


class InvalidCode(InvalidRequest):
    """A redemption code that is unknown, used, voided or expired, or not a code at all: one type for
    every case, so an answer never tells a guesser which codes exist."""

    error_type = "invalid_code"
    default_message = "This code is not valid"


class TooManyWrongCodes(RateLimited):
    """Redemption throttled after repeated wrong codes (per user and per address)."""

    error_type = "too_many_attempts"
    default_message = "Too many wrong codes; try again later"


class InvalidSignature(InvalidRequest):
    """A webhook whose signature is missing, forged, for another body, or too old."""

    error_type = "invalid_signature"
    default_message = "The webhook signature is not valid"


class PaymentProviderError(GatewayError):
    """The payment provider refused or could not be reached while creating a checkout."""

    status_code = 502
    error_type = "payment_provider_error"
    default_message = "The payment provider could not create the checkout"
