"""AnyInstruct-style dialogues: written as text scripts, then every media description rendered.

AnyInstruct (AnyGPT, section 4.2) was made in two steps: GPT-4 wrote 108k multi-turn
dialogues in text in which each picture, voice and piece of music was a description,
then DALL-E 3, Azure TTS and MusicGen rendered the descriptions. AnyWorld does the
same with its own engines:

1. `write_script` writes a dialogue of 2 to 5 exchanges as a `Conversation` whose media
   parts carry only a `description`; each one is paired with a `MediaRequest` (what the
   renderer draws, as generator labels). The first exchange is one of the 16
   input -> output combinations of text, image, speech and music (`PAIRS`); later ones
   are follow-ups that refer to earlier turns ("Now make it green.", "What instrument
   was that?", "Say it again in a deeper voice.") or new requests. Spoken replies carry
   their text, then the speech (as AnyGPT's), and a voice prompt in the same voice; in
   the spoken variant every user instruction is speech.
2. `render_script` renders every request with the generators (shapes, emoji, espeak-ng,
   FluidSynth; all music of a shard in one FluidSynth call).

A small world rule links pictures and music, so image->music and music->image have a
right answer: colour <-> instrument, background <-> mode, size <-> tempo, shape <-> key.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anyseq.conversation import Conversation, Media, Message, Part, Text
from anyseq.world import images, music, speech, text
from anyseq.world.images import article
from anyseq.world.sampler import WorldSampler

MODALITIES = ("text", "image", "speech", "music")
PAIRS = tuple(f"{a}->{b}" for a in MODALITIES for b in MODALITIES)

# The world rule between pictures and music (single-object scenes, generated melodies).
COLOUR_INSTRUMENT = {
    "red": "trumpet",
    "orange": "marimba",
    "yellow": "flute",
    "green": "clarinet",
    "blue": "cello",
    "purple": "organ",
    "pink": "violin",
    "brown": "guitar",
}
BACKGROUND_MODE = {"white": "major", "gray": "major", "black": "minor"}
SIZE_TEMPO = {"small": "fast", "medium": "moderate", "large": "slow"}
SHAPE_KEY = {
    "circle": "C",
    "square": "D",
    "triangle": "E",
    "star": "F",
    "hexagon": "G",
    "diamond": "A",
    "cross": "B flat",
    "heart": "E flat",
}
MODE_BACKGROUND = {"major": "white", "minor": "black"}


def _invert(mapping: dict[str, str]) -> dict[str, str]:
    return {value: key for key, value in mapping.items()}


@dataclass
class MediaRequest:
    """What to render: a generator (`kind`) and its labels, with the script's description."""

    modality: str  # "image" | "speech" | "music"
    kind: str  # "shapes" | "emoji" | "speech" | "melody"
    labels: dict[str, Any]
    caption: str  # what the media shows or says, in the world's words
    description: str  # how the script refers to it
    voice_prompt: int | None = None  # for a spoken reply: index of its voice prompt in Script.requests


@dataclass
class Script:
    """A dialogue before rendering. `requests[i]` belongs to the i-th media part of the
    conversation (in reading order); voice prompts follow, outside the conversation."""

    template: str
    pair: str  # the first exchange's input -> output
    spoken: bool
    conversation: Conversation
    requests: list[MediaRequest]
    turn_pairs: list[str]  # input -> output of every exchange
    follow_ups: int


def sentence_case(phrase: str) -> str:
    phrase = phrase.strip()
    phrase = phrase[:1].upper() + phrase[1:]
    return phrase if phrase.endswith((".", "?", "!")) else phrase + "."


@dataclass
class _Writer:
    sampler: WorldSampler
    emoji: list[images.Emoji]
    spoken: bool
    messages: list[Message] = field(default_factory=list)
    requests: list[MediaRequest] = field(default_factory=list)
    prompts: list[MediaRequest] = field(default_factory=list)
    user_delivery: dict[str, Any] = field(default_factory=dict)
    reply_delivery: dict[str, Any] = field(default_factory=dict)
    # what later turns may refer to
    image: dict[str, Any] | None = None  # last scene labels (single object) or emoji labels
    melody: dict[str, Any] | None = None
    spoken_reply: dict[str, Any] | None = None  # labels of the last spoken reply
    heard: dict[str, Any] | None = None  # labels of the last speech the user played
    last_text: str | None = None  # the last reply's text, when it had no media
    used: set[str] = field(default_factory=set)  # follow-ups already asked

    def __post_init__(self) -> None:
        self.user_delivery = self.sampler.delivery()
        self.reply_delivery = self.sampler.delivery()

    @property
    def rng(self) -> random.Random:
        return self.sampler.rng

    # media descriptions -------------------------------------------------------------
    def scene(self, labels: dict[str, Any]) -> MediaRequest:
        caption = images.scene_phrase(labels)
        return MediaRequest("image", "shapes", labels, caption, f"a picture of {caption}")

    def emoji_image(self, emoji: images.Emoji) -> MediaRequest:
        labels = images.emoji_labels(emoji, self.rng)
        caption = f"{article(emoji.name)} {emoji.name} emoji"
        return MediaRequest("image", "emoji", labels, caption, f"a picture of {caption}")

    def voice(self, words: str, delivery: dict[str, Any]) -> MediaRequest:
        labels = {"text": words, **delivery}
        who = speech.VOICES[delivery["voice"]].description
        return MediaRequest("speech", "speech", labels, words, f'{who} saying "{words}"')

    def tune(self, labels: dict[str, Any]) -> MediaRequest:
        caption = music.music_caption(labels, self.rng)
        return MediaRequest("music", "melody", labels, caption, f"a clip of {caption}")

    # turns -------------------------------------------------------------------------
    def user(self, instruction: str, media: MediaRequest | None = None) -> None:
        parts: list[Part] = []
        if self.spoken:
            parts.append(self._media(self.voice(instruction.lower().rstrip(".?!"), self.user_delivery)))
        else:
            parts.append(Text(f"{instruction} " if media else instruction))
        if media is not None:
            parts.append(self._media(media))
            if media.kind == "speech":
                self.heard = media.labels
            elif media.kind == "melody":
                self.melody = media.labels
            else:
                self.image = media.labels
        self.messages.append(Message("user", parts))

    def user_speech(self, words: str) -> None:
        """A user turn that is only a spoken instruction (speech is the input in any variant)."""
        self.messages.append(Message("user", [self._media(self.voice(words, self.user_delivery))]))

    def reply(self, answer: str, media: MediaRequest | None = None) -> None:
        parts: list[Part] = [Text(answer)]
        if media is not None:
            parts.append(self._media(media))
            if media.kind == "melody":
                self.melody = media.labels
            elif media.modality == "image":
                self.image = media.labels
        self.messages.append(Message("assistant", parts))
        self.last_text = answer if media is None else None

    def say(self, answer: str, delivery: dict[str, Any] | None = None) -> None:
        """A spoken reply: the text of the answer, then its speech, with a voice prompt."""
        delivery = delivery or self.reply_delivery
        request = self.voice(answer.lower().rstrip(".?!"), delivery)
        request.voice_prompt = self._prompt(delivery)
        self.reply(answer, request)
        self.spoken_reply = {**request.labels, "answer": answer}

    def _prompt(self, delivery: dict[str, Any]) -> int:
        for index, prompt in enumerate(self.prompts):
            if all(prompt.labels[k] == delivery[k] for k in ("voice", "rate", "pitch")):
                return index
        words = text.spoken_sentence(self.sampler)
        prompt = self.voice(words, delivery)
        prompt.description = f"voice prompt: {prompt.description}"
        self.prompts.append(prompt)
        return len(self.prompts) - 1

    def _media(self, request: MediaRequest) -> Media:
        self.requests.append(request)
        return Media(request.modality, description=request.description)

    # world content -----------------------------------------------------------------
    def single_scene(self) -> dict[str, Any]:
        return self.sampler.scene(two_objects=False)

    def any_picture(self) -> MediaRequest:
        if self.emoji and self.rng.random() < 0.25:
            return self.emoji_image(self.rng.choice(self.emoji))
        return self.scene(self.sampler.scene())


# First exchanges, one per input -> output pair (in the text form; the spoken variant
# turns a text instruction into speech). Each writes one user turn and one reply.
def _text_text(w: _Writer) -> None:
    question, answer = text.fact_question(w.sampler)
    w.user(question)
    w.reply(answer)


def _text_image(w: _Writer) -> None:
    picture = w.any_picture()
    if picture.kind == "emoji":
        w.user(f"Show me the {picture.labels['name']} emoji.")
        w.reply("Here it is.", picture)
    else:
        w.user(sentence_case(f"draw {picture.caption}"))
        w.reply("Here is the picture.", picture)


def _text_speech(w: _Writer) -> None:
    if w.rng.random() < 0.5:
        words = text.spoken_sentence(w.sampler)
        w.user(f"Read this out loud: {words}")
        w.say(sentence_case(words))
    else:
        question, answer = text.fact_question(w.sampler)
        w.user(f"Answer out loud: {question}")
        w.say(answer)


def _text_music(w: _Writer) -> None:
    tune = w.tune(w.sampler.melody())
    w.user(sentence_case(f"play {tune.caption}"))
    w.reply("Here is the music.", tune)


def _image_text(w: _Writer) -> None:
    picture = w.any_picture()
    if picture.kind == "emoji":
        w.user("What does this emoji show?", picture)
        w.reply(f"It shows {article(picture.labels['name'])} {picture.labels['name']}.")
    elif w.rng.random() < 0.5:
        w.user("What is in this picture?", picture)
        w.reply(sentence_case(images.shape_caption(picture.labels, w.rng)))
    else:
        question, answer = text.scene_question(picture.labels, w.rng)
        w.user(question, picture)
        w.reply(answer)


def _recolour(w: _Writer, labels: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A new colour for a single-object scene that keeps the split's held-out rule."""
    shape = labels["objects"][0]["shape"]
    colours = [
        c for c in images.COLOURS if c != labels["objects"][0]["colour"] and w.sampler.allows(c, shape)
    ]
    colour = w.rng.choice(colours) if colours else labels["objects"][0]["colour"]
    return colour, {**labels, "objects": [{**labels["objects"][0], "colour": colour}]}


def _image_image(w: _Writer) -> None:
    labels = w.single_scene()
    if w.rng.random() < 0.5:
        colour, edited = _recolour(w, labels)
        instruction = f"Make the {labels['objects'][0]['shape']} {colour}."
    else:
        background = w.rng.choice([b for b in images.BACKGROUNDS if b != labels["background"]])
        edited = {**labels, "background": background}
        instruction = f"Put it on a {background} background."
    w.user(instruction, w.scene(labels))
    w.reply("Here is the new picture.", w.scene(edited))


def _image_speech(w: _Writer) -> None:
    picture = w.scene(w.sampler.scene())
    w.user("Describe this picture out loud.", picture)
    w.say(sentence_case(picture.caption))


def _image_music(w: _Writer) -> None:
    # a single-object scene whose colour-shape pair and whose music the split may both hold
    choices = [
        (colour, shape, size, background)
        for colour, instrument in COLOUR_INSTRUMENT.items()
        for shape in images.SHAPES
        for size in images.SIZES
        for background, mode in BACKGROUND_MODE.items()
        if w.sampler.allows(colour, shape) and w.sampler.allows_music(instrument, mode)
    ]
    colour, shape, size, background = w.rng.choice(choices)
    position = w.rng.choice(list(images.POSITIONS))
    obj = images.scene_object(shape, colour, size, position, w.rng)
    scene = {"background": background, "objects": [obj], "relation": None}
    attributes = {
        "instrument": COLOUR_INSTRUMENT[colour],
        "mode": BACKGROUND_MODE[background],
        "tempo_word": SIZE_TEMPO[size],
        "key": SHAPE_KEY[shape],
    }
    w.user("Play music that fits this picture.", w.scene(scene))
    tune = w.tune(w.sampler.melody(**attributes))
    w.reply(sentence_case(f"here is {tune.caption}"), tune)


def _speech_text(w: _Writer) -> None:
    kind = w.rng.randrange(3)
    if kind == 0:
        heard = w.voice(text.spoken_sentence(w.sampler), w.sampler.delivery())
        w.user("What did the speaker say?", heard)
        w.reply(sentence_case(heard.labels["text"]))
    elif kind == 1:
        heard = w.voice(text.spoken_sentence(w.sampler), w.sampler.delivery())
        w.user("Who is speaking?", heard)
        w.reply(sentence_case(f"it is {speech.VOICES[heard.labels['voice']].description}"))
    else:
        question, answer = text.fact_question(w.sampler)
        w.user_speech(question.lower().rstrip("?"))
        w.reply(answer)


def _speech_image(w: _Writer) -> None:
    labels = w.single_scene()
    obj = labels["objects"][0]
    w.user_speech(f"draw {article(obj['colour'])} {obj['colour']} {obj['shape']} on {labels['background']}")
    w.reply("Here is the picture.", w.scene(labels))


def _speech_speech(w: _Writer) -> None:
    question, answer = text.fact_question(w.sampler)
    w.user_speech(question.lower().rstrip("?"))
    w.say(answer)


def _speech_music(w: _Writer) -> None:
    labels = w.sampler.melody()
    w.user_speech(
        f"play {article(labels['tempo_word'])} {labels['tempo_word']} {labels['instrument']} melody"
    )
    w.reply("Here is the music.", w.tune(labels))


def _music_text(w: _Writer) -> None:
    tune = w.tune(w.sampler.melody())
    if w.rng.random() < 0.4:
        w.user("Describe this music.", tune)
        w.reply(sentence_case(tune.caption))
    else:
        question, answer = text.music_question(tune.labels, w.rng)
        w.user(question, tune)
        w.reply(answer)


def _music_image(w: _Writer) -> None:
    # a melody whose instrument-mode pair and whose picture the split may both hold
    choices = [
        (instrument, mode, key)
        for colour, instrument in COLOUR_INSTRUMENT.items()
        for mode in MODE_BACKGROUND
        for shape, key in SHAPE_KEY.items()
        if w.sampler.allows(colour, shape) and w.sampler.allows_music(instrument, mode)
    ]
    instrument, mode, key = w.rng.choice(choices)
    labels = w.sampler.melody(instrument=instrument, mode=mode, key=key)
    size = _invert(SIZE_TEMPO)[labels["tempo_word"]]
    colour, shape = _invert(COLOUR_INSTRUMENT)[instrument], _invert(SHAPE_KEY)[key]
    scene = {
        "background": MODE_BACKGROUND[mode],
        "objects": [images.scene_object(shape, colour, size, "center", w.rng)],
        "relation": None,
    }
    w.user("Draw a picture for this music.", w.tune(labels))
    w.reply("Here is a picture for it.", w.scene(scene))


def _music_speech(w: _Writer) -> None:
    tune = w.tune(w.sampler.melody())
    w.user("Tell me out loud what you hear.", tune)
    w.say(sentence_case(tune.caption))


def _music_music(w: _Writer) -> None:
    labels = w.sampler.melody()
    edited, request = _music_edit(w, labels)
    w.user(request, w.tune(labels))
    w.reply("Here it is.", w.tune(edited))


def _music_edit(w: _Writer, labels: dict[str, Any]) -> tuple[dict[str, Any], str]:
    seconds = w.sampler.config.music.seconds
    if w.rng.random() < 0.5:
        allowed = [
            i
            for i in music.MELODY_INSTRUMENTS
            if i != labels["instrument"] and w.sampler.allows_music(i, labels["mode"])
        ]
        if allowed:
            instrument = w.rng.choice(allowed)
            return music.edit_melody(
                labels, seconds, instrument=instrument
            ), f"Play it on the {instrument} instead."
    faster = labels["tempo_word"] != "fast"
    word = {"slow": "moderate", "moderate": "fast", "fast": "moderate"}[labels["tempo_word"]]
    return music.edit_melody(
        labels, seconds, tempo_word=word
    ), "Now play it faster." if faster else "Now play it slower."


FIRST: dict[str, Callable[[_Writer], None]] = {
    "text->text": _text_text,
    "text->image": _text_image,
    "text->speech": _text_speech,
    "text->music": _text_music,
    "image->text": _image_text,
    "image->image": _image_image,
    "image->speech": _image_speech,
    "image->music": _image_music,
    "speech->text": _speech_text,
    "speech->image": _speech_image,
    "speech->speech": _speech_speech,
    "speech->music": _speech_music,
    "music->text": _music_text,
    "music->image": _music_image,
    "music->speech": _music_speech,
    "music->music": _music_music,
}


# Follow-ups: each refers to an earlier turn; offered only when that turn exists.
def _follow_ups(w: _Writer) -> list[Callable[[_Writer], None]]:
    out: list[Callable[[_Writer], None]] = []
    if w.image is not None and "objects" in w.image and len(w.image["objects"]) == 1:
        out += [_recolour_follow_up, _background_question]
    if w.melody is not None:
        out += [_instrument_question, _melody_edit_follow_up]
    if w.spoken_reply is not None:
        out += [_deeper_voice, _slower_voice]
    if w.heard is not None:
        out.append(_speaker_question)
    if w.last_text is not None:
        out.append(_say_that)
    return [f for f in out if f.__name__ not in w.used]


def _recolour_follow_up(w: _Writer) -> None:
    colour, edited = _recolour(w, w.image)
    w.user(f"Now make it {colour}.")
    w.reply(f"Here is the {colour} {edited['objects'][0]['shape']}.", w.scene(edited))


def _background_question(w: _Writer) -> None:
    w.user("What colour was the background?")
    w.reply(f"The background was {w.image['background']}.")


def _instrument_question(w: _Writer) -> None:
    w.user("What instrument was that?")
    w.reply(f"That was {article(w.melody['instrument'])} {w.melody['instrument']}.")


def _melody_edit_follow_up(w: _Writer) -> None:
    edited, request = _music_edit(w, w.melody)
    w.user(request)
    w.reply("Here it is.", w.tune(edited))


def _deeper_voice(w: _Writer) -> None:
    last = w.spoken_reply
    delivery = {"voice": last["voice"], "rate": last["rate"], "pitch": speech.deeper(last["pitch"])}
    w.user("Say it again in a deeper voice.")
    w.say(last["answer"], delivery)


def _slower_voice(w: _Writer) -> None:
    last = w.spoken_reply
    delivery = {"voice": last["voice"], "rate": max(100, last["rate"] - 50), "pitch": last["pitch"]}
    w.user("Say it more slowly.")
    w.say(last["answer"], delivery)


def _speaker_question(w: _Writer) -> None:
    w.user("What kind of voice was that?")
    w.reply(sentence_case(f"it was {speech.VOICES[w.heard['voice']].description}"))


def _say_that(w: _Writer) -> None:
    w.user("Say that out loud.")
    w.say(w.last_text)


def write_script(sampler: WorldSampler, emoji: list[images.Emoji], pair: str | None = None) -> Script:
    """Step 1: a dialogue script whose media are descriptions (`pair` picks the first exchange)."""
    rng = sampler.rng
    config = sampler.config.instruct
    pair = pair or rng.choice(PAIRS)
    spoken = rng.random() < config.spoken_fraction
    w = _Writer(sampler, emoji, spoken)
    low, high = config.turns
    # shorter dialogues are commoner (and cheaper in tokens): weights high-low+1, ..., 1
    exchanges = rng.choices(range(low, high + 1), weights=range(high - low + 1, 0, -1))[0]
    FIRST[pair](w)
    follow_ups = 0
    for _ in range(exchanges - 1):
        options = _follow_ups(w)
        if options and rng.random() < 0.7:
            follow_up = rng.choice(options)
            w.used.add(follow_up.__name__)
            follow_up(w)
            follow_ups += 1
        else:
            FIRST[rng.choice(PAIRS)](w)
    for request in w.requests:
        if request.voice_prompt is not None:
            request.voice_prompt += len(w.requests)  # prompts follow the conversation's media
    conversation = Conversation(w.messages)
    turn_pairs = exchange_pairs(conversation)
    return Script(
        template=pair,
        pair=turn_pairs[0],
        spoken=spoken,
        conversation=conversation,
        requests=[*w.requests, *w.prompts],
        turn_pairs=turn_pairs,
        follow_ups=follow_ups,
    )


def exchange_pairs(conversation: Conversation) -> list[str]:
    """ "input->output" of every user turn and the reply after it: a turn's modality is that
    of its last media part ("text" if none), so a spoken instruction about a picture is
    image input, and a reply of text then speech is speech output."""

    def modality(message: Message) -> str:
        media = [part.modality for part in message.content if isinstance(part, Media)]
        return media[-1] if media else "text"

    pairs = []
    for message in conversation.messages:
        if message.role == "user":
            pairs.append(f"{modality(message)}->")
        elif pairs and pairs[-1].endswith("->"):
            pairs[-1] += modality(message)
    return [pair for pair in pairs if not pair.endswith("->")]


@dataclass
class RenderedMedia:
    modality: str
    media: Any  # PIL image or Audio
    labels: dict[str, Any]


def render_requests(
    requests: list[MediaRequest], image_size: int, sample_rate: int, seconds: float
) -> list[RenderedMedia]:
    """Step 2: draw every request; all melodies go to FluidSynth in one call."""
    melodies = [r for r in requests if r.kind == "melody"]
    clips = iter(
        music.render_scores([music.Score.from_labels(r.labels) for r in melodies], sample_rate, seconds)
    )
    out = []
    for request in requests:
        labels = request.labels
        if request.kind == "melody":
            out.append(RenderedMedia("music", next(clips), labels))
        elif request.kind == "shapes":
            out.append(RenderedMedia("image", images.render_shape_scene(labels, image_size), labels))
        elif request.kind == "emoji":
            out.append(RenderedMedia("image", images.render_emoji_labels(labels, image_size), labels))
        elif request.kind == "speech":
            clip = speech.synthesize(
                labels["text"], labels["voice"], labels["rate"], labels["pitch"], sample_rate
            )
            labels = {**labels, "phonemes": clip.phonemes, "duration": round(clip.audio.duration, 4)}
            out.append(RenderedMedia("speech", clip.audio, labels))
        else:
            raise ValueError(f"no renderer for media kind {request.kind!r}")
    return out
