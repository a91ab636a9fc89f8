import json

import pytest
from transformers import LlamaConfig

from anyseq.training.bench import flops_per_token, run_bench


def test_flops_per_token_counts_matmuls_and_attention():
    config = LlamaConfig(hidden_size=256, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=4,
                         intermediate_size=688, vocab_size=4608)  # fmt: skip
    per_layer = 2 * 256 * 256 + 2 * 256 * 256 + 3 * 256 * 688  # q, o; k, v; gate, up, down
    matmul_parameters = 6 * per_layer + 256 * 4608  # + lm_head
    assert flops_per_token(config, 512) == 6 * matmul_parameters + 12 * 6 * 256 * 512 == 44_974_080


@pytest.mark.slow
def test_bench_compares_both_loops_on_the_same_batches(tmp_path):
    result = run_bench(tmp_path / "bench.json", presets=("test",), steps=4, warmup=1)
    assert json.loads((tmp_path / "bench.json").read_text()) == result
    row = result["models"]["test"]
    assert result["sgemm_gflops"] > 0 and row["batch"] == {"sequences": 4, "tokens_per_sequence": 128}
    for loop in ("anyseq", "hf_trainer"):
        assert row[loop]["steps_measured"] == 3  # 4 steps, the first one a warm-up
        assert row[loop]["best_step_tokens_per_second"] >= row[loop]["tokens_per_second"] > 0
        assert row[loop]["model_flop_utilisation"] > 0
    ratio = row["anyseq"]["tokens_per_second"] / row["hf_trainer"]["tokens_per_second"]
    assert row["anyseq_over_trainer"] == pytest.approx(ratio, rel=2e-3)
