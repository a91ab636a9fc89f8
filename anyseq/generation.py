"""Modality-aware generation (DESIGN.md section 5). The engine knows nothing about files.

When the model opens a media span, sampling is restricted to that modality's ids, and
for K codebooks to the ids of level `t mod K` (the pattern's order); the span closes at
exactly the length the tokenizer needs: a fixed count for images, whole frames up to a
maximum for audio. Each modality samples with its own settings (AnyGPT's defaults in
`sampling.py`). Prompts are batched with left padding and decoded with the KV cache; a
callback can stream every token and every finished part.

The constraint is one precomputed additive bias row per state (text, level k of a
modality, "level 0 or end", "end only"), gathered per sequence at each step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from transformers import DynamicCache, PreTrainedModel

from anyseq.conversation import Part, parse_reply
from anyseq.patterns import build_pattern
from anyseq.sampling import DEFAULT_SAMPLING, SamplingConfig
from anyseq.vocab import EOM, VocabLayout

FinishReason = Literal["eom", "eos", "length"]
TokenCallback = Callable[[int, int], None]  # (sequence index, token id)
PartCallback = Callable[[int, Part], None]  # (sequence index, finished part)


@dataclass
class GenerationResult:
    ids: list[int]  # generated ids, the prompt excluded
    parts: list[Part]
    finish_reason: FinishReason
    error: str | None = None  # why `ids` do not parse; possible only with constrain=False


@dataclass
class _SequenceState:
    """Where one sequence is: in text (modality None) or `position` tokens into a span."""

    modality: str | None = None
    position: int = 0
    ids: list[int] = field(default_factory=list)
    finished: FinishReason | None = None
    parts_emitted: int = 0
    prefix: list[int] = field(default_factory=list)  # the prompt's open span, e.g. [<soim>]


class GenerationEngine:
    """Batched, KV-cached sampling with per-modality settings and span constraints.

    Args:
        model: a causal LM whose vocabulary covers `layout.vocab_size` ids.
        layout: the vocabulary layout.
        sampling: settings per modality name and "text" (AnyGPT's defaults otherwise).
        constrain: apply the span constraints (off only to measure what they cost).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        layout: VocabLayout,
        sampling: Mapping[str, SamplingConfig] | None = None,
        constrain: bool = True,
    ) -> None:
        self.model = model
        self.layout = layout
        self.sampling = {**DEFAULT_SAMPLING, **(sampling or {})}
        self.constrain = constrain
        self.context_length = model.config.max_position_embeddings
        self.vocab_rows = model.get_output_embeddings().weight.shape[0]
        self.eom_id = layout.special(EOM)
        self.end_ids = {layout.end_of(name): name for name in layout.ranges}
        self.patterns = {
            name: build_pattern(r.spec.pattern, r.spec.num_codebooks, r.spec.codebook_size)
            for name, r in layout.ranges.items()
        }
        self._build_tables()

    # ---- constraint and sampling tables ------------------------------------------------
    def _build_tables(self) -> None:
        layout, rows = self.layout, []
        blocked = torch.full((self.vocab_rows,), float("-inf"))

        text = blocked.clone()
        text[: layout.text_size] = 0.0
        text[[layout.bos_id, layout.pad_id]] = float("-inf")
        text[[layout.eos_id, self.eom_id, *(layout.start_of(name) for name in layout.ranges)]] = 0.0
        rows.append(text)

        self._level_rows: dict[str, list[int]] = {}
        self._level0_or_end_row: dict[str, int] = {}
        self._end_row: dict[str, int] = {}
        for name, r in layout.ranges.items():
            spec = r.spec
            self._level_rows[name] = []
            for level in range(spec.num_codebooks):
                row = blocked.clone()
                start = r.start + level * spec.codebook_size
                row[start : start + spec.codebook_size] = 0.0
                self._level_rows[name].append(len(rows))
                rows.append(row)
            end = blocked.clone()
            end[layout.end_of(name)] = 0.0
            self._end_row[name] = len(rows)
            rows.append(end)
            either = rows[self._level_rows[name][0]].clone()
            either[layout.end_of(name)] = 0.0
            self._level0_or_end_row[name] = len(rows)
            rows.append(either)
        self.bias = torch.stack(rows)  # (states, V)

        # Settings per mode: index 0 is text, then one per modality in layout order.
        self._mode_index = {None: 0, **{name: i + 1 for i, name in enumerate(layout.ranges)}}
        modes = [
            self.sampling["text"],
            *(self.sampling.get(name, SamplingConfig()) for name in layout.ranges),
        ]
        self._set_mode_settings(modes)

    def _set_mode_settings(self, modes: Sequence[SamplingConfig]) -> None:
        self._temperature = torch.tensor([m.temperature for m in modes])
        self._top_p = torch.tensor([m.top_p for m in modes])
        self._top_k = torch.tensor([m.top_k for m in modes])
        self._penalty = torch.tensor([m.repetition_penalty for m in modes])

    def _state_row(self, state: _SequenceState) -> int:
        if state.modality is None:
            return 0
        spec = self.layout.spec(state.modality)
        position = state.position
        if position >= spec.max_span_tokens:
            return self._end_row[state.modality]
        level = self.patterns[state.modality].level_at(position)
        if spec.tokens_per_item is None and position > 0 and level == 0:
            return self._level0_or_end_row[state.modality]
        return self._level_rows[state.modality][level]

    # ---- state machine -----------------------------------------------------------------
    def _advance(self, state: _SequenceState, token: int) -> None:
        """Move the state past `token` (used for the prompt's tail and for each sample)."""
        started = self.layout.modality_started_by(token)
        if started is not None and state.modality is None:
            state.modality, state.position = started, 0
        elif state.modality is not None and token in self.end_ids:
            state.modality, state.position = None, 0
        elif state.modality is not None:
            state.position += 1

    def _initial_state(self, prompt: Sequence[int]) -> _SequenceState:
        """A prompt may end inside an open span (e.g. `[AnyGPT]: <soim>` asks for an image)."""
        state = _SequenceState()
        for token in prompt[self._last_span_start(prompt) :]:
            self._advance(state, token)
        if state.modality is not None:
            state.prefix = list(prompt[len(prompt) - state.position - 1 :])
        return state

    def _last_span_start(self, prompt: Sequence[int]) -> int:
        for index in range(len(prompt) - 1, -1, -1):
            token = prompt[index]
            if token in self.end_ids:
                return index + 1
            if self.layout.modality_started_by(token) is not None:
                return index
        return len(prompt)

    # ---- sampling ----------------------------------------------------------------------
    def _sample(
        self,
        logits: torch.Tensor,
        modes: torch.Tensor,
        presence: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """logits (B, V), modes (B,) -> next ids (B,)."""
        penalty = self._penalty[modes].unsqueeze(1)  # (B, 1)
        if (penalty != 1).any():
            penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
            logits = torch.where(presence & (penalty != 1), penalised, logits)
        temperature = self._temperature[modes]
        greedy = temperature == 0
        logits = logits / torch.where(greedy, 1.0, temperature).unsqueeze(1)
        top_k, top_p = self._top_k[modes], self._top_p[modes]
        if ((top_k > 0) | (top_p < 1)).any():
            sorted_logits, order = logits.sort(dim=-1, descending=True)
            rank = torch.arange(logits.shape[-1]).unsqueeze(0)  # (1, V)
            drop = (top_k > 0).unsqueeze(1) & (rank >= top_k.unsqueeze(1))
            cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
            drop |= (cumulative - sorted_logits.softmax(dim=-1)) >= top_p.unsqueeze(1)
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
        sampled = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(1)
        return torch.where(greedy, logits.argmax(dim=-1), sampled)

    # ---- the loop ----------------------------------------------------------------------
    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int = 512,
        seed: int | None = None,
        on_token: TokenCallback | None = None,
        on_part: PartCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[GenerationResult]:
        """Continue each prompt until `<eom>`, eos, `max_new_tokens` or the context ends."""
        if not prompts:
            return []
        prompts = [[int(t) for t in p] for p in prompts]
        for index, prompt in enumerate(prompts):
            if not prompt:
                raise ValueError(f"prompt {index} is empty")
            if len(prompt) >= self.context_length:
                raise ValueError(
                    f"prompt {index} has {len(prompt)} tokens; the context holds {self.context_length}, "
                    "leaving no room to generate"
                )
            bad = [t for t in prompt if not 0 <= t < self.layout.vocab_size]
            if bad:
                raise ValueError(
                    f"prompt {index}: ids {bad[:5]} are outside the vocabulary [0, {self.layout.vocab_size})"
                )
        batch, longest = len(prompts), max(len(p) for p in prompts)
        steps = min(max_new_tokens, self.context_length - longest)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None

        input_ids = torch.full((batch, longest), self.layout.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, longest), dtype=torch.long)
        for b, prompt in enumerate(prompts):  # left padding
            input_ids[b, longest - len(prompt) :] = torch.tensor(prompt)
            attention_mask[b, longest - len(prompt) :] = 1
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        states = [self._initial_state(p) for p in prompts]
        presence = torch.zeros((batch, self.vocab_rows), dtype=torch.bool)
        cache = DynamicCache()

        for _ in range(steps):
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            logits = out.logits[:, -1, :].float()  # (B, V)
            modes = torch.tensor([self._mode_index[s.modality] for s in states])
            if self.constrain:
                logits = logits + self.bias[[self._state_row(s) for s in states]]
            tokens = self._sample(logits, modes, presence, generator).tolist()

            for b, (state, token) in enumerate(zip(states, tokens, strict=True)):
                if state.finished:
                    continue
                was_in_span = state.modality
                self._advance(state, token)
                state.ids.append(token)
                if on_token:
                    on_token(b, token)
                if state.modality != was_in_span:
                    presence[b] = False
                else:
                    presence[b, token] = True
                if token == self.eom_id and state.modality is None:
                    state.finished = "eom"
                elif token == self.layout.eos_id and state.modality is None:
                    state.finished = "eos"
                if on_part and self.constrain and (state.finished or state.modality != was_in_span):
                    self._emit_parts(b, state, on_part)
            if all(s.finished for s in states) or (should_stop and should_stop()):
                break
            input_ids = torch.tensor(tokens).unsqueeze(1)
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((batch, 1))], dim=1)
            position_ids = position_ids[:, -1:] + 1

        results = []
        for b, state in enumerate(states):
            result = GenerationResult(state.ids, [], state.finished or "length")
            try:
                result.parts = self._parts(state)
            except ValueError as error:
                if self.constrain:
                    raise
                result.error = str(error)
            if on_part and not state.finished and result.error is None:
                self._emit_parts(b, state, on_part)
            results.append(result)
        return results

    def _parts(self, state: _SequenceState) -> list[Part]:
        """Parts finished so far; an unclosed span at the end (a length stop) is dropped."""
        ids = state.prefix + state.ids
        if state.modality is not None:
            ids = ids[: len(ids) - state.position - 1]
        return parse_reply(ids, self.layout)

    def _emit_parts(self, b: int, state: _SequenceState, on_part: PartCallback) -> None:
        """Called when a span opens or closes, or at the end: every parsed part is complete."""
        parts = self._parts(state)
        for part in parts[state.parts_emitted :]:
            on_part(b, part)
        state.parts_emitted = len(parts)
