"""Where a webhook may go: an https URL (http too when private targets are allowed) whose host resolves
only to public addresses, unless the operator allows private, loopback and link-local ones
(`TROLLLLM_WEBHOOK_ALLOW_PRIVATE`). Checked when the URL is set and again, on the resolved address, at
every delivery (the delivery then connects to that very address, so a DNS answer that changes in between
cannot point it inside the network)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_S = 5.0

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """The URL is malformed, or its host is (or resolves to) an address that is not allowed."""


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A checked webhook URL and the address to connect to."""

    url: SplitResult
    address: IpAddress

    @property
    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address (the Host header and TLS name keep it)."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        port = f":{self.url.port}" if self.url.port else ""
        path = self.url.path or "/"
        query = f"?{self.url.query}" if self.url.query else ""
        return f"{self.url.scheme}://{host}{port}{path}{query}"


def parse_webhook_url(text: str, *, allow_private: bool) -> SplitResult:
    """The URL's parts, or `TargetRefused` saying what is wrong with it (no network access)."""
    if len(text) > MAX_URL_LENGTH:
        raise TargetRefused(f"must be at most {MAX_URL_LENGTH} characters")
    if any(char.isspace() or ord(char) < 32 for char in text):
        raise TargetRefused("must not contain spaces or control characters")
    try:
        url = urlsplit(text)
        url.port  # noqa: B018 (parses the port; raises ValueError when it is not a number in range)
    except ValueError as exc:
        raise TargetRefused(f"is not a valid URL ({exc})") from exc
    schemes = ("https", "http") if allow_private else ("https",)
    if url.scheme not in schemes:
        raise TargetRefused("must be an https:// URL")
    if not url.hostname:
        raise TargetRefused("has no host")
    if url.username is not None or url.password is not None:
        raise TargetRefused("must not carry credentials")
    if url.fragment:
        raise TargetRefused("must not have a #fragment")
    return url


def address_allowed(address: IpAddress, *, allow_private: bool) -> bool:
    """Public (globally routable, not multicast) addresses always; any other only when allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return allow_private or (address.is_global and not address.is_multicast)


async def resolve_target(url: SplitResult, *, allow_private: bool) -> WebhookTarget:
    """Resolve the URL's host; every address it has must be allowed (one refused: `TargetRefused`)."""
    host = url.hostname or ""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = await _lookup(host, url.port or (443 if url.scheme == "https" else 80))
    refused = [a for a in addresses if not address_allowed(a, allow_private=allow_private)]
    if refused:
        raise TargetRefused(
            f"resolves to {refused[0]}, a private, loopback or link-local address "
            "(refused unless TROLLLLM_WEBHOOK_ALLOW_PRIVATE=true)"
        )
    return WebhookTarget(url, addresses[0])


async def _lookup(host: str, port: int) -> list[IpAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError) as exc:
        raise TargetRefused(f"host `{host[:253]}` does not resolve") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"host `{host[:253]}` does not resolve")
    return addresses
