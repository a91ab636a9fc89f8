"""The acoustic model: masked-level training, generation that keeps what is given, prompt conditioning."""

from __future__ import annotations

import pytest
import torch

from anyseq.modalities.acoustic import AcousticBatch, AcousticConfig, AcousticModel

CONFIG = AcousticConfig(num_levels=3, codebook_size=16, dim=32, layers=2, heads=2, ff_dim=64)
DIGITS = AcousticConfig(
    num_levels=3,
    codebook_size=16,
    dim=32,
    layers=2,
    heads=2,
    ff_dim=64,
    digits=(2, 8),
    digit_decisions=("mean", "mode"),
)


def _batch(level1: torch.Tensor, voice: torch.Tensor, prompt_frames: int = 6) -> AcousticBatch:
    """Rows whose levels 2 and 3 are the row's voice codes, constant over time, in prompt and target.

    level1: (B, T) content codes; voice: (B, 2) the codes of levels 2 and 3.
    """
    rows, frames = level1.shape
    width = prompt_frames + frames
    codes = torch.zeros(rows, 3, width, dtype=torch.long)
    codes[:, 0, :prompt_frames] = (level1[:, :1] + 1) % CONFIG.codebook_size
    codes[:, 0, prompt_frames:] = level1
    codes[:, 1:, :] = voice[:, :, None]
    is_target = torch.zeros(rows, width, dtype=torch.bool)
    is_target[:, prompt_frames:] = True
    return AcousticBatch(codes, is_target, torch.ones(rows, width, dtype=torch.bool))


@pytest.mark.parametrize("config", [CONFIG, DIGITS], ids=["codes", "digits"])
def test_generate_keeps_prompt_and_level1_and_fills_every_target_frame(config):
    model = AcousticModel(config).eval()
    batch = _batch(torch.randint(0, 16, (2, 10)), torch.tensor([[3, 4], [5, 6]]))
    filled = model.generate(batch, steps=[3, 1])
    assert filled.shape == batch.codes.shape
    assert torch.equal(filled[:, :, :6], batch.codes[:, :, :6])  # the prompt is untouched
    assert torch.equal(filled[:, 0], batch.codes[:, 0])  # level 1 is given
    assert int(filled.max()) < CONFIG.codebook_size and int(filled.min()) >= 0  # no mask id left
    assert torch.equal(filled, model.generate(batch, steps=[3, 1]))  # greedy: deterministic


@pytest.mark.parametrize("config", [CONFIG, DIGITS], ids=["codes", "digits"])
def test_padding_does_not_change_a_row(config):
    model = AcousticModel(config).eval()
    batch = _batch(torch.randint(0, 16, (1, 8)), torch.tensor([[3, 4]]))
    alone = model.generate(batch, steps=[2, 1])
    padded = AcousticBatch(
        torch.cat([batch.codes, torch.zeros(1, 3, 5, dtype=torch.long)], dim=2),
        torch.cat([batch.is_target, torch.ones(1, 5, dtype=torch.bool)], dim=1),
        torch.cat([batch.valid, torch.zeros(1, 5, dtype=torch.bool)], dim=1),
    )
    assert torch.equal(model.generate(padded, steps=[2, 1])[:, :, :14], alone)


@pytest.mark.slow
@pytest.mark.parametrize("config", [CONFIG, DIGITS], ids=["codes", "digits"])
def test_learns_to_take_the_voice_from_the_prompt(config):
    """Levels 2..3 depend only on the prompt: after training, generation copies the prompt's voice."""
    torch.manual_seed(0)
    model = AcousticModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(250):
        batch = _batch(torch.randint(0, 16, (16, 10)), torch.randint(0, 16, (16, 2)))
        loss = model.loss(batch, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.3 * sum(losses[:10]) / 10
    model.eval()
    voice = torch.tensor([[1, 2], [7, 9], [12, 0], [5, 5]])
    batch = _batch(torch.randint(0, 16, (4, 10)), voice)
    filled = model.generate(batch, steps=[2, 1])
    copied = (filled[:, 1:, 6:] == voice[:, :, None]).float().mean()
    assert copied > 0.9, f"only {copied:.0%} of the target frames took the prompt's voice codes"


def test_one_softmax_loss_is_the_cross_entropy_of_the_codes():
    model = AcousticModel(CONFIG)
    logits, codes = torch.randn(7, 16), torch.randint(0, 16, (7,))
    torch.testing.assert_close(model._nll(logits, codes), torch.nn.functional.cross_entropy(logits, codes))


def test_digit_loss_sums_the_cross_entropy_of_each_digit():
    """Code = digit0 + 2 * digit1 (first digit fastest, as vector-quantize-pytorch numbers FSQ codes)."""
    model = AcousticModel(DIGITS)
    logits, codes = torch.randn(7, 2 + 8), torch.randint(0, 16, (7,))
    expected = torch.nn.functional.cross_entropy(
        logits[:, :2], codes % 2
    ) + torch.nn.functional.cross_entropy(logits[:, 2:], codes // 2)
    torch.testing.assert_close(model._nll(logits, codes), expected)


def test_digit_decisions_by_mode_and_by_rounded_mean():
    # digit 0 certainly 1; digit 1 is 0 with probability 0.4 and 3 with 0.6: mode 3, mean 1.8 -> 2
    digit1 = torch.full((8,), -1e4)
    digit1[0], digit1[3] = torch.tensor(0.4).log(), torch.tensor(0.6).log()
    logits = torch.cat([torch.tensor([-1e4, 0.0]), digit1])[None, None]  # (1, 1, 10)
    model = AcousticModel(DIGITS)
    code, confidence = model.decide(logits, "mode")
    assert code.item() == 1 + 2 * 3
    torch.testing.assert_close(confidence, torch.tensor([[0.6]]))
    code, confidence = model.decide(logits, "mean")
    assert code.item() == 1 + 2 * 2
    torch.testing.assert_close(confidence, torch.tensor([[0.0]]), atol=1e-3, rtol=0)  # 2 is unlikely
    # one softmax over the codes: the most likely code
    joint = torch.zeros(1, 1, 16)
    joint[0, 0, 11] = 5.0
    assert AcousticModel(CONFIG).decide(joint)[0].item() == 11


def test_digit_embedding_is_the_sum_of_the_digits_and_masked_is_its_own():
    model = AcousticModel(DIGITS)
    table = model.embeddings[1].weight
    codes = torch.tensor([[0, 13, model.mask_id]])
    embedded = model._embed(1, codes)[0]
    torch.testing.assert_close(embedded[0], table[0] + table[2 + 0])
    torch.testing.assert_close(embedded[1], table[1] + table[2 + 6])  # 13 = 1 + 2 * 6
    torch.testing.assert_close(embedded[2], table[-1])


def test_step_counts_are_checked():
    model = AcousticModel(CONFIG)
    batch = _batch(torch.zeros(1, 4, dtype=torch.long), torch.tensor([[1, 1]]))
    with pytest.raises(ValueError, match="one step count >= 1 per level 2..3"):
        model.generate(batch, steps=[1])
    with pytest.raises(ValueError, match="one step count >= 1"):
        model.generate(batch, steps=[0, 1])


def test_config_is_validated():
    with pytest.raises(ValueError, match="K >= 2"):
        AcousticConfig(num_levels=1)
    with pytest.raises(ValueError, match="multiple of heads"):
        AcousticConfig(dim=30, heads=4)
    with pytest.raises(ValueError, match=r"digits \[2, 4\] must multiply to codebook_size 16"):
        AcousticConfig(codebook_size=16, digits=(2, 4))
    with pytest.raises(ValueError, match=r"one entry per level 2..3, got \['mean'\]"):
        AcousticConfig(num_levels=3, digit_decisions=("mean",))
    with pytest.raises(ValueError, match=r"\['mode', 'median'\]: each 'mode' or 'mean'"):
        AcousticConfig(num_levels=3, digit_decisions=("mode", "median"))
