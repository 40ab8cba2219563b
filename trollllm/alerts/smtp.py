"""Alert emails over SMTP (`TROLLLLM_SMTP_URL`): `smtp://[user:password@]host[:port]` (port 25; STARTTLS
when the server offers it, its certificate verified) or `smtps://…` (TLS from the start, port 465).
The standard library's client runs in a worker thread, off the event loop."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from trollllm.errors import ConfigurationError

SMTP_TIMEOUT_S = 15.0


class EmailFailed(Exception):
    """The SMTP server could not be reached or refused the message (retried later)."""


def check_smtp_url(url: str) -> None:
    """Refuse an SMTP URL the sender could not use (at startup)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigurationError("TROLLLLM_SMTP_URL must be smtp://[user:password@]host[:port] or smtps://…")
    try:
        parts.port  # noqa: B018 (parses it)
    except ValueError as exc:
        raise ConfigurationError(f"TROLLLLM_SMTP_URL has a bad port: {exc}") from exc


async def send_email(smtp_url: str, sender: str, to: str, subject: str, text: str) -> None:
    """Send one plain-text email; `EmailFailed` when the server cannot take it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    try:
        await asyncio.to_thread(_send, smtp_url, message)
    except (OSError, smtplib.SMTPException) as exc:
        raise EmailFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc


def _send(smtp_url: str, message: EmailMessage) -> None:
    parts = urlsplit(smtp_url)
    host = parts.hostname or "localhost"
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(host, parts.port or 465, timeout=SMTP_TIMEOUT_S, context=context)
    else:
        client = smtplib.SMTP(host, parts.port or 25, timeout=SMTP_TIMEOUT_S)
    with client:
        client.ehlo()
        if parts.scheme == "smtp" and client.has_extn("starttls"):
            client.starttls(context=context)
            client.ehlo()
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)
