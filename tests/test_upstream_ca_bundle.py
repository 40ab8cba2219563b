"""Trusting a private CA for an upstream: `TROLLLLM_UPSTREAM_CA_BUNDLE` (issue 29, item 10).

The provider is the mock upstream serving HTTPS on loopback with a certificate signed by a CA made in the
test; the gateway trusts it only through the setting (never through OpenSSL's `SSL_CERT_FILE`).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import make_settings
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from proxy_world import OPENAI_MODEL, World, build_world, serve
from pydantic import ValidationError

from trollllm.clock import ManualClock
from trollllm.mockupstream import MockUpstream
from trollllm.settings import Settings

HELLO = [{"role": "user", "content": "hello"}]


@dataclass(frozen=True)
class PrivateCa:
    """A CA's certificate (PEM file) and a server context for 127.0.0.1 signed by it."""

    bundle: Path
    server: ssl.SSLContext


_CA_KEY_USAGE = dict.fromkeys(
    ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "encipher_only",
     "decipher_only"),
    False,
) | {"digital_signature": True, "key_cert_sign": True, "crl_sign": True}  # fmt: skip


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_private_ca(directory: Path) -> PrivateCa:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("TrollLLM test CA"))
        .issuer_name(_name("TrollLLM test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**_CA_KEY_USAGE), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    bundle = directory / "private-ca.pem"
    bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(
        server_cert.public_bytes(serialization.Encoding.PEM)
        + server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(chain)
    return PrivateCa(bundle, server)


@pytest.fixture
def private_ca(tmp_path: Path) -> PrivateCa:
    return make_private_ca(tmp_path)


@pytest.fixture
async def tls_mock(private_ca: PrivateCa) -> AsyncIterator[MockUpstream]:
    async with MockUpstream(ssl_context=private_ca.server) as mock:
        assert mock.url.startswith("https://127.0.0.1:")
        yield mock


async def _world(
    tmp_path: Path, database_url: str, clock: ManualClock, mock: MockUpstream, **settings: Any
) -> AsyncIterator[World]:
    async with serve(make_settings(tmp_path, database_url, **settings), clock) as served:
        yield await build_world(served[0], served[1], mock)


async def test_an_upstream_behind_a_private_ca_is_reached_with_the_ca_bundle_setting(
    tmp_path: Path,
    embedded_database_url: str,
    clock: ManualClock,
    private_ca: PrivateCa,
    tls_mock: MockUpstream,
) -> None:
    async for world in _world(
        tmp_path, embedded_database_url, clock, tls_mock, upstream_ca_bundle=str(private_ca.bundle)
    ):
        async with world.openai() as client:
            reply = await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
        assert reply.choices[0].message.content
        assert tls_mock.request_count == 1


async def test_without_the_ca_bundle_the_private_ca_is_not_trusted(
    tmp_path: Path, embedded_database_url: str, clock: ManualClock, tls_mock: MockUpstream
) -> None:
    async for world in _world(tmp_path, embedded_database_url, clock, tls_mock):
        async with world.openai() as client:
            with pytest.raises(openai.APIStatusError) as refused:
                await client.chat.completions.create(model=OPENAI_MODEL, messages=HELLO)
        assert refused.value.status_code == 503
        assert tls_mock.request_count == 0


def test_a_ca_bundle_that_is_no_pem_file_refuses_to_start(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    for path in (junk, tmp_path / "missing.pem"):
        with pytest.raises(ValidationError, match="upstream_ca_bundle"):
            Settings.model_validate({"upstream_ca_bundle": str(path), "data_dir": tmp_path})
