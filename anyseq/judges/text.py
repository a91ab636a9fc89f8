"""Reading the world's attributes back out of text: the judge of captions and text replies.

AnyGPT (Zhan et al., ACL 2024, section 5) scores captions with n-gram metrics against
references (CIDEr on COCO). AnyWorld knows what every picture and clip shows, so a
caption can also be checked attribute by attribute against the generator's labels:

- `scene_checks`: colour, shape and size of each object, its position (one object) or
  the relation between two, and the background of a shape scene;
- `music_checks`: instrument, tempo class, key and mode of a clip;
- `emoji` and `digits` captions: the emoji's Unicode name or the digit's word appears.

`ngram_scores` gives the paper's n-gram metrics with pycocoevalcap: CIDEr, BLEU-4 and
METEOR (METEOR runs Java; without it the score is None and the reason is returned).
SPICE is left out: it downloads Stanford CoreNLP models on first use, and this project
runs offline. `caption_checks` picks the checks by the item's source; photos have no labels to check.
`content_words` and `replies_agree` compare a text reply with a reference by the world
words they contain (attributes, numbers, speakers), which is what a dialogue turn's text
must get right. Everything is parsed from the world's own vocabulary
(`anyseq.world.images`, `music`, `speech`, `text`), never from a model.
"""

from __future__ import annotations

import atexit
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from anyseq.judges.speech import normalize_text
from anyseq.world.images import BACKGROUNDS, COLOURS, DIGIT_NAMES, POSITION_PHRASES, RELATIONS, SHAPES, SIZES
from anyseq.world.music import INSTRUMENTS, KEYS, MODES, PLAYERS, TEMPI
from anyseq.world.speech import VOICES
from anyseq.world.text import NUMBER_WORDS

Check = tuple[str, bool]  # (attribute, right)

_COLOUR = "|".join(COLOURS)
_SHAPE = "|".join(SHAPES)
_SIZE = "|".join(SIZES)
OBJECT_PATTERN = re.compile(rf"\b(?:({_SIZE}) )?({_COLOUR}) ({_SHAPE})s?\b")
BACKGROUND_PATTERN = re.compile(rf"\b({'|'.join(BACKGROUNDS)}) background\b")
RELATION_PATTERN = re.compile(rf"\b({'|'.join(sorted(RELATIONS, key=len, reverse=True))})\b")
INVERSE_RELATIONS = {
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
}
# positions by their phrase, longest first so "in the top left corner" wins over "at the top"
POSITION_OF_PHRASE = dict(sorted(((p, n) for n, p in POSITION_PHRASES.items()), key=lambda e: -len(e[0])))

# "in D flat minor": keys as normalised words, longest first so "d flat" wins over "d"
_KEY_OF_WORDS = {" ".join(normalize_text(k).split()): k for k in KEYS}
KEY_PATTERN = re.compile(
    rf"\bin ({'|'.join(sorted(_KEY_OF_WORDS, key=len, reverse=True))}) ({'|'.join(MODES)})\b"
)
# who plays: the instrument's own name, or how a chorale caption names an ensemble
_INSTRUMENT_OF_PHRASE = {
    **{normalize_text(phrase): name for name, phrase in PLAYERS.items()},
    **{name: name for name in INSTRUMENTS},
}
INSTRUMENT_PATTERN = re.compile(rf"\b({'|'.join(sorted(_INSTRUMENT_OF_PHRASE, key=len, reverse=True))})\b")
TEMPO_PATTERN = re.compile(rf"\b({'|'.join(TEMPI)})\b")


def parse_scene(text: str) -> dict[str, Any]:
    """The scene a caption describes: {"background", "objects": [{size, colour, shape}], "relation",
    "position"}; whatever the caption does not say is None (or absent from `objects`)."""
    words = normalize_text(text)
    objects = [
        {"size": size or None, "colour": colour, "shape": shape}
        for size, colour, shape in OBJECT_PATTERN.findall(words)
    ]
    background = BACKGROUND_PATTERN.search(words)
    relation = RELATION_PATTERN.search(words)
    position = next((name for phrase, name in POSITION_OF_PHRASE.items() if phrase in words), None)
    return {
        "background": background.group(1) if background else None,
        "objects": objects,
        "relation": relation.group(1) if relation else None,
        "position": position,
    }


def _object_checks(said: Mapping[str, Any] | None, truth: Mapping[str, Any]) -> list[Check]:
    said = said or {}
    return [(name, said.get(name) == truth[name]) for name in ("colour", "shape", "size")]


def scene_checks(text: str, labels: Mapping[str, Any]) -> list[Check]:
    """Each attribute of a shape scene's labels, and whether `text` states it rightly.

    One object: colour, shape, size, position, background. Two: colour, shape and size
    of each (in the labels' order), relation, background; a caption that names them the
    other way round with the inverse relation ("a blue square to the right of a red
    circle") is equally right.
    """
    said = parse_scene(text)
    truth = labels["objects"]
    checks: list[Check] = [("background", said["background"] == labels["background"])]
    if len(truth) == 1:
        first = said["objects"][0] if said["objects"] else None
        return [
            *_object_checks(first, truth[0]),
            ("position", said["position"] == truth[0]["position"]),
            *checks,
        ]
    objects = said["objects"][:2] + [None] * (2 - len(said["objects"][:2]))
    relation = said["relation"]
    if objects[1] is not None and [o["colour"] for o in objects] == [truth[1]["colour"], truth[0]["colour"]]:
        objects = objects[::-1]
        relation = INVERSE_RELATIONS.get(relation)
    per_object = [check for said_object, true_object in zip(objects, truth, strict=True)
                  for check in _object_checks(said_object, true_object)]  # fmt: skip
    return [*per_object, ("relation", relation == labels["relation"]), *checks]


def parse_music(text: str) -> dict[str, str | None]:
    """{"instrument", "tempo_word", "key", "mode"} named by a music caption (None when not said)."""
    words = normalize_text(text)
    instrument = INSTRUMENT_PATTERN.search(words)
    tempo = TEMPO_PATTERN.search(words)
    key = KEY_PATTERN.search(words)
    return {
        "instrument": _INSTRUMENT_OF_PHRASE[instrument.group(1)] if instrument else None,
        "tempo_word": tempo.group(1) if tempo else None,
        "key": _KEY_OF_WORDS[key.group(1)] if key else None,
        "mode": key.group(2) if key else None,
    }


def music_checks(text: str, labels: Mapping[str, Any]) -> list[Check]:
    """Instrument, tempo class, key and mode of a clip's labels, and whether `text` states them."""
    said = parse_music(text)
    return [
        ("instrument", said["instrument"] == labels["instrument"]),
        ("tempo", said["tempo_word"] == labels["tempo_word"]),
        ("key", said["key"] == labels["key"]),
        ("mode", said["mode"] == labels["mode"]),
    ]


def _contains(text: str, phrase: str) -> bool:
    return f" {normalize_text(phrase)} " in f" {normalize_text(text)} "


def emoji_checks(text: str, labels: Mapping[str, Any]) -> list[Check]:
    return [("name", _contains(text, labels["name"]))]


def digit_checks(text: str, labels: Mapping[str, Any]) -> list[Check]:
    return [("digit", _contains(text, DIGIT_NAMES[labels["digit"]]))]


# item source -> the checks of its captions (photos and user data have no attribute labels)
CAPTION_CHECKS: dict[str, Callable[[str, Mapping[str, Any]], list[Check]]] = {
    "shapes": scene_checks,
    "emoji": emoji_checks,
    "digits": digit_checks,
    "melody": music_checks,
    "chorale": music_checks,
    "folk": music_checks,
}


def caption_checks(text: str, source: str, labels: Mapping[str, Any]) -> list[Check]:
    """The attribute checks of a caption of an item from `source`; [] when it has none."""
    checks = CAPTION_CHECKS.get(source)
    return checks(text, labels) if checks else []


def _voice_words() -> frozenset[str]:
    words = {w for voice in VOICES.values() for w in normalize_text(voice.description).split()}
    return frozenset(words - {"a", "an", "from", "the"})


# single words that carry a world fact; keys are read by KEY_PATTERN (their letters are words too)
WORLD_WORDS = frozenset(
    {*COLOURS, *SHAPES, *SIZES, *BACKGROUNDS, *INSTRUMENTS, *TEMPI, *MODES, *NUMBER_WORDS}
    | {w for phrase in (*POSITION_PHRASES.values(), *RELATIONS) for w in phrase.split()}
    - {"in", "the", "at", "on", "of", "to"}
    | _voice_words()
)


def content_words(text: str) -> list[str]:
    """The world facts a text states, in order: attribute and number words, digits, and keys
    ("key:d flat minor")."""
    words = normalize_text(text)
    keys = [f"key:{key} {mode}" for key, mode in KEY_PATTERN.findall(words)]
    plain = KEY_PATTERN.sub(" ", words).split()
    return [w for w in plain if w in WORLD_WORDS or w.isdigit()] + keys


def replies_agree(reference: str, hypothesis: str) -> bool:
    """A text reply states the reference's facts: the same content words in the same order, or,
    when the reference states none ("Here it is."), the same words."""
    facts = content_words(reference)
    if facts:
        return content_words(hypothesis) == facts
    return normalize_text(reference) == normalize_text(hypothesis)


@cache
def _meteor() -> Any:
    """One METEOR process (Java, several seconds to start) for every call; it ends with Python."""
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()
    atexit.register(meteor.meteor_p.kill)
    return meteor


def ngram_scores(
    references: Sequence[str], hypotheses: Sequence[str], meteor: bool = True
) -> tuple[dict[str, float | None], list[str]]:
    """Corpus CIDEr-D, BLEU-4 and METEOR (x 100, as COCO papers and AnyGPT report them) of one
    hypothesis per reference, after `normalize_text` (in place of the PTB tokenizer, which
    needs Java too); and notes (why a metric is None). `meteor=False` skips METEOR."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    if len(references) != len(hypotheses) or not references:
        raise ValueError(
            f"need one hypothesis per reference (>0), got {len(hypotheses)} and {len(references)}"
        )
    # an empty hypothesis would be an empty METEOR line; a lone placeholder scores as a wrong word
    gts = {i: [normalize_text(r)] for i, r in enumerate(references)}
    res = {i: [normalize_text(h) or "nothing"] for i, h in enumerate(hypotheses)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    scores: dict[str, float | None] = {
        "cider": 100 * float(cider),
        "bleu4": 100 * float(bleu[3]),
        "meteor": None,
    }
    notes = [
        "SPICE is not reported: it downloads Stanford CoreNLP models on first use, and AnySeq runs offline."
    ]
    if not meteor:
        notes.append("METEOR is null: switched off for this run.")
    elif shutil.which("java") is None:
        notes.append("METEOR is null: it runs Java (meteor-1.5.jar) and no `java` is on the PATH.")
    else:
        scores["meteor"] = 100 * float(_meteor().compute_score(gts, res)[0])
    return scores, notes
