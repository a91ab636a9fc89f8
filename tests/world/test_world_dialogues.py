"""Dialogue scripts: every input -> output pair, follow-ups that refer to earlier turns,
spoken replies with voice prompts, the spoken variant, the picture <-> music rule."""

from __future__ import annotations

import random

import pytest

from anyseq.conversation import Media, Text
from anyseq.world import dialogues, images
from anyseq.world.config import WorldConfig
from anyseq.world.dialogues import PAIRS, exchange_pairs, write_script
from anyseq.world.sampler import WorldSampler

EMOJI = [images.Emoji("\N{DOG FACE}", "dog face"), images.Emoji("\N{RED APPLE}", "red apple")]


def config(spoken: float = 0.0, turns: tuple[int, int] = (2, 5)) -> WorldConfig:
    return WorldConfig.from_preset("micro", instruct={"spoken_fraction": spoken, "turns": list(turns)})


def scripts(count: int, spoken: float = 0.0, split: str = "train", turns=(2, 5)):
    world = config(spoken, turns)
    for index in range(count):
        sampler = WorldSampler(world, split, random.Random(index))
        yield write_script(sampler, EMOJI, PAIRS[index % len(PAIRS)])


@pytest.mark.parametrize("pair", PAIRS)
def test_every_input_output_pair_has_a_first_exchange(pair):
    for seed in range(5):
        script = write_script(WorldSampler(config(), "train", random.Random(seed)), EMOJI, pair)
        assert script.pair == pair == script.turn_pairs[0]
        first, reply = script.conversation.messages[:2]
        assert first.role == "user" and reply.role == "assistant"


def test_scripts_are_descriptions_with_one_request_each():
    for script in scripts(64):
        media = [p for m in script.conversation.messages for p in m.content if isinstance(p, Media)]
        prompts = [r for r in script.requests if r.description.startswith("voice prompt")]
        assert len(media) + len(prompts) == len(script.requests)
        for part, request in zip(media, script.requests, strict=False):
            assert part.source is None and part.codes is None
            assert part.description == request.description and part.modality == request.modality
        assert 2 <= len(script.turn_pairs) <= 5 and script.turn_pairs == exchange_pairs(script.conversation)


def test_follow_ups_refer_to_earlier_turns():
    found = set()
    for script in scripts(400, turns=(5, 5)):
        messages = script.conversation.messages
        requests = iter(script.requests)
        last: dict[str, dialogues.MediaRequest] = {}
        for user, reply in zip(messages[::2], messages[1::2], strict=True):
            said = user.content[0].text if isinstance(user.content[0], Text) else ""
            media = [next(requests) for part in user.content + reply.content if isinstance(part, Media)]
            answer = media[-1] if media and isinstance(reply.content[-1], Media) else None
            if said.startswith("Now make it ") and "image" in last:
                colour = said.removeprefix("Now make it ").rstrip(".")
                before, after = last["image"].labels["objects"][0], answer.labels["objects"][0]
                assert after == {**before, "colour": colour}
                found.add("recolour")
            elif said == "What instrument was that?":
                instrument = last["music"].labels["instrument"]
                assert reply.content[0].text == f"That was {images.article(instrument)} {instrument}."
                found.add("instrument")
            elif said == "Say it again in a deeper voice.":
                before = last["speech"].labels
                assert answer.labels["text"] == before["text"] and answer.labels["voice"] == before["voice"]
                assert answer.labels["pitch"] < before["pitch"] or before["pitch"] == 0
                found.add("deeper")
            elif said in ("Now play it faster.", "Now play it slower."):
                before, after = last["music"].labels, answer.labels
                assert after["melody"] == before["melody"] and (after["tempo"] > before["tempo"]) == (
                    "faster" in said
                )
                found.add("tempo")
            for request in media:
                if request.kind != "speech" or request.voice_prompt is not None:
                    last[request.modality] = request
    assert found == {"recolour", "instrument", "deeper", "tempo"}


def test_spoken_replies_come_with_a_voice_prompt_in_the_same_voice():
    checked = 0
    for script in scripts(100):
        for request in script.requests:
            if request.voice_prompt is None:
                continue
            prompt = script.requests[request.voice_prompt]
            assert prompt.description.startswith("voice prompt")
            assert {k: prompt.labels[k] for k in ("voice", "rate", "pitch")} == {
                k: request.labels[k] for k in ("voice", "rate", "pitch")
            }
            checked += 1
    assert checked > 20


def test_spoken_variant_speaks_every_user_turn():
    spoken = list(scripts(80, spoken=1.0))
    assert all(s.spoken for s in spoken)
    for script in spoken:
        for message in script.conversation.messages[::2]:
            assert not any(isinstance(p, Text) for p in message.content)
            assert message.content[0].modality == "speech"


def test_picture_music_rule_in_both_directions():
    for seed in range(20):
        script = write_script(WorldSampler(config(), "train", random.Random(seed)), EMOJI, "image->music")
        picture, tune = script.requests[:2]
        obj = picture.labels["objects"][0]
        assert tune.labels["instrument"] == dialogues.COLOUR_INSTRUMENT[obj["colour"]]
        assert tune.labels["mode"] == dialogues.BACKGROUND_MODE[picture.labels["background"]]
        assert tune.labels["tempo_word"] == dialogues.SIZE_TEMPO[obj["size"]]
        assert tune.labels["key"] == dialogues.SHAPE_KEY[obj["shape"]]
        script = write_script(WorldSampler(config(), "train", random.Random(seed)), EMOJI, "music->image")
        tune, picture = script.requests[:2]
        obj = picture.labels["objects"][0]
        assert dialogues.COLOUR_INSTRUMENT[obj["colour"]] == tune.labels["instrument"]
        assert dialogues.MODE_BACKGROUND[tune.labels["mode"]] == picture.labels["background"]


def test_heldout_dialogues_use_only_heldout_attributes():
    world = config()
    held_pairs = set(world.heldout.colour_shape)
    held_music = set(world.heldout.instrument_mode)
    for index in range(64):
        sampler = WorldSampler(world, "heldout_attributes", random.Random(index))
        script = write_script(sampler, EMOJI, PAIRS[index % len(PAIRS)])
        for request in script.requests:
            if request.kind == "shapes":
                assert {(o["colour"], o["shape"]) for o in request.labels["objects"]} & held_pairs
            elif request.kind == "speech":
                assert request.labels["voice"] in world.heldout.voices
            elif request.kind == "melody":
                assert (request.labels["instrument"], request.labels["mode"]) in held_music
