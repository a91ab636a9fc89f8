"""Stage-1 pairs (AnyGPT's text-centric alignment pretraining, section 4.1).

Six tasks, each an item and its text in one direction, with an instruction drawn from a
list of paraphrases as AnyGPT's are, and AnyGPT's template:

    [Human]: {instruction} {media}<eoh> [AnyGPT]: {text}                       media -> text
    [Human]: {instruction} This is input: {text}<eoh> [AnyGPT]: {media}        text -> media

A pair stores the item's id, not its media: pairs reuse the items. The number of pairs
of a split is `pairs_per_item` x its items, divided among the tasks by `ratios`
(AnyGPT: image caption 0.2, image generation 0.22, speech 0.3, music 0.28) over the
modalities the split has.
"""

from __future__ import annotations

import math
from typing import Any

from anyseq.conversation import Conversation, Media, Message, Text
from anyseq.world.config import PretrainConfig
from anyseq.world.sampler import shard_rng

# task -> (modality, direction)
TASKS: dict[str, tuple[str, str]] = {
    "image_caption": ("image", "media->text"),
    "image_generation": ("image", "text->media"),
    "asr": ("speech", "media->text"),
    "tts": ("speech", "text->media"),
    "music_caption": ("music", "media->text"),
    "music_generation": ("music", "text->media"),
}
INPUT_MARKER = "This is input:"
INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "image_caption": (
        "Describe the scene in this picture.",
        "What is shown in this image?",
        "Give a short caption for this picture.",
        "Can you tell me what this image contains?",
        "Write a description of the following image.",
        "Summarize the content of this picture in a sentence.",
        "What do you see in this image?",
        "Provide a caption for the image below.",
    ),
    "image_generation": (
        "Create a visual interpretation of the following words.",
        "Draw a picture that matches this description.",
        "Generate an image from the following caption.",
        "Please illustrate the following text.",
        "Turn this description into a picture.",
        "Paint what the following words describe.",
        "Show me an image of the following.",
        "Render a picture based on this caption.",
    ),
    "asr": (
        "Can you please convert this speech into written text?",
        "Transcribe the following audio.",
        "What is being said in this recording?",
        "Write down the words spoken in this clip.",
        "Please turn this speech into text.",
        "Listen to this and write what you hear.",
        "Give me a transcript of this speech.",
        "Convert the spoken words into text.",
    ),
    "tts": (
        "Would you kindly read this text out loud.",
        "Please say the following text.",
        "Convert this text into speech.",
        "Read the following sentence aloud.",
        "Speak these words for me.",
        "Turn the following text into spoken audio.",
        "Can you pronounce this sentence?",
        "Say this out loud.",
    ),
    "music_caption": (
        "Listen to the music and describe the mood it evokes.",
        "Describe this piece of music.",
        "What instrument and tempo do you hear in this clip?",
        "Write a caption for this music.",
        "Tell me about the music you hear.",
        "Characterize the following musical excerpt.",
        "What kind of music is this?",
        "Give a short description of this melody.",
    ),
    "music_generation": (
        "Transform this caption into a musical journey.",
        "Compose music that fits this description.",
        "Play a piece of music matching the following words.",
        "Generate a melody from this caption.",
        "Create music based on the following text.",
        "Turn this description into a short piece of music.",
        "Write a tune that sounds like this.",
        "Produce a music clip described by the following.",
    ),
}


def task_counts(total: int, ratios: dict[str, float], modalities: set[str]) -> dict[str, int]:
    """`total` divided among the tasks whose modality is present, by `ratios` (largest remainder)."""
    weights = {task: ratios[task] for task, (modality, _) in TASKS.items() if modality in modalities}
    weight_sum = sum(weights.values())
    if total == 0 or weight_sum == 0:
        return {task: 0 for task in weights}
    exact = {task: total * weight / weight_sum for task, weight in weights.items()}
    counts = {task: math.floor(value) for task, value in exact.items()}
    for task in sorted(exact, key=lambda t: (counts[t] - exact[t], t))[: total - sum(counts.values())]:
        counts[task] += 1
    return counts


def make_pairs(
    items: dict[str, list[str]], split: str, config: PretrainConfig, seed: int
) -> list[dict[str, Any]]:
    """All pairs of a split, given its item ids per modality; each task walks a shuffled
    order of the items, so items are used evenly."""
    total = round(config.pairs_per_item * sum(len(ids) for ids in items.values()))
    counts = task_counts(total, config.ratios, {m for m, ids in items.items() if ids})
    rows = []
    for task, count in counts.items():
        modality, direction = TASKS[task]
        rng = shard_rng(seed, "pretrain", split, task)
        order = sorted(items[modality])
        rng.shuffle(order)
        for n in range(count):
            rows.append(
                {
                    "split": split,
                    "task": task,
                    "instruction": rng.choice(INSTRUCTIONS[task]),
                    "item_id": order[n % len(order)],
                    "modality": modality,
                    "direction": direction,
                }
            )
    shard_rng(seed, "pretrain", split, "order").shuffle(rows)
    return [{"id": f"pretrain-{split}-{n:06d}", **row} for n, row in enumerate(rows)]


def pair_conversation(direction: str, instruction: str, media: Media, text: str) -> Conversation:
    """AnyGPT's pretraining template as a Conversation (no system line)."""
    if direction == "media->text":
        messages = [Message("user", [Text(f"{instruction} "), media]), Message("assistant", [Text(text)])]
    elif direction == "text->media":
        messages = [
            Message("user", [Text(f"{instruction} {INPUT_MARKER} {text}")]),
            Message("assistant", [media]),
        ]
    else:
        raise ValueError(f"direction must be 'media->text' or 'text->media', got {direction!r}")
    return Conversation(messages, system=None)
