"""AnyWorld's text: a small grammar of captions, commands, questions and answers.

The world's sentences are built from its own vocabulary (`images.COLOURS`, `SHAPES`,
`music.INSTRUMENTS`, keys, tempi), so speech, dialogues and the text tokenizer share one
closed language that a grammar-restricted recogniser can judge. Spoken sentences are
short (2 to 8 words, about 1 to 3 s), lower case and without punctuation: the
transcript is exactly what espeak-ng read. Every pair of a colour and a shape, or an
instrument and a mode, is drawn through the split's `WorldSampler`, so held-out pairs
appear only in held-out splits.
"""

from __future__ import annotations

import random
from typing import Any

from anyseq.world import images, music
from anyseq.world.images import article
from anyseq.world.sampler import WorldSampler

NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()
COLOUR_MIXES = {("blue", "yellow"): "green", ("red", "yellow"): "orange", ("blue", "red"): "purple"}


def spoken_sentence(s: WorldSampler) -> str:
    """One short sentence for a speech clip: a caption, command, question or answer."""
    rng = s.rng
    colour, shape = s.colour_shape()
    instrument, mode = s.instrument_mode()
    word = rng.choice(list(music.TEMPI))
    key = rng.choice(music.KEYS)
    sided = rng.choice(list(images.SIDES))
    position = images.POSITION_PHRASES[rng.choice(list(images.POSITIONS))]
    size = rng.choice(list(images.SIZES))
    background = rng.choice(list(images.BACKGROUNDS))
    other_colour = rng.choice([c for c in images.COLOURS if c != colour])
    other_instrument = rng.choice([i for i in music.MELODY_INSTRUMENTS if i != instrument])
    sentences = (
        # captions
        f"{article(colour)} {colour} {shape}",
        f"{article(size)} {size} {colour} {shape} on {background}",
        f"{article(word)} {word} {instrument} melody",
        f"{article(instrument)} {instrument} in {key} {mode}",
        # commands
        f"draw {article(colour)} {colour} {shape}",
        f"play {article(word)} {word} {instrument} melody",
        f"make it {other_colour}",
        f"play it on the {other_instrument}",
        f"move the {shape} {position}",
        rng.choice(("say it again", "play it faster", "play it slower", "make it bigger", "make it smaller")),
        # questions
        f"what colour is the {shape}",
        f"how many sides does {article(sided)} {sided} have",
        rng.choice(
            ("which instrument is playing", "is this melody fast or slow", "what key is this melody in")
        ),
        f"where is the {colour} {shape}",
        # answers
        f"the {shape} is {colour}",
        f"it is {article(instrument)} {instrument}",
        f"{article(sided)} {sided} has {NUMBER_WORDS[images.SIDES[sided]]} sides",
        f"it is in {key} {mode}",
        f"the melody is {word}",
        f"the {colour} {shape} is {position}",
    )
    return rng.choice(sentences)


def fact_question(s: WorldSampler) -> tuple[str, str]:
    """A text-only question about the world and its answer."""
    rng = s.rng
    kind = rng.randrange(4)
    if kind == 0:
        shape = rng.choice(list(images.SIDES))
        sides = NUMBER_WORDS[images.SIDES[shape]]
        return (
            f"How many sides does {article(shape)} {shape} have?",
            f"{article(shape).capitalize()} {shape} has {sides} sides.",
        )
    if kind == 1:
        instrument = rng.choice(music.MELODY_INSTRUMENTS)
        family = music.INSTRUMENT_FAMILIES[instrument]
        return f"What kind of instrument is the {instrument}?", f"The {instrument} is {family}."
    if kind == 2:
        (first, second), result = rng.choice(list(COLOUR_MIXES.items()))
        return f"What colour do you get when you mix {first} and {second}?", f"You get {result}."
    word = rng.choice(list(music.TEMPI))
    low, high = music.TEMPI[word]
    return f"How fast is a {word} tempo?", f"A {word} tempo is between {low} and {high} beats per minute."


def scene_question(labels: dict[str, Any], rng: random.Random) -> tuple[str, str]:
    """A question about a shape scene and its answer."""
    obj = labels["objects"][0]
    kind = rng.randrange(3)
    if kind == 0:
        return f"What colour is the {obj['shape']}?", f"The {obj['shape']} is {obj['colour']}."
    if kind == 1:
        return "What colour is the background?", f"The background is {labels['background']}."
    if len(labels["objects"]) == 1:
        return (
            "What shape is in the picture?",
            f"It is {article(obj['colour'])} {obj['colour']} {obj['shape']}.",
        )
    return "How many objects are there?", "There are two objects."


def music_question(labels: dict[str, Any], rng: random.Random) -> tuple[str, str]:
    """A question about a melody and its answer."""
    kind = rng.randrange(3)
    if kind == 0:
        return "What instrument is playing?", f"It is {article(labels['instrument'])} {labels['instrument']}."
    if kind == 1:
        return (
            "Is it fast or slow?",
            f"It is {labels['tempo_word']}, about {labels['tempo']} beats per minute.",
        )
    return "What key is it in?", f"It is in {labels['key']} {labels['mode']}."
