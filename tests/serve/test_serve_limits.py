"""Limit checks and remote fetching, unit by unit."""

import asyncio
import base64
import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from serve_helpers import png, tone

from anyseq.serve.errors import ApiError
from anyseq.serve.limits import (
    Admission,
    Limits,
    check_audio_header,
    check_context,
    check_image_header,
    data_url_bytes,
)
from anyseq.serve.remote import fetch, is_public


def raises(code: str, fragment: str):
    class Check:
        def __enter__(self):
            self.context = pytest.raises(ApiError, match=fragment)
            return self.context.__enter__()

        def __exit__(self, *exc):
            handled = self.context.__exit__(*exc)
            assert self.context.excinfo.value.code == code
            return handled

    return Check()


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_audio_seconds must be positive"):
        Limits(max_audio_seconds=0)


def test_data_urls():
    assert data_url_bytes("data:image/png;base64," + base64.b64encode(b"abc").decode(), "p") == b"abc"
    assert data_url_bytes("data:image/png;name=x.png;base64,YWJj", "p") == b"abc"
    with raises("invalid_data_url", "expected a data URL"):
        data_url_bytes("data:image/png,abc", "p")
    with raises("invalid_data_url", "'audio/wav' is not image"):
        data_url_bytes("data:audio/wav;base64,YWJj", "p")
    with raises("invalid_base64", "p: not valid base64"):
        data_url_bytes("data:image/png;base64,YW=Jj", "p")
    with raises("invalid_media", "p: the media is empty"):
        data_url_bytes("data:image/png;base64,", "p")


def test_image_header_is_read_without_decoding_the_pixels():
    check_image_header(png(size=64), "p", 64 * 64)
    with raises("image_too_large", "p: 64x64 = 4096 pixels exceeds the limit of 4095"):
        check_image_header(png(size=64), "p", 64 * 64 - 1)
    data = png(size=64)
    header_only = data[: data.index(b"IDAT") + 4]  # no pixel data at all: judged by the header
    with raises("image_too_large", "64x64"):
        check_image_header(header_only, "p", 100)
    with raises("invalid_image", "p: not a readable image \\(unknown format\\)"):
        check_image_header(b"GIF89a?", "p", 100)


def test_audio_header():
    check_audio_header(tone(1.0), "wav", "p", 1.0)
    check_audio_header(tone(1.0, audio_format="FLAC"), "flac", "p", 1.0)
    with raises("audio_too_long", "p: 1.50 s of audio exceeds the limit of 1.0 s"):
        check_audio_header(tone(1.5), "wav", "p", 1.0)
    with raises("invalid_audio", "the data is WAV, but format says 'flac'"):
        check_audio_header(tone(0.1), "flac", "p", 1.0)
    with raises("invalid_audio", "not a readable wav"):
        check_audio_header(b"\x00" * 100, "wav", "p", 1.0)


def test_context_check_names_both_parts():
    check_context(200, 56, 256)
    with raises("context_length_exceeded", r"needs 257 \(200 in the messages, 57 in the completion\)"):
        check_context(200, 57, 256)
    with raises("context_length_exceeded", "needs at least 300"):
        check_context(250, 50, 256, exact=False)


def test_admission_counts_and_releases_once():
    admission = Admission(2)
    first, second = admission.enter(), admission.enter()
    with raises("rate_limit_exceeded", "2 requests are in flight, the limit is 2"):
        admission.enter()
    first.release()
    first.release()
    assert admission.in_flight == 1
    second.release()
    assert admission.in_flight == 0


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fd00::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
    ],
)
def test_public_addresses(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


class Site(BaseHTTPRequestHandler):
    """/image: a PNG; /redirect: a 302 to /image; /big: 5000 bytes; anything else: 404."""

    def do_GET(self):  # noqa: N802 (the handler API)
        body = {"/image": png(), "/big": b"x" * 5000}.get(self.path)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/image")
            self.end_headers()
            return
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def get(url: str, allow_any_address: bool = False, max_bytes: int = 4096) -> bytes:
    allowed = (lambda _: True) if allow_any_address else is_public
    return asyncio.run(
        fetch(url, "messages[0].content[1]", max_bytes=max_bytes, timeout_s=5, allowed=allowed)
    )


def test_fetch_refuses_private_addresses_and_other_schemes(site):
    with raises("remote_url_refused", r"non-public address \(127.0.0.1\)"):
        get(site + "/image")
    with raises("remote_url_refused", "non-public address"):
        get("http://localhost:9/x")
    with raises("remote_url_refused", r"non-public address \(::1\)"):
        get("http://[::1]:9/x")
    with raises("remote_url_refused", "is not an http"):
        get("file:///etc/passwd")


def test_fetch_reads_within_limits_and_never_follows_redirects(site):
    assert get(site + "/image", allow_any_address=True) == png()
    with raises("remote_url_refused", "answered a redirect \\(302\\); redirects are not followed"):
        get(site + "/redirect", allow_any_address=True)
    with raises("media_too_large", "larger than the limit of 4096 bytes"):
        get(site + "/big", allow_any_address=True)
    with raises("remote_url_unreachable", "answered HTTP 404"):
        get(site + "/missing", allow_any_address=True)
