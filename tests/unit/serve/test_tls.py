"""HTTPS: ``tls_options`` checks a certificate and key up front and uvicorn serves TLS with them.

The certificate is made in the test (self-signed for 127.0.0.1 with ``cryptography``); the
client is httpx verifying against exactly that certificate, so a passing request proves the
server presented it over a real TLS handshake.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shipyard.core.errors import InvalidArgument
from shipyard.serve.server import tls_options
from tests.servers import running

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def make_cert(
    folder: Path, name: str = "server", password: bytes | None = None
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert_path, key_path


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app: the TLS layer under test is uvicorn's, configured by tls_options."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["scheme"].encode()})


def serve(options: dict[str, Any]) -> Iterator[int]:
    with running(hello, lifespan="off", **options) as port:
        yield port


@pytest.fixture
def https_port(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    cert, key = make_cert(tmp_path)
    for port in serve(tls_options(cert, key)):
        yield port, cert


def test_https_request_verified_against_the_served_certificate(
    https_port: tuple[int, Path],
) -> None:
    port, cert = https_port
    trust = ssl.create_default_context(cafile=str(cert))
    response = httpx.get(f"https://127.0.0.1:{port}/", verify=trust)
    assert response.status_code == 200
    assert response.text == "https"


def test_a_client_that_does_not_trust_the_certificate_is_refused(
    https_port: tuple[int, Path], tmp_path: Path
) -> None:
    port, _ = https_port
    other, _ = make_cert(tmp_path, "other")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(
            f"https://127.0.0.1:{port}/", verify=ssl.create_default_context(cafile=str(other))
        )
    with pytest.raises(httpx.HTTPError):  # plain HTTP to a TLS port gets no HTTP answer
        httpx.get(f"http://127.0.0.1:{port}/")


def test_no_tls_options_means_plain_http() -> None:
    assert tls_options(None, None) == {}


def test_bad_certificate_pairs_fail_up_front(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "a")
    other_cert, other_key = make_cert(tmp_path, "b")
    _, locked_key = make_cert(tmp_path, "locked", password=b"secret")
    with pytest.raises(InvalidArgument, match="both --tls-cert and --tls-key"):
        tls_options(cert, None)
    with pytest.raises(InvalidArgument, match="does not exist"):
        tls_options(cert, tmp_path / "missing.key")
    with pytest.raises(InvalidArgument, match="key belongs to the certificate"):
        tls_options(cert, other_key)
    with pytest.raises(InvalidArgument, match="key belongs to the certificate"):
        tls_options(key, cert)  # swapped
    with pytest.raises(InvalidArgument, match="passphrase-protected"):
        tls_options(cert.with_name("locked.crt"), locked_key)
    assert tls_options(other_cert, other_key) == {
        "ssl_certfile": str(other_cert),
        "ssl_keyfile": str(other_key),
    }
