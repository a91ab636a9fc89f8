import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from anyseq.backbone import (
    PRESETS,
    BackboneConfig,
    build_model,
    count_parameters,
    load_backbone,
    padded_vocab_size,
)


def test_presets_have_the_documented_shapes():
    seven_b = PRESETS["anygpt-7b"].to_llama(53516, 1, 2, 0)
    assert (seven_b.hidden_size, seven_b.num_hidden_layers, seven_b.intermediate_size) == (4096, 32, 11008)
    assert seven_b.vocab_size == 53568  # AnyGPT's 53516 ids padded to a multiple of 64
    tiny = build_model(PRESETS["tiny"], 4608, 0, 1, 2)  # AnyWorld tiny's vocabulary, padded
    assert count_parameters(tiny) == 2 * 4608 * 128 + 4 * (4 * 128 * 128 + 3 * 128 * 344 + 2 * 128) + 128
    with pytest.raises(ValueError, match="unknown backbone preset 'huge'"):
        BackboneConfig.from_name("huge")
    assert padded_vocab_size(64) == 64 and padded_vocab_size(65) == 128


def test_growing_a_local_llama_keeps_old_logits(tmp_path):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    original = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    grown = load_backbone(tmp_path, vocab_size=150).eval()
    assert grown.get_input_embeddings().weight.shape[0] == 192  # 150 padded to a multiple of 64
    ids = torch.randint(0, 100, (2, 10))
    with torch.no_grad():
        before, after = original(ids).logits, grown(ids).logits
    torch.testing.assert_close(after[..., :100], before, rtol=0, atol=1e-6)
    embeddings = grown.get_input_embeddings().weight
    torch.testing.assert_close(embeddings[150], embeddings[:100].mean(dim=0))
    with pytest.raises(ValueError, match="refusing to shrink"):
        load_backbone(tmp_path, vocab_size=50)
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model directory"):
        load_backbone(tmp_path / "nowhere")
