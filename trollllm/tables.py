"""Imports every feature's tables so `Base.metadata` is complete (for migrations and tests)."""

from trollllm.accounts.tables import ApiKey, User
from trollllm.alerts.tables import AlertDelivery, AlertSettings, AlertState, Notification
from trollllm.audit.tables import AuditEntry
from trollllm.betas.tables import AnthropicBetaRefusal
from trollllm.billing.tables import CreditLease, Hold, LedgerEntry, UsageWindowBucket
from trollllm.byok.tables import ProviderKey
from trollllm.db import Base
from trollllm.friendkeys.tables import FriendKey, FriendKeyModelLimit
from trollllm.keyrotation.tables import ServerKey
from trollllm.payments.tables import (
    InviteCode,
    Payment,
    PlanPrice,
    RedemptionBatch,
    RedemptionCode,
    Referral,
    StripeEvent,
)
from trollllm.plans.tables import Plan
from trollllm.pricing.tables import LlmModel
from trollllm.providers.tables import Provider
from trollllm.responses.tables import StoredResponse
from trollllm.upstream.tables import FactoryKey, Proxy
from trollllm.usage.rollup_tables import (
    HourlyLatency,
    HourlyModelUsage,
    HourlyUserUsage,
    RolledUpUnsettled,
    RollupState,
    SixHourlyUserUsage,
    UserUsageTotal,
)
from trollllm.usage.tables import RequestLog

__all__ = [
    "AlertDelivery",
    "AlertSettings",
    "AlertState",
    "AnthropicBetaRefusal",
    "ApiKey",
    "AuditEntry",
    "Base",
    "CreditLease",
    "FactoryKey",
    "FriendKey",
    "FriendKeyModelLimit",
    "Hold",
    "HourlyLatency",
    "HourlyModelUsage",
    "HourlyUserUsage",
    "InviteCode",
    "LedgerEntry",
    "LlmModel",
    "Notification",
    "Payment",
    "Plan",
    "PlanPrice",
    "Provider",
    "ProviderKey",
    "Proxy",
    "RedemptionBatch",
    "RedemptionCode",
    "Referral",
    "RequestLog",
    "RolledUpUnsettled",
    "RollupState",
    "ServerKey",
    "SixHourlyUserUsage",
    "StoredResponse",
    "StripeEvent",
    "UsageWindowBucket",
    "User",
    "UserUsageTotal",
]
