"""Money in (SPEC §10): redemption codes, Stripe Checkout top-ups and plan purchase, referral rebates."""
