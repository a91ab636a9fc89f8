import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anyseq.checkpoint import hf_tokenizer
from anyseq.conversation import (
    Conversation,
    Media,
    Message,
    Text,
    media_ids,
    parse,
    parse_reply,
    render,
)

TEXTS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=25)


@st.composite
def conversations(draw, layout):
    messages = []
    for turn in range(draw(st.integers(1, 5))):
        parts = []
        for _ in range(draw(st.integers(0, 4))):
            if draw(st.booleans()):
                parts.append(Text(draw(TEXTS)))
            else:
                name = draw(st.sampled_from(sorted(layout.ranges)))
                spec = layout.spec(name)
                frames = (
                    spec.tokens_per_item // spec.num_codebooks
                    if spec.tokens_per_item
                    else draw(st.integers(1, spec.max_frames))
                )
                seed = draw(st.integers(0, 2**16))
                codes = torch.randint(
                    0,
                    spec.codebook_size,
                    (spec.num_codebooks, frames),
                    generator=torch.Generator().manual_seed(seed),
                )
                parts.append(Media(name, codes=codes))
        messages.append(Message("user" if turn % 2 == 0 else "assistant", parts))
    system = draw(st.one_of(st.none(), TEXTS.filter(lambda s: "\n" not in s and s)))
    return Conversation(messages, system)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_render_parse_round_trip(layout, data):
    conversation = data.draw(conversations(layout))
    rendered = render(conversation, layout)
    assert rendered.ids.shape == rendered.loss_mask.shape
    parsed = parse(rendered.ids, layout)
    assert parsed == conversation.normalized()
    assert torch.equal(render(parsed, layout).ids, rendered.ids)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_loss_mask_covers_exactly_the_assistant_turns(layout, data):
    conversation = data.draw(conversations(layout))
    rendered = render(conversation, layout, loss_on="assistant")
    ids = rendered.ids.tolist()
    expected = [False] * len(ids)
    assistant, human = layout.special("[AnyGPT]"), layout.special("[Human]")
    eom = layout.special("<eom>")
    inside = False
    for i, token in enumerate(ids):
        if token == assistant:
            inside = True
            continue
        if token == human:
            inside = False
        expected[i] = inside
        if token == eom:
            inside = False
    assert rendered.loss_mask.tolist() == expected
    assert render(conversation, layout, loss_on="all").loss_mask[1:].all()
    assert not render(conversation, layout, loss_on="all").loss_mask[0]  # bos is never a target


def test_render_encodes_media_sources(layout, tokenizers):
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[:, :, 0] = 255
    conversation = Conversation(
        [Message("user", [Text("Describe this."), Media("image", source=image)])], None
    )
    ids = render(conversation, layout, tokenizers).ids.tolist()
    start = ids.index(layout.start_of("image"))
    span = ids[start + 1 : ids.index(layout.end_of("image"))]
    assert len(span) == 16
    red = int(tokenizers["image"].encode(image)[0, 0])
    assert span == [layout.ranges["image"].start + red] * 16


def test_chat_template_matches_render_for_text(layout):
    conversation = Conversation(
        [
            Message("user", [Text("Hello! How are you today?")]),
            Message("assistant", [Text("A red circle on the left.")]),
            Message("user", [Text("Describe the scene.")]),
        ],
        system="You are helpful.",
    )
    messages = [{"role": "system", "content": conversation.system}] + [
        {"role": m.role, "content": m.content[0].text} for m in conversation.messages
    ]
    tokenizer = hf_tokenizer(layout)
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)["input_ids"]
    assert ids == render(conversation, layout, add_generation_prompt=True).ids.tolist()


def test_json_round_trip(layout):
    codes = torch.arange(8).reshape(4, 2) % 32
    conversation = Conversation(
        [
            Message("user", [Text("Play it"), Media("music", codes=codes)]),
            Message("assistant", [Media("image", description="a red circle")]),
        ]
    )
    restored = Conversation.from_dict(json.loads(json.dumps(conversation.to_dict())))
    assert restored == conversation
    assert restored.messages[1].content[0].description == "a red circle"
    with pytest.raises(ValueError, match="only a description"):
        render(restored, layout)


def test_malformed_spans_are_named(layout):
    soim, eoim = layout.start_of("image"), layout.end_of("image")
    image_id = layout.ranges["image"].start
    with pytest.raises(ValueError, match="image span opened at position 0 is never closed"):
        parse_reply([soim, image_id], layout)
    with pytest.raises(ValueError, match="image: id .* is outside its range"):
        parse_reply([soim] + [layout.ranges["music"].start] * 16 + [eoim], layout)
    with pytest.raises(ValueError, match="image: a span must have 16 tokens, got 1"):
        parse_reply([soim, image_id, eoim], layout)
    with pytest.raises(ValueError, match="unexpected token"):
        parse_reply([image_id], layout)
    with pytest.raises(ValueError, match="a span must have 16 tokens, got 3"):
        media_ids(layout, "image", torch.zeros((1, 3), dtype=torch.long))
    with pytest.raises(ValueError, match="no tokenizer for modality 'speech'"):
        render(Conversation([Message("user", [Media("speech", source="x.wav")])]), layout, {})
    with pytest.raises(ValueError, match="role must be one of"):
        Message("system", [])
    human = layout.special("[Human]")
    with pytest.raises(ValueError, match="user turn at position 1 has no <eoh>"):
        parse([layout.bos_id, human, *layout.encode_text(": hi")], layout)
