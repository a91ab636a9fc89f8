"""Bad requests over HTTP: OpenAI-style JSON errors with 4xx codes, limits checked before decoding."""

import base64

import httpx
import pytest
from serve_helpers import MODEL, data_url, png, running, tone

HELLO = [{"role": "user", "content": "Hello!"}]


@pytest.fixture(scope="module")
def http(server) -> httpx.Client:
    with httpx.Client(base_url=server, timeout=60) as client:
        yield client


def chat(http: httpx.Client, **body) -> httpx.Response:
    return http.post(
        "/v1/chat/completions", json={"model": MODEL, "messages": HELLO, "max_tokens": 2, **body}
    )


def assert_error(response: httpx.Response, status: int, code: str, fragment: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == code
    assert fragment in error["message"]
    return error


def image_part(data: bytes, mime: str = "image/png") -> dict:
    return {"type": "image_url", "image_url": {"url": data_url(data, mime)}}


def audio_part(data: bytes, audio_format: str = "wav") -> dict:
    return {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(data).decode(), "format": audio_format},
    }


def user(*parts: dict) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, *parts]}]


def test_health_and_schema(http):
    health = http.get("/health").json()
    assert health["status"] == "ok" and health["model"] == MODEL
    schema = http.get("/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/models", "/health"} <= set(schema["paths"])
    responses = schema["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"200", "400", "404", "413", "429"} <= set(responses)


@pytest.mark.parametrize(
    ("body", "status", "code", "fragment"),
    [
        ({"messages": []}, 400, "invalid_request", "messages: List should have at least 1 item"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "invalid_request", "messages[0].role"),
        (
            {"messages": [{"role": "assistant", "content": "hi"}]},
            400,
            "invalid_messages",
            "must be the user's",
        ),
        (
            {"messages": [{"role": "user", "content": []}]},
            400,
            "empty_message",
            "messages[0]: the message is empty",
        ),
        ({"model": "other"}, 404, "model_not_found", "this server has 'tiny'"),
        ({"max_tokens": 300}, 400, "context_length_exceeded", "maximum context length is 256"),
        ({"seed": -1}, 400, "invalid_request", "seed"),
        ({"stream": True, "modalities": ["image"]}, 400, "unsupported_stream", "not streamed"),
        (
            {"messages": [{"role": "system", "content": [image_part(png())]}, *HELLO]},
            400,
            "invalid_content",
            "a system message holds text only",
        ),
        (
            {"messages": [{"role": "assistant", "audio": {"id": "audio_x"}}, *HELLO]},
            400,
            "audio_not_found",
            "unknown or has expired",
        ),
    ],
)
def test_invalid_requests(http, body, status, code, fragment):
    assert_error(chat(http, **body), status, code, fragment)


def test_media_is_checked_from_its_header(http):
    big = png(size=600)  # 360000 pixels; the test limit is 512 x 512
    error = assert_error(
        chat(http, messages=user(image_part(big))), 400, "image_too_large", "600x600 = 360000"
    )
    assert error["param"] == "messages[0].content[1]"
    assert_error(chat(http, messages=user(image_part(b"not an image"))), 400, "invalid_image", "content[1]")
    assert_error(
        chat(http, messages=user(image_part(png(), "text/plain"))), 400, "invalid_data_url", "not image/*"
    )
    bad_base64 = {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
    assert_error(chat(http, messages=user(bad_base64)), 400, "invalid_base64", "not valid base64")
    assert_error(chat(http, messages=user(audio_part(tone(5.0)))), 400, "audio_too_long", "5.00 s")
    assert_error(
        chat(http, messages=user(audio_part(tone(0.5), "flac"))), 400, "invalid_audio", "format says 'flac'"
    )
    assert_error(
        chat(http, messages=user(audio_part(b"RIFF...."))), 400, "invalid_audio", "not a readable wav"
    )


def test_media_count_is_limited(http):
    response = chat(http, messages=user(*[image_part(png())] * 5))
    assert_error(response, 400, "too_many_media", "5 media parts")


def test_remote_urls_are_off_by_default(http):
    remote = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    assert_error(chat(http, messages=user(remote)), 400, "remote_media_disabled", "send a data: URL")


def test_request_size_is_limited_while_reading(http):
    huge = "x" * (2**20 + 10)
    response = chat(http, messages=[{"role": "user", "content": huge}])
    assert_error(response, 413, "request_too_large", "exceeds the limit of 1048576 bytes")

    def chunks():  # no Content-Length: the limit applies as the body arrives
        yield b'{"model": "tiny", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 32768

    response = http.post(
        "/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "request_too_large", "exceeds the limit of 1048576 bytes")


def test_unknown_routes_and_methods_are_json_errors(http):
    assert_error(http.get("/v1/nothing"), 404, "not_found", "Not Found")
    assert_error(http.get("/v1/chat/completions"), 405, "method_not_allowed", "Method Not Allowed")
    assert_error(http.get("/v1/models/other"), 404, "model_not_found", "'other' does not exist")


def test_remote_images_are_refused_on_private_addresses(checkpoint):
    with running(checkpoint, allow_remote_media=True) as (url, _), httpx.Client(base_url=url) as http:
        local = {"type": "image_url", "image_url": {"url": url + "/health"}}
        assert_error(
            chat(http, messages=user(local)), 400, "remote_url_refused", "non-public address (127.0.0.1)"
        )


def test_voices_come_from_the_voices_folder(checkpoint, tmp_path):
    (tmp_path / "narrator.wav").write_bytes(tone(1.0))
    (tmp_path / "notes.txt").write_text("not a voice")
    with (
        running(checkpoint, voices_dir=tmp_path) as (url, app),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        assert app.state.server.voices == {"narrator": tmp_path / "narrator.wav"}
        spoken = {"modalities": ["text", "audio"], "audio": {"voice": "narrator", "format": "wav"}}
        assert chat(http, **spoken).json()["choices"][0]["message"]["audio"]["data"]
        unknown = chat(http, audio={"voice": "notes", "format": "wav"})
        assert_error(unknown, 400, "unknown_voice", "unknown voice 'notes'; known: default, narrator")
