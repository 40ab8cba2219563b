"""The log scan of the whole test run (tests/log_scan.py) finds a whole key of every kind, in a message, an
`extra=` field or an exception, and lets the masked forms through."""

from __future__ import annotations

import logging

import pytest
from log_scan import WHOLE_KEY, KeyScan

from trollllm.crypto import mask_secrets, new_friend_key, new_user_key

KEYS = {
    "gateway": new_user_key(),
    "friend": new_friend_key(),
    "openai": "sk-proj-" + "Ab9" * 12 + "1234",
    "openai legacy": "sk-" + "Q" * 48,
    "anthropic": "sk-ant-api03-" + "k" * 40,
    "groq": "gsk_" + "Zq7" * 12 + "wxyz",
    "gemini": "AIza" + "S" * 35,
    "xai": "xai-" + "x" * 40,
}


@pytest.mark.parametrize("key", KEYS.values(), ids=KEYS.keys())
def test_a_whole_key_of_every_kind_is_found_and_its_masked_form_is_not(key: str) -> None:
    assert WHOLE_KEY.search(f"calling upstream with {key} now")
    assert not WHOLE_KEY.search(mask_secrets(f"calling upstream with {key} now"))


def _scanned(
    message: str = "nothing secret", *, error: str = "x", extra: dict[str, str] | None = None
) -> KeyScan:
    """One error record (with an exception) seen by a scan of its own, kept out of the run's scan."""
    scan = KeyScan()
    logger = logging.getLogger("trollllm.test_log_scan")
    logger.addHandler(scan)
    logger.propagate = False  # these keys are logged on purpose: the run's own scan must not see them
    try:
        try:
            raise RuntimeError(error)
        except RuntimeError:
            logger.error(message, exc_info=True, extra=extra)
    finally:
        logger.removeHandler(scan)
        logger.propagate = True
    return scan


def test_a_key_in_a_message_an_extra_field_or_an_exception_is_a_leak() -> None:
    assert _scanned(f"key {KEYS['openai']}").leaks
    assert _scanned(extra={"api_key": KEYS["anthropic"]}).leaks
    assert _scanned(error=f"refused {KEYS['groq']}").leaks
    assert not _scanned().leaks


def test_a_leak_is_reported_masked() -> None:
    (leak,) = _scanned(f"key {KEYS['gateway']}").leaks
    assert KEYS["gateway"] not in leak and KEYS["gateway"][-4:] in leak
