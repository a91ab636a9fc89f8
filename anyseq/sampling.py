"""Per-modality sampling settings, with AnyGPT's defaults (REFERENCE.md, "Generation settings").

Inside a span of a modality the engine samples with that modality's settings; outside
spans with the "text" settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    repetition_penalty: float = 1.0  # HF semantics, applied to the ids already in the current span

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"sampling setting {name} must be a number, got {value!r}")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or self.repetition_penalty <= 0:
            raise ValueError(f"invalid sampling settings: {self}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict:
        return asdict(self)


# AnyGPT's released inference settings.
DEFAULT_SAMPLING: dict[str, SamplingConfig] = {
    "text": SamplingConfig(temperature=1.0, top_p=1.0),
    "image": SamplingConfig(temperature=1.0, top_p=1.0),
    "speech": SamplingConfig(repetition_penalty=1.05),
    "music": SamplingConfig(top_k=200, repetition_penalty=1.15),
}


def sampling_from_dict(data: Mapping[str, Mapping[str, Any]]) -> dict[str, SamplingConfig]:
    """Settings as `anyseq.json` stores them; a modality or setting left out keeps AnyGPT's."""
    return with_sampling(DEFAULT_SAMPLING, data)


def with_sampling(
    sampling: Mapping[str, SamplingConfig], changes: Mapping[str, Mapping[str, Any]]
) -> dict[str, SamplingConfig]:
    """`sampling` with some settings of some modalities changed, e.g. `{"speech": {"temperature": 0.5}}`
    (the settings not named are kept)."""
    example = '{"speech": {"temperature": 0.5}}'
    if not isinstance(changes, Mapping):
        raise ValueError(f"sampling: expected settings per modality, e.g. {example}, got {changes!r}")
    known = {f.name for f in fields(SamplingConfig)}
    merged = dict(sampling)
    for name, values in changes.items():
        if not isinstance(values, Mapping):
            raise ValueError(f"sampling[{name!r}]: expected settings, e.g. {example}, got {values!r}")
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"sampling[{name!r}]: unknown settings {unknown}; known: {sorted(known)}")
        try:
            merged[name] = replace(merged.get(name, SamplingConfig()), **values)
        except ValueError as error:
            raise ValueError(f"sampling[{name!r}]: {error}") from None
    return merged
