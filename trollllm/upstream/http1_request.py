"""What an upstream request looks like on the wire: its target (cached per URL and proxy) and headers."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from trollllm.upstream.http1_connection import InvalidRequestError, Origin
from trollllm.upstream.http1_proxy import ProxyURL


class RequestTarget:
    """What a (URL, proxy URL) pair resolves to, computed once and cached."""

    __slots__ = ("authority", "head", "host", "origin", "port", "proxy", "tls")

    def __init__(self, url: str, proxy_url: str | None) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidRequestError(f"malformed URL {url!r}") from exc
        scheme = parts.scheme.lower()
        host = parts.hostname
        if scheme not in ("http", "https") or not host:
            raise InvalidRequestError(f"not an absolute http(s) URL: {url!r}")
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        self.tls = scheme == "https"
        self.host = host
        self.port = port or (443 if self.tls else 80)
        name = f"[{host}]" if ":" in host else host
        self.authority = f"{name}:{self.port}"
        host_header = name if port is None or port == (443 if self.tls else 80) else self.authority
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not path.isascii() or any(c in path for c in " \r\n\t"):
            raise InvalidRequestError(f"the URL path needs escaping: {url!r}")
        self.proxy = ProxyURL.parse(proxy_url) if proxy_url is not None else None
        self.origin: Origin = (scheme, host, self.port, proxy_url)
        absolute = self.proxy is not None and not self.tls
        request_target = f"{scheme}://{host_header}{path}" if absolute else path
        self.head = f"POST {request_target} HTTP/1.1\r\nhost: {host_header}\r\n".encode("ascii")
        if absolute:
            assert self.proxy is not None
            self.head += self.proxy.authorization


def header_block(headers: Mapping[str, str]) -> bytes:
    """The header lines of a request, checked: no line breaks, latin-1 only, no host or content-length."""
    text = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    count = len(headers)
    if text.count("\n") != count or text.count("\r") != count:
        raise InvalidRequestError("a header name or value holds a line break")
    if "host" in headers or "content-length" in headers:
        raise InvalidRequestError("host and content-length are set by the client")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError("a header value is not latin-1 text") from exc
