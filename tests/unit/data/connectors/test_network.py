"""network.check_url over the shared bad-URI corpus, and the address policy behind it."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.data import network
from tests.corpus import BAD_URIS


@pytest.mark.parametrize("uri", BAD_URIS)
def test_bad_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidArgument):
        network.check_url(uri, allow_private=False)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "/etc/passwd",
        "gopher://localhost:6379/_INFO",
        "dict://localhost:11211/stat",
        "http://169.254.169.254/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "http://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
    ],
)
def test_refused_even_when_private_networks_are_allowed(uri: str) -> None:
    with pytest.raises(InvalidArgument):
        network.check_url(uri, allow_private=True)


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8080/api",
        "http://localhost/",
        "http://[::1]/",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://172.16.0.1/",
        "HTTP://0x7f000001/",
    ],
)
def test_private_addresses_pass_when_allowed(uri: str) -> None:
    network.check_url(uri, allow_private=True)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"],
)
def test_public_addresses_pass(address: str) -> None:
    network.check_address(ipaddress.ip_address(address), allow_private=False)


@pytest.mark.parametrize(
    "address",
    ["100.64.0.1", "192.0.2.1", "198.18.0.1", "fc00::1", "fd12::1", "::ffff:10.0.0.1"],
)
def test_internal_ranges_are_refused(address: str) -> None:
    with pytest.raises(InvalidArgument):
        network.check_address(ipaddress.ip_address(address), allow_private=False)


def test_schemes_credentials_and_shape() -> None:
    with pytest.raises(InvalidArgument, match="scheme 'https' is not allowed"):
        network.check_url("https://1.1.1.1/", allow_private=False, allowed_schemes=("http",))
    with pytest.raises(InvalidArgument, match="credentials"):
        network.check_url("http://user:pw@127.0.0.1/", allow_private=True)
    with pytest.raises(InvalidArgument, match="no host"):
        network.check_url("http:///path", allow_private=True)
    with pytest.raises(InvalidArgument, match="not a valid URL"):
        network.check_url("http://127.0.0.1:99999/", allow_private=True)


def test_connect_checked_refuses_before_connecting() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[bool] = []
    listener.settimeout(0.3)

    def accept() -> None:
        try:
            conn, _ = listener.accept()
            accepted.append(True)
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    with pytest.raises(InvalidArgument, match="loopback"):
        network.connect_checked(("127.0.0.1", port), 1.0, allow_private=False)
    thread.join()
    assert accepted == []
    sock = network.connect_checked(("127.0.0.1", port), 1.0, allow_private=True)
    sock.close()
    listener.close()
