"""Fetching remote image URLs, off by default (`ServeSettings.allow_remote_media`).

A server that fetches any URL a client names can be turned against its own network
(server-side request forgery). So when fetching is on: http(s) only; the host name is
resolved once and every address must be public (no loopback, private, link-local,
multicast or reserved ranges, IPv4 or IPv6); the connection goes to that address (a
second lookup cannot rebind it); redirects are refused, not followed; the body is read
up to `max_bytes` and within `timeout_s`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import httpx

from anyseq.serve.errors import ApiError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def resolve(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def fetch(
    url: str,
    param: str,
    max_bytes: int,
    timeout_s: float,
    allowed: Callable[[IPAddress], bool] = is_public,
) -> bytes:
    """GET `url` under the rules above; any refusal is an ApiError naming `param`."""

    def refuse(reason: str, code: str = "remote_url_refused") -> ApiError:
        return ApiError(400, f"{param}: {url[:200]!r} {reason}", code, param)

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refuse("is not an http(s) URL with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(parts.hostname, port)
    except (OSError, UnicodeError) as error:
        raise refuse(f"cannot be resolved ({error})", "remote_url_unreachable") from error
    blocked = [str(a) for a in addresses if not allowed(a)]
    if not addresses or blocked:
        raise refuse(f"resolves to a non-public address ({', '.join(blocked) or 'none'}); refused")
    address = addresses[0]
    host = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit((parts.scheme, f"{host}:{port}", parts.path or "/", parts.query, ""))
    headers = {"Host": parts.netloc.rpartition("@")[2]}
    try:
        async with (
            httpx.AsyncClient(follow_redirects=False, timeout=timeout_s, trust_env=False) as client,
            client.stream(
                "GET", pinned, headers=headers, extensions={"sni_hostname": parts.hostname}
            ) as response,
        ):
            if response.is_redirect:
                raise refuse(f"answered a redirect ({response.status_code}); redirects are not followed")
            if response.status_code != 200:
                raise refuse(f"answered HTTP {response.status_code}", "remote_url_unreachable")
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise refuse(f"is larger than the limit of {max_bytes} bytes", "media_too_large")
    except httpx.HTTPError as error:
        raise refuse(f"could not be fetched ({type(error).__name__})", "remote_url_unreachable") from error
    return bytes(data)
