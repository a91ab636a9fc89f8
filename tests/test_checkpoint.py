import json
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from anyseq.checkpoint import AnySeqCheckpoint, load_checkpoint, save_checkpoint
from anyseq.io import atomic_directory
from anyseq.sampling import SamplingConfig


@pytest.fixture
def saved(tmp_path, model, layout, tokenizers):
    checkpoint = AnySeqCheckpoint(model, layout, tokenizers, metadata={"backbone": "test"})
    checkpoint.sampling["music"] = SamplingConfig(top_k=50, repetition_penalty=1.2)
    return save_checkpoint(checkpoint, tmp_path / "model")


def test_save_then_load_gives_identical_logits(saved, model, layout):
    loaded = load_checkpoint(saved)
    ids = torch.randint(0, layout.vocab_size, (2, 12))
    assert torch.equal(model(ids).logits, loaded.model(ids).logits)
    assert loaded.layout.to_dict() == layout.to_dict()
    assert loaded.sampling["music"] == SamplingConfig(top_k=50, repetition_penalty=1.2)
    assert loaded.metadata == {"backbone": "test"}
    assert sorted(loaded.tokenizers) == ["image", "music", "speech"]
    assert loaded.tokenizers["music"].spec == layout.spec("music")


def test_plain_transformers_load_it(saved, model, layout):
    assert not list(saved.glob("*.bin")) and (saved / "model.safetensors").is_file()
    auto = AutoModelForCausalLM.from_pretrained(saved, local_files_only=True)
    assert type(auto).__name__ == "LlamaForCausalLM"
    ids = torch.randint(0, layout.vocab_size, (1, 9))
    assert torch.equal(auto(ids).logits, model(ids).logits)
    tokenizer = AutoTokenizer.from_pretrained(saved, local_files_only=True)
    image, music = layout.ranges["image"].start, layout.ranges["music"].start
    ids = [
        layout.start_of("image"),
        image + 17,
        layout.end_of("image"),
        music + 32 + 5,
        layout.special("<eom>"),
    ]
    assert tokenizer.decode(ids) == "<soim><img_17><eoim><mu1_5><eom>"
    assert tokenizer.bos_token == "<s>" and tokenizer.pad_token_id == layout.pad_id
    assert len(tokenizer) == layout.vocab_size


def test_missing_files_are_named(saved):
    os.remove(saved / "anyseq.json")
    with pytest.raises(FileNotFoundError, match="not an AnySeq checkpoint; missing anyseq.json"):
        load_checkpoint(saved)


def test_mismatched_tokenizer_is_refused(saved):
    config = saved / "modalities" / "image" / "config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | {"grid": 3}))
    with pytest.raises(ValueError, match="the image tokenizer .* does not match the vocabulary"):
        load_checkpoint(saved)


def test_atomic_directory_keeps_the_old_one_on_failure(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as temp:
        (temp / "weights").write_text("half")
        raise RuntimeError("killed")
    assert (target / "weights").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    with atomic_directory(target) as temp:
        (temp / "weights").write_text("new")
    assert (target / "weights").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
