import json
import shutil

import numpy as np
import pytest
import torch
from conftest import instruct_items, pretrain_items

from anyseq.backbone import BackboneConfig, build_model
from anyseq.checkpoint import read_layout
from anyseq.conversation import render
from anyseq.modalities import load_tokenizer
from anyseq.training.data import (
    IGNORE,
    DialogueStream,
    PackedStream,
    TaskExamples,
    TaskSampler,
    TokenizedSplit,
    TrainSequence,
    collate,
    make_stream,
    replay_ratios,
    resolve_ratios,
    with_replay,
)
from anyseq.training.tokenize import MANIFEST, read_view_manifest, write_view
from anyseq.training.trainer import find_view


def _tokenizers(model):
    layout, meta = read_layout(model)
    return layout, {name: load_tokenizer(model / sub) for name, sub in meta["modalities"].items()}


def test_view_holds_exactly_what_render_gives(tiny_world):
    layout, tokenizers = _tokenizers(tiny_world.model)
    manifest = read_view_manifest(tiny_world.view)
    counts = manifest["corpora"]["pretrain"]["train"]
    assert counts["examples"] == 96 and counts["skipped"] == 0
    assert sum(t["examples"] for t in counts["tasks"].values()) == 96
    split = TokenizedSplit.load(tiny_world.view, "pretrain", "train")
    position = {task: 0 for task in split.tasks}
    every = split.every_token()
    for task, conversation in pretrain_items(96, 1):
        expected = render(conversation, layout, tokenizers, loss_on="assistant")
        ids, mask = split.tasks[task].example(position[task])
        assert ids.tolist() == expected.ids.tolist()
        assert mask.tolist() == expected.loss_mask.tolist() and 0 < mask.sum() < len(mask)  # the reply
        # AnyGPT's pretraining targets, made from the view: what render(loss_on="all") marks
        _, all_mask = every.tasks[task].example(position[task])
        assert all_mask.tolist() == render(conversation, layout, tokenizers, loss_on="all").loss_mask.tolist()
        position[task] += 1
    assert max(split.tasks[t].lengths.max() for t in split.tasks) == counts["max_length"]
    # Dialogues train only the assistant's turns.
    dialogues = TokenizedSplit.load(tiny_world.view, "instruct", "train")
    task, conversation = instruct_items(1, 3)[0]
    ids, mask = dialogues.tasks[task].example(0)
    expected = render(conversation, layout, tokenizers, loss_on="assistant")
    assert mask.tolist() == expected.loss_mask.tolist() and 0 < mask.sum() < len(mask)


def test_shards_split_and_reassemble(tiny_world, tmp_path):
    layout, tokenizers = _tokenizers(tiny_world.model)
    items = pretrain_items(30, 7)
    write_view(tmp_path / "v", {"pretrain": {"train": items}}, layout, tokenizers, "f", shard_examples=8)
    manifest = read_view_manifest(tmp_path / "v")
    assert manifest["corpora"]["pretrain"]["train"]["shards"] == [f"part-{i:05d}.parquet" for i in range(4)]
    split = TokenizedSplit.load(tmp_path / "v", "pretrain", "train")
    assert len(split) == 30
    first = [c for t, c in items if t == "asr"][0]
    assert (
        split.tasks["asr"].example(0)[0].tolist()
        == render(first, layout, tokenizers, loss_on="all").ids.tolist()
    )


def test_unrenderable_conversations_are_skipped_and_named(tiny_world, tmp_path):
    layout, tokenizers = _tokenizers(tiny_world.model)
    items = pretrain_items(6, 1)
    broken = items[2][1]
    broken.messages[0].content[1].source = np.zeros(0, dtype=np.float32)  # speech with no samples
    manifest = write_view(tmp_path / "v", {"pretrain": {"train": items}}, layout, tokenizers, "f")
    counts = manifest["corpora"]["pretrain"]["train"]
    assert counts["examples"] == 5 and counts["skipped"] == 1
    assert counts["skipped_examples"][0].startswith("pretrain/train #2 (asr)")


def _examples(lengths: list[int], offset: int = 0) -> TaskExamples:
    ids = np.arange(offset, offset + sum(lengths), dtype=np.int32)
    return TaskExamples(ids, np.ones(len(ids), dtype=bool), np.concatenate([[0], np.cumsum(lengths)]))


def test_sampler_follows_ratios_and_covers_each_epoch():
    sampler = TaskSampler({"a": 5, "b": 7}, {"a": 0.75, "b": 0.25}, seed=0)
    draws = [sampler.next() for _ in range(4000)]
    share = sum(task == "a" for task, _ in draws) / len(draws)
    assert abs(share - 0.75) < 0.03
    first_epoch_a = [i for task, i in draws if task == "a"][:5]
    assert sorted(first_epoch_a) == list(range(5))


def test_a_zero_ratio_leaves_its_task_out():
    split = TokenizedSplit("s", {"asr": _examples([3] * 4), "tts": _examples([3] * 4)})
    ratios = resolve_ratios(split, {"asr": 1.0, "tts": 0.0})
    assert ratios == {"asr": 1.0, "tts": 0.0}
    sampler = TaskSampler({"asr": 4, "tts": 4}, ratios, seed=0)
    assert {sampler.next()[0] for _ in range(200)} == {"asr"}


def test_replayed_pairs_take_their_share_of_the_draws():
    dialogues = TokenizedSplit("d", {"text->image": _examples([5] * 6), "image->text": _examples([4] * 2)})
    pairs = TokenizedSplit("p", {"asr": _examples([3] * 30), "tts": _examples([3] * 10)})
    mixed = with_replay(dialogues, pairs)
    assert mixed.task_names == ["image->text", "replay:asr", "replay:tts", "text->image"]
    assert mixed.tasks["replay:asr"] is pairs.tasks["asr"]
    ratios = replay_ratios(mixed, None, replay=0.2)
    assert ratios == pytest.approx(
        {"text->image": 0.6, "image->text": 0.2, "replay:asr": 0.15, "replay:tts": 0.05}
    )
    given = replay_ratios(mixed, {"text->image": 1.0, "image->text": 1.0}, replay=0.5)
    assert given["text->image"] == pytest.approx(0.25) and given["replay:tts"] == pytest.approx(0.125)
    # the rehearsed pairs in a mix of their own (by the pair tasks' names), not by their sizes
    mix = replay_ratios(mixed, None, replay=0.2, mix={"asr": 1.0, "tts": 3.0})
    assert mix == pytest.approx(
        {"text->image": 0.6, "image->text": 0.2, "replay:asr": 0.05, "replay:tts": 0.15}
    )
    with pytest.raises(
        ValueError, match=r"replay_mix do not match .* no ratio for \['tts'\], no data for \['music'\]"
    ):
        replay_ratios(mixed, None, replay=0.2, mix={"asr": 1.0, "music": 1.0})
    with pytest.raises(ValueError, match="replay needs both"):
        replay_ratios(dialogues, None, replay=0.2)


def test_packing_cuts_blocks_and_continues_the_cut_example():
    split = TokenizedSplit("s", {"a": _examples([5, 9, 3]), "b": _examples([4, 6], offset=100)})
    ratios = resolve_ratios(split, None)
    assert ratios == pytest.approx({"a": 0.6, "b": 0.4})
    stream = PackedStream(split, TaskSampler({"a": 3, "b": 2}, ratios, seed=1), block_size=8)
    blocks = [stream.next() for _ in range(6)]
    assert all(len(b.ids) == 8 for b in blocks)
    reference = TaskSampler({"a": 3, "b": 2}, ratios, seed=1)
    expected = []
    while len(expected) < 48:
        task, index = reference.next()
        expected.extend(split.tasks[task].example(index)[0].tolist())
    assert np.concatenate([b.ids for b in blocks]).tolist() == expected[:48]
    tasks = np.concatenate([b.task for b in blocks])
    assert ((tasks == 1) == (np.concatenate([b.ids for b in blocks]) >= 100)).all()


def test_separated_packing_numbers_each_example_from_zero_and_the_model_keeps_them_apart():
    split = TokenizedSplit("s", {"a": _examples([5, 9, 3]), "b": _examples([4, 6], offset=100)})
    ratios = resolve_ratios(split, None)
    plain, separated = (
        PackedStream(split, TaskSampler({"a": 3, "b": 2}, ratios, seed=1), 8, separate=separate)
        for separate in (False, True)
    )
    blocks = [separated.next() for _ in range(6)]
    assert [b.ids.tolist() for b in blocks] == [plain.next().ids.tolist() for _ in range(6)]
    assert all(plain_block.position is None for plain_block in [plain.next()])
    reference, expected = TaskSampler({"a": 3, "b": 2}, ratios, seed=1), []
    while len(expected) < 48:
        task, index = reference.next()
        expected.extend(range(len(split.tasks[task].example(index)[0])))
    # a cut example goes on counting in the next block
    assert np.concatenate([b.position for b in blocks]).tolist() == expected[:48]

    batch = collate(blocks[:2], pad_id=0)
    assert batch.position_ids.tolist() == [b.position.tolist() for b in blocks[:2]]
    torch.manual_seed(0)
    model = build_model(BackboneConfig.from_name("test"), 300, 0, 1, 2)
    ids = torch.randint(3, 300, (1, 12))
    positions = torch.tensor([[*range(7), *range(5)]])
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=positions, use_cache=False).logits
        alone = [model(input_ids=part, use_cache=False).logits for part in (ids[:, :7], ids[:, 7:])]
        across = model(input_ids=ids, use_cache=False).logits
    torch.testing.assert_close(packed, torch.cat(alone, dim=1))
    assert (across[:, 7:] - alone[1]).abs().max() > 1e-3  # without positions the second sees the first
    with pytest.raises(ValueError, match="must all have positions"):
        collate([blocks[0], TrainSequence(blocks[1].ids, blocks[1].loss_mask, blocks[1].task)], pad_id=0)


def test_packed_dialogues_are_never_cut_and_each_attends_only_to_itself():
    split = TokenizedSplit("s", {"a": _examples([5, 9, 3]), "b": _examples([4, 6], offset=100)})
    ratios = resolve_ratios(split, None)
    stream = DialogueStream(split, TaskSampler({"a": 3, "b": 2}, ratios, seed=1), pack_size=12)
    rows = [stream.next() for _ in range(6)]
    reference, whole = TaskSampler({"a": 3, "b": 2}, ratios, seed=1), []
    while len(whole) < sum(len(r.ids) for r in rows):
        task, index = reference.next()
        whole.extend(split.tasks[task].example(index)[0].tolist())
    # the same dialogues in the same order, whole
    assert np.concatenate([r.ids for r in rows]).tolist() == whole
    assert all(len(r.ids) <= 12 for r in rows) and any(len(r.ids) < 12 for r in rows)
    # each dialogue numbered from 0 (the shortest is 3 tokens long)
    sizes = [np.diff([*np.flatnonzero(r.position == 0), len(r.ids)]).tolist() for r in rows]
    assert [r.position.tolist() for r in rows] == [[i for n in row for i in range(n)] for row in sizes]
    assert min(min(row) for row in sizes) == 3
    # a row ends where the next dialogue would not fit
    assert all(len(row.ids) + following[0] > 12 for row, following in zip(rows, sizes[1:], strict=False))

    # padded rows of packed dialogues: the model sees each dialogue as if it were alone
    first = TrainSequence(np.arange(3, 10), np.ones(7, bool), np.zeros(7, np.int16), np.r_[0:4, 0:3])
    second = TrainSequence(np.arange(20, 25), np.ones(5, bool), np.zeros(5, np.int16), np.arange(5))
    batch = collate([first, second], pad_id=0)
    assert batch.attention_mask is None and batch.num_tokens == 12
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 0, 1, 2], [0, 1, 2, 3, 4, 0, 1]]
    assert batch.targets[1, 4:].tolist() == [IGNORE] * 3  # the padded tail is never a target
    torch.manual_seed(0)
    model = build_model(BackboneConfig.from_name("test"), 300, 0, 1, 2)
    with torch.no_grad():
        packed = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
        parts = (first.ids[:4], first.ids[4:], second.ids)
        alone = [model(input_ids=torch.from_numpy(ids[None]), use_cache=False).logits[0] for ids in parts]
    torch.testing.assert_close(packed[0, :7], torch.cat(alone[:2]))
    torch.testing.assert_close(packed[1, :5], alone[2])


def _dialogues(row: TrainSequence) -> list[tuple[int, ...]]:
    """The ids of each dialogue of a packed row (each numbered from position 0)."""
    starts = list(np.flatnonzero(row.position == 0))
    return [tuple(row.ids[a:b]) for a, b in zip(starts, [*starts[1:], len(row.ids)], strict=True)]


def test_a_lookahead_fills_packed_rows_with_the_same_whole_dialogues_in_the_order_drawn():
    lengths = {"a": [7, 9, 3, 5, 8], "b": [4, 6, 2]}
    split = TokenizedSplit("s", {"a": _examples(lengths["a"]), "b": _examples(lengths["b"], offset=100)})
    ratios = resolve_ratios(split, None)

    def rows(lookahead: int) -> tuple[list[TrainSequence], DialogueStream]:
        stream = DialogueStream(split, TaskSampler({"a": 5, "b": 3}, ratios, seed=2), 12, lookahead)
        return [stream.next() for _ in range(40)], stream

    (near, _), (ahead, stream) = rows(1), rows(4)
    fill = {name: sum(len(r.ids) for r in got) / (12 * len(got)) for name, got in (("1", near), ("4", ahead))}
    assert fill["4"] > fill["1"] + 0.1, fill  # 0.91 against 0.79
    full = [sum(len(r.ids) == 12 for r in got) for got in (near, ahead)]
    assert all(len(r.ids) <= 12 for r in ahead) and full[1] >= 2 * full[0], full  # 16 against 7

    # every dialogue whole (a span numbered from 0 is one example's ids) and placed near its draw
    examples = {tuple(split.tasks[t].example(i)[0]) for t in lengths for i in range(len(lengths[t]))}
    placed = [dialogue for row in ahead for dialogue in _dialogues(row)]
    assert set(placed) <= examples
    reference = TaskSampler({"a": 5, "b": 3}, ratios, seed=2)
    draws = [
        tuple(split.tasks[t].example(i)[0]) for t, i in (reference.next() for _ in range(len(placed) + 4))
    ]
    assert all(d in draws[max(0, k - 8) : k + 8] for k, d in enumerate(placed))
    # the rows and the dialogues still waiting are exactly the draws: none lost, none twice
    waiting = [tuple(split.tasks[t].example(i)[0]) for t, i in stream.waiting]
    assert len(waiting) == 4 and sorted(placed + waiting) == sorted(draws)

    with pytest.raises(ValueError, match="lookahead must be at least 1"):
        DialogueStream(split, TaskSampler({"a": 5, "b": 3}, ratios, seed=2), 12, 0)


@pytest.mark.parametrize(
    ("stage", "pack", "lookahead"),
    [("pretrain", False, 1), ("sft", False, 1), ("sft", True, 1), ("sft", True, 6)],
)
def test_a_saved_position_continues_the_same_sequences(tiny_world, stage, pack, lookahead):
    corpus = "pretrain" if stage == "pretrain" else "instruct"
    split = TokenizedSplit.load(tiny_world.view, corpus, "train")
    ratios = {t: 1.0 for t in split.tasks}
    block = 200 if pack else 40
    split = split.fit_to(block, "skip")[0] if pack else split
    stream = make_stream(stage, split, ratios, seed=3, block_size=block, pack=pack, lookahead=lookahead)
    for _ in range(7):
        stream.next()
    state = json.loads(json.dumps(stream.state_dict()))
    expected = [stream.next().ids.tolist() for _ in range(9)]
    resumed = make_stream(stage, split, ratios, seed=3, block_size=block, pack=pack, lookahead=lookahead)
    resumed.load_state_dict(state)
    assert [resumed.next().ids.tolist() for _ in range(9)] == expected
    assert isinstance(stream, PackedStream if stage == "pretrain" else DialogueStream)


def test_collate_shifts_targets_masks_and_pads():
    sequences = [
        TrainSequence(
            np.array([5, 6, 7, 8]), np.array([False, False, True, True]), np.zeros(4, dtype=np.int16)
        ),
        TrainSequence(np.array([9, 10]), np.array([True, True]), np.ones(2, dtype=np.int16)),
    ]
    batch = collate(sequences, pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8], [9, 10, 0, 0]]
    assert batch.targets.tolist() == [[IGNORE, 7, 8, IGNORE], [10, IGNORE, IGNORE, IGNORE]]
    assert batch.target_tasks.tolist() == [[-1, 0, 0, -1], [1, -1, -1, -1]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch.num_targets == 3 and batch.num_tokens == 6
    assert collate(sequences[:1], pad_id=0).attention_mask is None


def test_too_long_sequences_are_an_error_skipped_or_truncated(tiny_world):
    split = TokenizedSplit.load(tiny_world.view, "pretrain", "train")
    with pytest.raises(
        ValueError, match=r"longer than the context of 20 tokens: .*image_caption: \d+ \(longest \d+\)"
    ):
        split.fit_to(20, "error")
    assert split.fit_to(10_000, "error") == (split, {})
    limit = int(np.median(np.concatenate([ex.lengths for ex in split.tasks.values()])))
    kept, skipped = split.fit_to(limit, "skip")
    assert all(ex.lengths.max() <= limit for ex in kept.tasks.values())
    assert len(kept) + sum(skipped.values()) == len(split) and skipped
    first = kept.tasks["asr"].example(0)[0]
    assert first.tolist() == next(split.tasks["asr"].example(i)[0] for i in range(len(split.tasks["asr"]))
                                  if split.tasks["asr"].lengths[i] <= limit).tolist()  # fmt: skip
    with pytest.raises(ValueError, match="no example fits the context of 3 tokens"):
        split.fit_to(3, "skip")
    cut, truncated = split.fit_to(limit, "truncate")
    assert truncated == skipped and len(cut) == len(split)
    for task, examples in split.tasks.items():
        for i in range(len(examples)):
            ids, mask = examples.example(i)
            assert cut.tasks[task].example(i)[0].tolist() == ids[:limit].tolist()
            assert cut.tasks[task].example(i)[1].tolist() == mask[:limit].tolist()


def test_ratios_must_name_the_datas_tasks(tiny_world):
    split = TokenizedSplit.load(tiny_world.view, "pretrain", "train")
    with pytest.raises(ValueError, match=r"no ratio for \['tts'\], no data for \['speech'\]"):
        resolve_ratios(split, {**{t: 1.0 for t in split.tasks if t != "tts"}, "speech": 1.0})


def test_find_view_rejects_missing_mismatched_and_empty_data(tiny_world, tmp_path):
    assert find_view(tiny_world.data, tiny_world.model) == tiny_world.view
    assert find_view(tiny_world.view, tiny_world.model) == tiny_world.view
    with pytest.raises(FileNotFoundError, match="no such data directory"):
        find_view(tmp_path / "nothing", tiny_world.model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="run `anyseq data tokenize --data"):
        find_view(tmp_path / "empty", tiny_world.model)
    other = tmp_path / "other-view"
    shutil.copytree(tiny_world.view, other)
    manifest = json.loads((other / MANIFEST).read_text())
    (other / MANIFEST).write_text(json.dumps({**manifest, "fingerprint": "0123456789abcdef"}))
    with pytest.raises(ValueError, match="tokenized with another vocabulary"):
        find_view(other, tiny_world.model)
    layout, tokenizers = _tokenizers(tiny_world.model)
    write_view(tmp_path / "v", {"pretrain": {"train": []}}, layout, tokenizers, "f")
    with pytest.raises(ValueError, match="pretrain/train is empty"):
        TokenizedSplit.load(tmp_path / "v", "pretrain", "train")
    with pytest.raises(ValueError, match="instruct/train is missing; the view has pretrain/train"):
        TokenizedSplit.load(tmp_path / "v", "instruct", "train")
