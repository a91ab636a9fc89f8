"""One vocabulary for every modality (AnyGPT, section 3; DESIGN.md section 3).

Order of ids: the text tokenizer's ids, then the special tokens, then one contiguous
range per modality (a K-codebook modality owns K x codebook_size ids). `VocabLayout`
is the only place where local codes become global ids and back.

Text parts are encoded by a copy of the text tokenizer with no added tokens, so a user
who types `<eoh>` or `<img_3>` gets plain text, never a control or media token. The
saved `tokenizer.json` names every special and modality token, so a plain
`AutoTokenizer` decodes any output by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from anyseq.modalities.base import BOUNDARY_TOKENS, ModalitySpec

ROLE_TOKENS = {"user": "[Human]", "assistant": "[AnyGPT]"}
EOH, EOM = "<eoh>", "<eom>"  # end of a human turn, end of a model turn
TEXT_SPECIALS = ("<s>", "</s>", "<pad>")  # bos, eos, pad of the BPE AnySeq trains


def special_token_names() -> list[str]:
    """AnyGPT's special tokens in id order: boundaries of every known modality, roles, turn ends."""
    boundaries = [token for start, end, _ in BOUNDARY_TOKENS.values() for token in (start, end)]
    return [*boundaries, *ROLE_TOKENS.values(), EOH, EOM]


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE (never an unknown token) trained on `texts`, with bos/eos/pad."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(TEXT_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def load_text_tokenizer(directory: str | Path) -> Tokenizer:
    """The `tokenizer.json` of a local HF tokenizer directory (e.g. LLaMA's); never downloads."""
    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no tokenizer.json (a fast HF tokenizer directory is required)")
    return Tokenizer.from_file(str(path))


def _without_added_tokens(tokenizer: Tokenizer, keep_below: int | None = None) -> Tokenizer:
    """A copy of `tokenizer` whose added tokens (all, or those with id >= keep_below) are dropped."""
    data = json.loads(tokenizer.to_str())
    data["added_tokens"] = [
        t for t in data["added_tokens"] if keep_below is not None and t["id"] < keep_below
    ]
    return Tokenizer.from_str(json.dumps(data))


@dataclass(frozen=True)
class ModalityRange:
    spec: ModalitySpec
    start: int  # first global id

    @property
    def end(self) -> int:
        return self.start + self.spec.size


class VocabLayout:
    """Text ids, special tokens and one id range per modality.

    Args:
        text_tokenizer: the text part (a trained BPE, or a local LLaMA tokenizer); its
            added tokens (bos/eos...) count as text ids.
        modalities: the modalities in id order.
        bos, eos, pad: token strings; reused from the text tokenizer when it has them.
    """

    def __init__(
        self,
        text_tokenizer: Tokenizer,
        modalities: Sequence[ModalitySpec],
        bos: str = "<s>",
        eos: str = "</s>",
        pad: str = "<pad>",
    ) -> None:
        names = [spec.name for spec in modalities]
        if len(set(names)) != len(names):
            raise ValueError(f"each modality may appear once, got {names}")
        self.text_tokenizer = text_tokenizer
        self.text_size = text_tokenizer.get_vocab_size(with_added_tokens=True)
        self._encoder = _without_added_tokens(text_tokenizer)
        self.bos_token, self.eos_token, self.pad_token = bos, eos, pad

        self.special_ids: dict[str, int] = {}
        next_id = self.text_size
        for token in (bos, eos, pad):
            existing = text_tokenizer.token_to_id(token)
            if existing is not None:
                self.special_ids[token] = existing
            else:
                self.special_ids[token] = next_id
                next_id += 1
        for token in special_token_names():
            self.special_ids[token] = next_id
            next_id += 1

        self.ranges: dict[str, ModalityRange] = {}
        for spec in modalities:
            self.ranges[spec.name] = ModalityRange(spec, next_id)
            next_id += spec.size
        self.vocab_size = next_id
        self._start_ids = {self.special_ids[r.spec.start_token]: name for name, r in self.ranges.items()}

    # ---- ids of named tokens -------------------------------------------------------
    @property
    def bos_id(self) -> int:
        return self.special_ids[self.bos_token]

    @property
    def eos_id(self) -> int:
        return self.special_ids[self.eos_token]

    @property
    def pad_id(self) -> int:
        return self.special_ids[self.pad_token]

    def special(self, token: str) -> int:
        if token not in self.special_ids:
            raise KeyError(f"{token!r} is not a special token; known: {sorted(self.special_ids)}")
        return self.special_ids[token]

    @property
    def modalities(self) -> list[ModalitySpec]:
        return [r.spec for r in self.ranges.values()]

    def spec(self, modality: str) -> ModalitySpec:
        return self._range(modality).spec

    def _range(self, modality: str) -> ModalityRange:
        if modality not in self.ranges:
            raise ValueError(f"unknown modality {modality!r}; this vocabulary has {sorted(self.ranges)}")
        return self.ranges[modality]

    def start_of(self, modality: str) -> int:
        return self.special_ids[self._range(modality).spec.start_token]

    def end_of(self, modality: str) -> int:
        return self.special_ids[self._range(modality).spec.end_token]

    def modality_started_by(self, token_id: int) -> str | None:
        """The modality whose span `token_id` opens, or None."""
        return self._start_ids.get(token_id)

    # ---- text ------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        """Plain text -> text ids; control strings such as `<eoh>` stay text."""
        return self._encoder.encode(text, add_special_tokens=False).ids

    def decode_text(self, ids: Sequence[int]) -> str:
        bad = [i for i in ids if not 0 <= i < self.text_size]
        if bad:
            raise ValueError(f"ids {bad[:5]} are not text ids (text ids are 0..{self.text_size - 1})")
        return self.text_tokenizer.decode(list(ids), skip_special_tokens=False)

    def is_text(self, token_id: int) -> bool:
        return 0 <= token_id < self.text_size

    # ---- media: the only place offsets are added or removed --------------------------
    def to_global(self, modality: str, local_ids: torch.Tensor) -> torch.Tensor:
        """Local ids in [0, K*codebook_size) of `modality` -> global vocabulary ids."""
        r = self._range(modality)
        if local_ids.numel() and (local_ids.min() < 0 or local_ids.max() >= r.spec.size):
            raise ValueError(
                f"{modality}: local ids must lie in [0, {r.spec.size}), "
                f"got [{int(local_ids.min())}, {int(local_ids.max())}]"
            )
        return local_ids.long() + r.start

    def to_local(self, modality: str, global_ids: torch.Tensor) -> torch.Tensor:
        """Global ids of `modality`'s range -> local ids; any other id is an error."""
        r = self._range(modality)
        if global_ids.numel() and (global_ids.min() < r.start or global_ids.max() >= r.end):
            outside = global_ids[(global_ids < r.start) | (global_ids >= r.end)]
            raise ValueError(f"{modality}: id {int(outside[0])} is outside its range [{r.start}, {r.end})")
        return global_ids.long() - r.start

    def modality_of(self, token_id: int) -> str | None:
        """The modality whose range holds `token_id`, or None."""
        for name, r in self.ranges.items():
            if r.start <= token_id < r.end:
                return name
        return None

    # ---- the tokenizer that names every token ----------------------------------------
    def full_tokenizer(self) -> Tokenizer:
        """The text tokenizer plus every special and modality token, ids matching this layout."""
        full = Tokenizer.from_str(self.text_tokenizer.to_str())
        new_specials = [
            t for t, i in sorted(self.special_ids.items(), key=lambda kv: kv[1]) if i >= self.text_size
        ]
        full.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in new_specials])
        for r in self.ranges.values():
            names = [r.spec.token_name(i) for i in range(r.spec.size)]
            full.add_special_tokens([AddedToken(n, special=True, normalized=False) for n in names])
        if full.get_vocab_size(with_added_tokens=True) != self.vocab_size:
            raise RuntimeError(
                f"tokenizer has {full.get_vocab_size(with_added_tokens=True)} ids, layout {self.vocab_size}: "
                "the text tokenizer already holds some of the special or modality token names"
            )
        return full

    def to_dict(self) -> dict:
        return {
            "text_size": self.text_size,
            "vocab_size": self.vocab_size,
            "bos": self.bos_token,
            "eos": self.eos_token,
            "pad": self.pad_token,
            "special_ids": self.special_ids,
            "modalities": [{"start": r.start, **r.spec.to_dict()} for r in self.ranges.values()],
        }

    @classmethod
    def from_dict(cls, data: dict, full_tokenizer: Tokenizer) -> VocabLayout:
        """Rebuild from `anyseq.json`'s layout and the saved full tokenizer; checks every id."""
        text = _without_added_tokens(full_tokenizer, keep_below=data["text_size"])
        specs = [ModalitySpec(**{k: v for k, v in m.items() if k != "start"}) for m in data["modalities"]]
        layout = cls(text, specs, bos=data["bos"], eos=data["eos"], pad=data["pad"])
        if layout.to_dict() != data:
            raise ValueError("the saved vocabulary layout does not match its tokenizer.json")
        return layout
