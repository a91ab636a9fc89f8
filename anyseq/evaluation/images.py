"""Image tasks: captioning and text-to-image (AnyGPT, section 5.2: COCO CIDEr and CLIPscore).

- caption: the model captions each picture of a split (AnyGPT's instruction "Describe
  the scene in this picture."); scored by CIDEr, BLEU-4 and METEOR against the stored
  caption, and by attribute accuracy: each labelled attribute read back from the
  caption (`anyseq.judges.text`). Ceilings: the attribute judge on the reference
  captions, and the n-gram metrics of an oracle caption (the same labels written by the
  world's caption grammar with another random template), since one reference caption
  scored against itself says nothing.
- text_to_image: the model draws each caption of the shape scenes and emoji; a scene is
  checked by the pixel-level judge (`anyseq.judges.image`), an emoji by retrieval among
  the world's rendered emoji (`anyseq.judges.emoji`). Ceilings: the judges on the
  original pictures; `roundtrip_*` metrics: on the pictures through the model's image
  tokenizer and back, the best the model could draw.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from anyseq.evaluation.harness import (
    Entry,
    Evaluation,
    Sample,
    attribute_metrics,
    fraction,
    media_output,
    per_attribute,
    reply_text,
    too_long_note,
)
from anyseq.judges.image import judge_shape_scene
from anyseq.judges.text import Check, caption_checks, ngram_scores
from anyseq.world import images
from anyseq.world.dataset import Item

SCENE_ATTRIBUTES = ("colour", "shape", "size", "position", "background", "count")

# source -> an oracle caption of an item: its labels written by the world's caption grammar
ORACLES: dict[str, Callable[[Item, random.Random], str]] = {
    "shapes": lambda item, rng: images.shape_caption(item.labels, rng),
    "emoji": lambda item, rng: images.emoji_caption(
        images.Emoji(item.labels["char"], item.labels["name"]), rng
    ),
    "digits": lambda item, rng: images.digit_caption(item.labels["digit"], rng),
}


def oracle_caption(item: Item, rng: random.Random) -> str:
    """A right caption in a random template; the stored caption where the world has no grammar."""
    oracle = ORACLES.get(item.source)
    return oracle(item, rng) if oracle else item.text


def caption(ev: Evaluation, split: str) -> Entry | None:
    items = ev.items("image", split)
    if not items:
        return None
    conversations = [ev.request("image_caption", media=item.media) for item in items]
    replies = ev.generate(f"caption/{split}", conversations, ev.config.max_text_tokens)
    outputs = [reply_text(r) for r in replies]
    references = [item.text for item in items]
    checks = [caption_checks(o, item.source, item.labels) for o, item in zip(outputs, items, strict=True)]
    truth = [caption_checks(item.text, item.source, item.labels) for item in items]
    rng = random.Random(f"oracle-captions/{ev.config.seed}/{split}")
    scores, notes = ngram_scores(references, outputs, ev.config.meteor)
    oracle_scores, _ = ngram_scores(
        references, [oracle_caption(item, rng) for item in items], ev.config.meteor
    )
    metrics = {**attribute_metrics(checks), **scores}
    ceilings = {**attribute_metrics(truth), **oracle_scores}
    unchecked = sum(not c for c in truth)
    if unchecked:
        notes.append(
            f"{unchecked} of {len(items)} pictures have no attribute labels (photos); n-gram metrics only"
        )
    notes.append("n-gram ceilings: an oracle caption (the labels in another template of the world's grammar)")
    samples = []
    for i in ev.sample_indices(len(items)):
        verdict = ", ".join(f"{name} {'ok' if ok else 'wrong'}" for name, ok in checks[i]) or "no labels"
        media = {"input": ev.save_media("caption", split, f"{i:03d}-input", items[i].media)}
        samples.append(Sample(items[i].source, references[i], outputs[i], verdict, media))
    return Entry(
        "caption",
        split,
        len(items),
        "attribute_accuracy",
        metrics["attribute_accuracy"],
        ceilings["attribute_accuracy"],
        metrics=metrics,
        ceilings=ceilings,
        notes=[*notes, *too_long_note(replies, ev.model.context_length)],
        samples=samples,
        series={"attributes": per_attribute(metrics), "attribute_ceilings": per_attribute(ceilings)},
    )


def scene_verdicts(image: Any, labels: dict[str, Any]) -> list[Check]:
    """The pixel judge's verdict on each attribute of a shape scene (all wrong for no image)."""
    if image is None:
        return [(name, False) for name in SCENE_ATTRIBUTES]
    found = judge_shape_scene(image, labels)
    return [(name, bool(found[f"{name}_ok"])) for name in SCENE_ATTRIBUTES]


def judge_picture(ev: Evaluation, item: Item, picture: Any) -> list[Check]:
    """A shape scene's attribute checks, or an emoji's retrieval check ("emoji"), of a picture
    drawn for `item` (None: nothing drawn, all wrong)."""
    if item.source == "shapes":
        return scene_verdicts(picture, item.labels)
    return [("emoji", picture is not None and ev.judges.emoji.nearest([picture])[0] == item.labels["name"])]


def picture_metrics(items: Sequence[Item], checks: Sequence[list[Check]]) -> dict[str, float | None]:
    scenes = [c for c, item in zip(checks, items, strict=True) if item.source == "shapes"]
    emoji = [c[0][1] for c, item in zip(checks, items, strict=True) if item.source == "emoji"]
    return {**(attribute_metrics(scenes) if scenes else {}), "emoji_retrieval": fraction(emoji)}


def text_to_image(ev: Evaluation, split: str) -> Entry | None:
    items = ev.items("image", split, sources=("shapes", "emoji"))
    if not items:
        return None
    conversations = [ev.request("image_generation", text=item.text) for item in items]
    replies = ev.generate(
        f"text_to_image/{split}", conversations, ev.media_budget("image"), respond_with="image"
    )
    outputs = [media_output(r, "image") for r in replies]
    checks = [
        judge_picture(ev, item, o.content if o else None) for item, o in zip(items, outputs, strict=True)
    ]
    metrics = picture_metrics(items, checks)
    ceilings = picture_metrics(items, [judge_picture(ev, item, item.media) for item in items])
    roundtrip = picture_metrics(
        items, [judge_picture(ev, item, ev.reconstruct("image", item.media)) for item in items]
    )
    metrics.update({f"roundtrip_{k}": v for k, v in roundtrip.items() if not k.startswith("attribute:")})
    primary = "attribute_accuracy" if any(item.source == "shapes" for item in items) else "emoji_retrieval"
    samples = []
    for i in ev.sample_indices(len(items)):
        media = {"reference": ev.save_media("text_to_image", split, f"{i:03d}-reference", items[i].media)}
        if outputs[i] is not None:
            media["output"] = ev.save_media("text_to_image", split, f"{i:03d}-output", outputs[i])
        verdict = ", ".join(f"{name} {'ok' if ok else 'wrong'}" for name, ok in checks[i])
        samples.append(Sample(items[i].text, f"the {items[i].source} picture", "(picture)", verdict, media))
    return Entry(
        "text_to_image",
        split,
        len(items),
        primary,
        metrics.get(primary),
        ceilings.get(primary),
        metrics=metrics,
        ceilings=ceilings,
        notes=[
            "ceilings: the judges on the original pictures; roundtrip_*: on the pictures through the "
            "model's image tokenizer and back",
            *too_long_note(replies, ev.model.context_length),
        ],
        samples=samples,
        series={"attributes": per_attribute(metrics), "attribute_ceilings": per_attribute(ceilings)},
    )
