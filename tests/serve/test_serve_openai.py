"""The server through the official `openai` client: text, image -> caption, text -> audio, streaming."""

import base64
import io

import numpy as np
import openai
import pytest
import soundfile
from PIL import Image
from serve_helpers import MODEL, data_url, png, tone

from anyseq.api import AnySeq
from anyseq.conversation import Conversation, Media, Message, Text

CAPTION = "Describe the scene in this picture."


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def model(checkpoint) -> AnySeq:
    return AnySeq.from_pretrained(checkpoint)


def caption_messages(image: bytes) -> list[dict]:
    content = [
        {"type": "text", "text": CAPTION},
        {"type": "image_url", "image_url": {"url": data_url(image)}},
    ]
    return [{"role": "user", "content": content}]


def test_models_lists_the_checkpoint(client, model):
    (card,) = client.models.list().data
    assert card.id == MODEL
    assert card.model_extra["context_length"] == model.context_length
    assert card.model_extra["modalities"] == ["text", "image", "speech", "music"]
    assert client.models.retrieve(MODEL).id == MODEL


def test_text_chat_matches_the_python_api(client, model):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hello! How are you today?"}],
        max_tokens=12,
        seed=3,
    )
    expected = model.chat([Message("user", [Text("Hello! How are you today?")])], max_new_tokens=12, seed=3)
    (choice,) = reply.choices
    assert choice.message.role == "assistant"
    assert (choice.message.content or "") == expected.text
    assert choice.finish_reason == ("length" if expected.finish_reason == "length" else "stop")
    assert reply.usage.completion_tokens == len(expected.ids)
    prompt = Conversation([Message("user", [Text("Hello! How are you today?")])], model.system)
    assert reply.usage.prompt_tokens == len(model.prompt_ids(prompt))
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_image_in_caption_out(client, model):
    image = png((30, 40, 220))
    reply = client.chat.completions.create(
        model=MODEL, messages=caption_messages(image), max_tokens=10, seed=1
    )
    conversation = Conversation(
        [Message("user", [Text(CAPTION), Media("image", source=image)])], model.system
    )
    expected = model.chat(conversation, max_new_tokens=10, seed=1)
    assert (reply.choices[0].message.content or "") == expected.text
    # the image reached the model as its tokens: 16 codes and two boundary tokens
    text_only = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": CAPTION}], max_tokens=1
    )
    assert reply.usage.prompt_tokens == text_only.usage.prompt_tokens + 16 + 2
    assert reply.usage.prompt_tokens == len(model.prompt_ids(conversation))


def test_text_in_audio_out(client):
    reply = client.chat.completions.create(
        model=MODEL,
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"},
        messages=[{"role": "user", "content": "Would you kindly read this text out loud"}],
        max_tokens=8,
        seed=0,
    )
    message = reply.choices[0].message
    audio = message.audio
    assert audio.id.startswith("audio_") and audio.expires_at > 0
    assert audio.transcript == (message.content or "")
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(audio.data)), dtype="float32")
    assert rate == 16000
    assert samples.ndim == 1 and 0.04 <= len(samples) / rate <= 2.0  # 1 to 50 frames of 25 Hz speech
    assert np.isfinite(samples).all() and np.abs(samples).max() <= 1.0
    assert np.sqrt(np.mean(samples**2)) > 1e-4  # not silence
    # the spoken turn can be sent back by id: its speech codes join the prompt
    follow_up = [
        {"role": "user", "content": "Would you kindly read this text out loud"},
        {"role": "assistant", "audio": {"id": audio.id}},
        {"role": "user", "content": "Thank you."},
    ]
    again = client.chat.completions.create(model=MODEL, messages=follow_up, max_tokens=1)
    without_audio = client.chat.completions.create(
        model=MODEL,
        messages=[*follow_up[:1], {"role": "assistant", "content": audio.transcript}, follow_up[2]],
        max_tokens=1,
    )
    frames = len(samples) // (16000 // 25)
    assert again.usage.prompt_tokens == without_audio.usage.prompt_tokens + frames + 2


def test_flac_out_and_audio_in(client):
    spoken = {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(tone(0.5)).decode(), "format": "wav"},
    }
    reply = client.chat.completions.create(
        model=MODEL,
        modalities=["text", "audio"],
        audio={"voice": "default", "format": "flac"},
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Please turn this speech into text."}, spoken],
            }
        ],
        max_tokens=4,
    )
    data = base64.b64decode(reply.choices[0].message.audio.data)
    assert data[:4] == b"fLaC"
    assert soundfile.info(io.BytesIO(data)).samplerate == 16000


def test_streaming_sends_the_same_text_as_a_plain_request(client):
    messages = [{"role": "user", "content": "Hello! How are you today?"}]
    plain = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16, seed=5)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=16,
            seed=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == (plain.choices[0].message.content or "")
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_n_choices_with_a_seed_are_reproducible_one_by_one(client):
    def ask(**kwargs):
        messages = [{"role": "user", "content": "Hello!"}]
        return client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, **kwargs)

    reply = ask(n=3, seed=7)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    # choice i is what a single request with seed 7 + i gets
    assert [c.message.content for c in reply.choices] == [
        ask(seed=7 + i).choices[0].message.content for i in range(3)
    ]


def test_a_drawing_request_with_image_output_gets_an_image(client):
    reply = client.chat.completions.create(
        model=MODEL,
        modalities=["text", "image"],
        messages=[{"role": "user", "content": "Draw a red circle on the left."}],
        max_tokens=24,
    )
    parts = reply.choices[0].message.content
    assert isinstance(parts, list) and parts[0]["type"] == "image_url"
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.size == (64, 64)


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"model": "gpt-4o"}, openai.NotFoundError, "does not exist"),
        ({"max_tokens": 10_000}, openai.BadRequestError, "maximum context length is 256 tokens"),
        ({"n": 9}, openai.BadRequestError, "n=9 exceeds the limit of 4"),
        ({"audio": {"voice": "nobody", "format": "wav"}}, openai.BadRequestError, "unknown voice 'nobody'"),
        ({"temperature": 3}, openai.BadRequestError, "temperature"),
    ],
)
def test_errors_reach_the_client_as_openai_errors(client, kwargs, error, fragment):
    request = {"model": MODEL, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 4, **kwargs}
    with pytest.raises(error, match=fragment) as raised:
        client.chat.completions.create(**request)
    assert raised.value.body["message"] and raised.value.body["type"] == "invalid_request_error"
