"""Outbound-URL policy for server-side fetches (RELIABILITY.md lesson 4: every fetch is SSRF).

:func:`check_url` refuses schemes other than http(s), credentials in the URL, and hosts that
resolve to an address that is not public. With ``allow_private`` (a local test server, an API on
the company network) loopback and private ranges are allowed, but link-local addresses (cloud
metadata at ``169.254.169.254``), multicast, unspecified (``0.0.0.0``) and reserved addresses
never are. Hosts are resolved with ``socket.getaddrinfo``, so every spelling the C library
accepts is judged by the address it means (``0x7f000001``, ``2130706433``, ``127.1``,
``[::ffff:127.0.0.1]``). IPv6 addresses that embed an IPv4 one (mapped, NAT64, 6to4, Teredo)
are judged by the embedded address too.

Call it again after every redirect. To close the gap between checking a name and connecting to
it (DNS rebinding), connect with :func:`connect_checked`, which checks the address it connects to.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from shipyard.core.errors import InvalidArgument, SourceUnavailable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not global, still internal


def check_url(
    url: str, *, allow_private: bool, allowed_schemes: tuple[str, ...] = ("http", "https")
) -> None:
    """Refuse ``url`` unless its scheme is allowed and its host resolves to allowed addresses.

    Raises:
        InvalidArgument: The scheme, the URL's shape or one of the host's addresses is refused.
        SourceUnavailable: The host name does not resolve.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidArgument(f"{url!r} is not a valid URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in allowed_schemes:
        shown = f"scheme {scheme!r} is not allowed" if scheme else "a URL needs a scheme"
        raise InvalidArgument(
            f"{url!r}: {shown}; use a URL starting with "
            + " or ".join(f"{s}://" for s in allowed_schemes)
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument(f"URL of host {parts.hostname!r}: put credentials in headers")
    host = parts.hostname
    if not host:
        raise InvalidArgument(f"{url!r} has no host")
    for address in resolve(host, port or (443 if scheme == "https" else 80)):
        check_address(address, allow_private=allow_private, host=host)


def resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses ``host`` resolves to (TCP), as ``ipaddress`` objects."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise SourceUnavailable(f"cannot resolve host {host!r}: {e}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_address(address: IPAddress, *, allow_private: bool, host: str = "") -> None:
    """Refuse an address that is not public (see the module docstring for ``allow_private``)."""
    reason = _refusal(address, allow_private=allow_private)
    if reason is not None:
        shown = f"{host!r} ({address})" if host and host != str(address) else str(address)
        hint = "" if allow_private else "; set allow_private_network: true for a trusted host"
        raise InvalidArgument(f"host {shown} is {reason}: refused{hint}")


def _refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _refusal(embedded, allow_private=allow_private)
    if address.is_loopback:
        return None if allow_private else "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata lives there)"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_reserved:
        return "reserved"
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address(
        "255.255.255.255"
    ):
        return "broadcast"
    if allow_private:
        return None
    if address.is_private or address in _SHARED or not address.is_global:
        return "a private address"
    return None


def connect_checked(
    address: tuple[str, int],
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
    *,
    allow_private: bool,
) -> socket.socket:
    """``socket.create_connection`` that checks each resolved address before connecting to it."""
    host, port = address
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        check_address(ip, allow_private=allow_private, host=host)
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as e:
            sock.close()
            last = e
            continue
        return sock
    raise last or OSError(f"no address for {host!r}")
