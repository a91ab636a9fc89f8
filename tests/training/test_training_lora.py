"""A local Hugging Face LLaMA directory, grown to AnySeq's vocabulary, fine-tuned with LoRA."""

import torch
from conftest import all_texts, make_tokenizers, tokenize_into
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from anyseq.backbone import padded_vocab_size
from anyseq.checkpoint import load_checkpoint
from anyseq.training import TrainConfig, Trainer
from anyseq.training.init import init_model
from anyseq.training.state import TRAINABLE_FILE, TRAINING_DIR
from anyseq.vocab import train_bpe


def random_llama(directory):
    """What a user's local LLaMA directory holds: config, safetensors weights, tokenizer.json."""
    text_tokenizer = train_bpe(all_texts(), 300)
    size = text_tokenizer.get_vocab_size(with_added_tokens=True)
    config = LlamaConfig(
        vocab_size=size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=256, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    text_tokenizer.save(str(directory / "tokenizer.json"))
    return directory


def test_lora_fine_tunes_a_grown_local_llama(tmp_path):
    base = random_llama(tmp_path / "llama")
    original = load_file(base / "model.safetensors")
    model = init_model(tmp_path / "init", make_tokenizers(tmp_path / "tokenizers"), from_hf=base)
    grown = load_checkpoint(model)
    old_rows = original["model.embed_tokens.weight"].shape[0]
    embeddings = grown.model.get_input_embeddings().weight
    assert embeddings.shape[0] == padded_vocab_size(grown.layout.vocab_size) > old_rows
    assert torch.equal(embeddings[:old_rows], original["model.embed_tokens.weight"])
    tokenize_into(tmp_path / "data", model, pretrain=48, instruct=12)

    config = TrainConfig.from_name("test", "pretrain", max_steps=12, lora={"rank": 4, "alpha": 8})
    trainer = Trainer(config, model, tmp_path / "data", tmp_path / "run")
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert 0 < trainable < sum(p.numel() for p in trainer.model.parameters())
    summary = trainer.fit()
    for task, losses in summary.val_loss.items():
        assert losses["end"] < losses["start"], task

    # The result is a plain LLaMA directory: adapters merged, no peft needed to load it.
    tuned = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert not [name for name in tuned if "lora" in name]
    start = load_file(model / "model.safetensors")
    assert tuned.keys() == start.keys()
    projection = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(tuned[projection], start[projection])  # the LoRA delta is folded in
    norm = "model.layers.0.input_layernorm.weight"
    assert torch.equal(tuned[norm], start[norm])  # frozen outside the adapters and embeddings
    assert AutoModelForCausalLM.from_pretrained(
        tmp_path / "run" / "model", local_files_only=True
    ).num_parameters()
    last = tmp_path / "run" / "checkpoints" / "step-000012" / TRAINING_DIR / TRAINABLE_FILE
    assert any("lora_A" in name for name in load_file(last))

    # Resuming rebuilds the base model and loads the adapters (and their optimizer state) back.
    resumed = Trainer(config, model, tmp_path / "data", tmp_path / "run", resume=True)
    assert resumed.state.step == 12
    before = dict(trainer.model.named_parameters())
    for name, parameter in resumed.model.named_parameters():
        assert torch.equal(parameter, before[name]), name
