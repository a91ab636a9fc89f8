"""Probes of what each speech level carries: content (phonemes) and voice (speaker).

AnyGPT (Zhan et al., ACL 2024) relies on SpeechTokenizer's first level holding the
content and the others the voice, so the language model can read and write level 1
alone and SoundStorm can give it any voice. These probes check that on AnySeq's codes,
level by level, with probes fitted on the training clips and scored on held-out ones:

- content: a linear CTC probe (code embedding -> phoneme units) per level; the phoneme
  error rate (PER) should be low on level 1 and high on the others;
- voice: logistic regression on each utterance's histogram of codes per level; speaker
  accuracy should be low on level 1 and high on levels 2..K and on all levels together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import jiwer
import numpy as np
import torch
from torch import Tensor, nn

from anyseq.modalities.speech import phoneme_units


@dataclass
class ProbeResult:
    phoneme_error_rate: dict[str, float]  # "level1", "level2", ... -> PER of the content probe
    speaker_accuracy: dict[str, float]  # "level1", ..., "levels2-K", "all" -> accuracy of the speaker probe
    speakers: int  # classes of the speaker probe (chance = 1 / speakers at best)

    def to_dict(self) -> dict:
        return asdict(self)


class _LinearCTC(nn.Module):
    def __init__(self, codebook_size: int, units: int, upsample: int, dim: int = 64) -> None:
        super().__init__()
        self.upsample = upsample
        self.embedding = nn.Embedding(codebook_size, dim)
        self.head = nn.Linear(dim, upsample * (units + 1))

    def forward(self, codes: Tensor) -> Tensor:
        """codes (B, T) -> log-probabilities (B, T * upsample, units + 1)."""
        logits = self.head(self.embedding(codes))  # (B, T, U*C)
        return logits.view(codes.shape[0], -1, logits.shape[-1] // self.upsample).log_softmax(-1)


def _pad(rows: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    width = max(len(r) for r in rows)
    padded = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        padded[i, : len(row)] = row
    return padded, torch.tensor([len(r) for r in rows])


def content_probe(
    train_codes: Sequence[Tensor],
    train_phonemes: Sequence[str],
    test_codes: Sequence[Tensor],
    test_phonemes: Sequence[str],
    codebook_size: int,
    upsample: int = 4,
    steps: int = 300,
    seed: int = 0,
) -> float:
    """Fit a linear CTC probe on one level's codes [T_i] -> phoneme units; PER on the test clips."""
    units = sorted({u for p in train_phonemes for u in phoneme_units(p)})
    index = {u: i + 1 for i, u in enumerate(units)}

    def encode(phonemes: str) -> list[int]:
        return [index[u] for u in phoneme_units(phonemes) if u in index]

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    probe = _LinearCTC(codebook_size, len(units), upsample)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2)
    for _ in range(steps):
        picks = torch.randint(0, len(train_codes), (32,), generator=generator).tolist()
        codes, lengths = _pad([train_codes[i] for i in picks])
        targets = [encode(train_phonemes[i]) for i in picks]
        loss = nn.functional.ctc_loss(
            probe(codes).transpose(0, 1),
            torch.tensor([t for ts in targets for t in ts]),
            lengths * upsample,
            torch.tensor([len(t) for t in targets]),
            zero_infinity=True,
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        codes, lengths = _pad(list(test_codes))
        best = probe(codes).argmax(-1)  # (B, T*U)
    hypotheses, references = [], []
    for row, length, phonemes in zip(best, lengths.tolist(), test_phonemes, strict=True):
        collapsed = [
            int(i) for j, i in enumerate(row[: length * upsample]) if i and (j == 0 or i != row[j - 1])
        ]
        hypotheses.append(" ".join(units[i - 1] for i in collapsed) or "-")
        references.append(" ".join(units[i - 1] for i in encode(phonemes)) or "-")
    return float(jiwer.wer(references, hypotheses))  # over space-separated units: the unit error rate


def _histograms(codes: Sequence[Tensor], codebook_size: int) -> np.ndarray:
    return np.stack([np.bincount(c.numpy(), minlength=codebook_size) / len(c) for c in codes])


def speaker_probe(
    train_codes: Sequence[Tensor],
    train_speakers: Sequence[str],
    test_codes: Sequence[Tensor],
    test_speakers: Sequence[str],
    codebook_size: int,
) -> float:
    """Logistic regression on per-utterance code histograms of one or more levels ([L, T_i]); test accuracy."""
    from sklearn.linear_model import LogisticRegression

    def features(codes: Sequence[Tensor]) -> np.ndarray:
        return np.concatenate(
            [_histograms([c[k] for c in codes], codebook_size) for k in range(codes[0].shape[0])], 1
        )

    model = LogisticRegression(C=10.0, max_iter=3000).fit(features(train_codes), list(train_speakers))
    return float(np.mean(model.predict(features(test_codes)) == np.array(test_speakers)))


def probe_levels(
    train_codes: Sequence[Tensor],
    train_phonemes: Sequence[str],
    train_speakers: Sequence[str],
    test_codes: Sequence[Tensor],
    test_phonemes: Sequence[str],
    test_speakers: Sequence[str],
    codebook_size: int,
    upsample: int = 4,
    steps: int = 300,
) -> ProbeResult:
    """Both probes on every level of codes [K, T_i] (and the speaker probe on all levels together)."""
    levels = train_codes[0].shape[0]
    per, accuracy = {}, {}
    for k in range(levels):
        name = f"level{k + 1}"
        per[name] = content_probe(
            [c[k] for c in train_codes], train_phonemes, [c[k] for c in test_codes], test_phonemes,
            codebook_size, upsample, steps,
        )  # fmt: skip
        accuracy[name] = speaker_probe(
            [c[k : k + 1] for c in train_codes], train_speakers, [c[k : k + 1] for c in test_codes], test_speakers,
            codebook_size,
        )  # fmt: skip
    rest = ([c[1:] for c in train_codes], train_speakers, [c[1:] for c in test_codes], test_speakers)
    accuracy[f"levels2-{levels}"] = speaker_probe(*rest, codebook_size)
    accuracy["all"] = speaker_probe(train_codes, train_speakers, test_codes, test_speakers, codebook_size)
    return ProbeResult(per, accuracy, len(set(train_speakers)))
