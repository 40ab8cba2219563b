"""Request and response bodies of the account endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, StrictStr

from trollllm.accounts.tables import ApiKey, User
from trollllm.crypto import mask_key
from trollllm.money import Money

USERNAME_PATTERN = r"^[a-zA-Z0-9_.\-]{3,32}$"


class Credentials(BaseModel):
    """Username and password, for register and login."""

    username: StrictStr = Field(pattern=USERNAME_PATTERN, description="3–32 of [a-zA-Z0-9_.-]")
    password: StrictStr = Field(min_length=8, max_length=128)
    referralCode: StrictStr | None = Field(
        default=None,
        max_length=64,
        description="an invite code (`/register?ref=<code>`): makes its owner "
        "the new user's referrer (SPEC §10); an unknown code changes nothing",
    )


class Registration(Credentials):
    """A registration: credentials, and the invite that `TROLLLLM_REGISTRATION=invite` asks for."""

    referralCode: StrictStr | None = Field(default=None, max_length=256, description="a referral link's code")
    redemptionCode: StrictStr | None = Field(default=None, max_length=256, description="a redemption code")


class LoginCredentials(BaseModel):
    """Login accepts any string lengths so a wrong guess is a 401, not a hint about the rules."""

    username: StrictStr = Field(max_length=256)
    password: StrictStr = Field(max_length=1024)


class AccountView(BaseModel):
    """A user's plan, balances (USD) and token counters: shared by the user's own view and the admin list."""

    username: str
    role: str
    isActive: bool
    plan: str
    credits: float
    refCredits: float
    totalTokens: int | None
    tokensUsed: int
    totalInputTokens: int
    totalOutputTokens: int
    monthlyTokensUsed: int
    monthlyResetDate: datetime | None
    planStartDate: datetime | None
    planExpiresAt: datetime | None
    createdAt: datetime

    @staticmethod
    def fields_of(user: User) -> dict[str, Any]:
        """The account fields of a user row."""
        return {
            "username": user.username,
            "role": user.role,
            "isActive": user.is_active,
            "plan": user.plan,
            "credits": Money(user.credits_nanos).to_json(),
            "refCredits": Money(user.ref_credits_nanos).to_json(),
            "totalTokens": user.total_tokens,
            "tokensUsed": user.tokens_used,
            "totalInputTokens": user.total_input_tokens,
            "totalOutputTokens": user.total_output_tokens,
            "monthlyTokensUsed": user.monthly_tokens_used,
            "monthlyResetDate": user.monthly_reset_date,
            "planStartDate": user.plan_start_date,
            "planExpiresAt": user.plan_expires_at,
            "createdAt": user.created_at,
        }


class UserView(AccountView):
    """The `GET /api/user/me` shape (SPEC §7); the key is masked."""

    apiKey: str | None
    apiKeyCreatedAt: datetime | None

    @classmethod
    def of(cls, user: User, key: ApiKey | None) -> UserView:
        """The view of a user and their live key."""
        return cls(
            **cls.fields_of(user),
            apiKey=mask_key(key.last4) if key else None,
            apiKeyCreatedAt=key.created_at if key else None,
        )


class SessionView(BaseModel):
    """Register and login answer a JWT and the user."""

    token: str
    user: UserView


class RevealedKey(BaseModel):
    """The full API key (the one-time 'show' endpoint)."""

    apiKey: str


class RotatedKey(BaseModel):
    """A new key after rotation; the old one no longer works anywhere."""

    newApiKey: str
    oldKeyInvalidated: bool = True
    createdAt: datetime
