"""OpenAI messages -> conversations (media checked, not decoded), the reply policy, audio ids."""

import asyncio
import time

import pytest
import torch
from serve_helpers import data_url, png

from anyseq.api import AnySeq
from anyseq.conversation import Conversation, Media, Message, Text
from anyseq.serve.errors import ApiError
from anyseq.serve.limits import Limits
from anyseq.serve.messages import (
    AudioStore,
    encode_media,
    placeholder_conversation,
    read_request,
    respond_with,
)
from anyseq.serve.schemas import ChatCompletionRequest


@pytest.fixture(scope="module")
def model(checkpoint) -> AnySeq:
    return AnySeq.from_pretrained(checkpoint)


def read(model: AnySeq, messages: list[dict], store: AudioStore | None = None):
    request = ChatCompletionRequest(model="tiny", messages=messages)
    return asyncio.run(read_request(request, model.tokenizers, Limits(), store or AudioStore(60), "SYSTEM"))


def test_messages_become_a_conversation_with_undecoded_media(model):
    image = png()
    result = read(
        model,
        [
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is it?"},
                    {"type": "image_url", "image_url": {"url": data_url(image)}},
                ],
            },
        ],
    )
    conversation = result.conversation
    assert conversation.system == "Be brief.\nBe kind."
    assert conversation.messages == [Message("user", [Text("What is it?"), Media("image", source=image)])]
    ((param, media),) = result.media
    assert param == "messages[2].content[1]" and media.codes is None  # checked, not yet tokenized
    asyncio.run(encode_media(result.media, model.tokenizers))
    assert media.codes.shape == (1, 16)
    assert read(model, [{"role": "user", "content": "Hi"}]).conversation.system == "SYSTEM"


def test_tokenizing_bad_media_names_the_part(model):
    result = read(
        model, [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(png())}}]}]
    )
    result.media[0][1].source = b"\x89PNG broken"
    with pytest.raises(ApiError, match=r"messages\[0\].content\[0\]: ") as raised:
        asyncio.run(encode_media(result.media, model.tokenizers))
    assert raised.value.code == "invalid_media" and raised.value.status == 400


def test_placeholder_gives_a_lower_bound_of_the_prompt(model):
    audio = Media("speech", source=b"unread")
    image = Media("image", source=b"unread")
    conversation = Conversation([Message("user", [Text("Hi"), image, audio])], None)
    placeholder = placeholder_conversation(conversation, model.layout)
    image_codes, audio_codes = (
        placeholder.messages[0].content[1].codes,
        placeholder.messages[0].content[2].codes,
    )
    assert image_codes.shape == (1, 16)  # images: their fixed span, exactly
    assert audio_codes.shape == (1, 1)  # audio: one frame, the least it can be
    assert image.codes is None and audio.codes is None  # the original is untouched
    real = Conversation(
        [
            Message(
                "user",
                [
                    Text("Hi"),
                    Media("image", codes=image_codes),
                    Media("speech", codes=torch.zeros(1, 30, dtype=torch.long)),
                ],
            )
        ],
        None,
    )
    assert len(model.prompt_ids(placeholder)) == len(model.prompt_ids(real)) - 29


@pytest.mark.parametrize(
    ("text", "wanted", "expected"),
    [
        ("Draw a red circle.", {"text", "image"}, "image"),
        ("Please create an image of a cat", {"text", "image"}, "image"),
        ("Draw a red circle.", {"text"}, None),  # images not asked for
        ("Describe this picture of a cat", {"text", "image"}, None),  # not a request to draw
    ],
)
def test_reply_policy(text, wanted, expected):
    conversation = Conversation([Message("user", [Text(text)])], None)
    assert respond_with(conversation, wanted, {"image", "speech"}) == expected
    assert respond_with(conversation, wanted, {"speech"}) is None  # a model without images never draws


def test_audio_ids_bring_back_the_spoken_turn(model, monkeypatch):
    store = AudioStore(ttl_s=60)
    codes = torch.arange(10).reshape(1, 10)
    audio_id, expires_at = store.put("hello there", codes)
    assert expires_at >= time.time() + 59
    turns = [
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "audio": {"id": audio_id}},
        {"role": "user", "content": "Again"},
    ]
    spoken = read(model, turns, store).conversation.messages[1]
    assert spoken == Message("assistant", [Text("hello there"), Media("speech", codes=codes)])
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert store.get(audio_id) is None  # expired
    small = AudioStore(ttl_s=60, capacity=2)
    first, _ = small.put("a", codes)
    small.put("b", codes)
    small.put("c", codes)
    assert small.get(first) is None  # the oldest is dropped past the capacity
