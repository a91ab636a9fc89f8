import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anyseq.conversation import Conversation, Media, Message, Text, render
from anyseq.generation import GenerationEngine
from anyseq.sampling import SamplingConfig

SAMPLING = st.builds(
    SamplingConfig,
    temperature=st.sampled_from([0.0, 0.7, 1.0, 1.5]),
    top_p=st.sampled_from([0.5, 0.9, 1.0]),
    top_k=st.sampled_from([0, 1, 5, 200]),
    repetition_penalty=st.sampled_from([1.0, 1.05, 1.3]),
)


def prompt(layout, open_span: str | None = None) -> list[int]:
    ids = render(Conversation([Message("user", [Text("Draw")])], None), layout, add_generation_prompt=True)
    ids = ids.ids.tolist()
    if open_span:
        ids += layout.encode_text(": ") + [layout.start_of(open_span)]
    return ids


def push_logits(model, boosts: dict[int, float]) -> None:
    """Add fixed amounts to some logits at every step, whatever the hidden state."""

    def hook(module, inputs, output):
        for token, amount in boosts.items():
            output[..., token] += amount
        return output

    model.lm_head.register_forward_hook(hook)


def assert_well_formed(result, layout, forced: str | None):
    media = [p for p in result.parts if isinstance(p, Media)]
    if forced and result.finish_reason != "length":
        assert media and media[0].modality == forced or forced in {p.modality for p in media}
    for part in media:
        spec = layout.spec(part.modality)
        k, frames = part.codes.shape
        assert k == spec.num_codebooks
        if spec.tokens_per_item:
            assert k * frames == spec.tokens_per_item
        else:
            assert 1 <= frames <= spec.max_frames
        assert 0 <= part.codes.min() and part.codes.max() < spec.codebook_size


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000), forced=st.sampled_from([None, "image", "speech", "music"]), data=st.data()
)
def test_random_model_always_yields_well_formed_spans(model, layout, seed, forced, data):
    sampling = {name: data.draw(SAMPLING) for name in ["text", "image", "speech", "music"]}
    engine = GenerationEngine(model, layout, sampling)
    results = engine.generate([prompt(layout, forced), prompt(layout)], max_new_tokens=60, seed=seed)
    for result in results:
        assert_well_formed(result, layout, forced if result is results[0] else None)


@pytest.mark.parametrize("modality", ["image", "speech", "music"])
def test_constraints_hold_against_a_model_that_wants_to_end_or_stray(model, layout, modality):
    # Make the model prefer, above all, closing the span at once, then ids of another level.
    r = layout.ranges[modality]
    # The last level's last code is at the wrong level for most positions.
    push_logits(model, {layout.end_of(modality): 50.0, r.start + r.spec.size - 1: 40.0})
    engine = GenerationEngine(model, layout, {modality: SamplingConfig(temperature=0.0)})
    (result,) = engine.generate([prompt(layout, modality)], max_new_tokens=200)
    span = result.ids[: result.ids.index(layout.end_of(modality))]
    spec = r.spec
    expected = spec.tokens_per_item or spec.num_codebooks  # audio may close after one whole frame
    assert len(span) == expected
    assert_well_formed(result, layout, modality)

    unconstrained = GenerationEngine(
        model, layout, {modality: SamplingConfig(temperature=0.0)}, constrain=False
    )
    (free,) = unconstrained.generate([prompt(layout, modality)], max_new_tokens=5)
    assert free.ids[0] == layout.end_of(modality)  # the same model, unconstrained, breaks the span
    if modality == "image":
        assert "image: a span must have 16 tokens, got 0" in free.error


def test_audio_span_closes_at_its_maximum(model, layout):
    spec = layout.spec("music")
    push_logits(model, {layout.end_of("music"): -50.0})
    engine = GenerationEngine(model, layout)
    (result,) = engine.generate([prompt(layout, "music")], max_new_tokens=300, seed=0)
    media = [p for p in result.parts if isinstance(p, Media)]
    assert media[0].codes.shape == (spec.num_codebooks, spec.max_frames)


def test_batched_left_padded_greedy_equals_one_by_one(model, layout):
    greedy = {name: SamplingConfig(temperature=0.0) for name in ["text", "image", "speech", "music"]}
    engine = GenerationEngine(model, layout, greedy)
    prompts = [
        prompt(layout),
        prompt(layout, "image"),
        prompt(layout)[:4] + prompt(layout),
        prompt(layout, "music"),
    ]
    batched = engine.generate(prompts, max_new_tokens=30)
    for p, together in zip(prompts, batched, strict=True):
        (alone,) = engine.generate([p], max_new_tokens=30)
        assert alone.ids == together.ids


def test_streaming_callbacks_match_the_result(model, layout):
    tokens, parts = {0: [], 1: []}, {0: [], 1: []}
    engine = GenerationEngine(model, layout)
    results = engine.generate(
        [prompt(layout, "image"), prompt(layout, "music")],
        max_new_tokens=80,
        seed=3,
        on_token=lambda b, t: tokens[b].append(t),
        on_part=lambda b, p: parts[b].append(p),
    )
    for b, result in enumerate(results):
        assert tokens[b] == result.ids
        assert parts[b] == result.parts


def test_stops_at_eom(model, layout):
    push_logits(model, {layout.special("<eom>"): 50.0})
    (result,) = GenerationEngine(model, layout).generate([prompt(layout)], max_new_tokens=50, seed=0)
    assert result.finish_reason == "eom" and result.ids == [layout.special("<eom>")]


def test_bad_prompts_are_named(model, layout):
    engine = GenerationEngine(model, layout)
    context = model.config.max_position_embeddings
    with pytest.raises(ValueError, match=f"prompt 0 has {context} tokens; the context holds {context}"):
        engine.generate([[layout.bos_id] * context])
    with pytest.raises(ValueError, match=r"prompt 1: ids \[99999\] are outside the vocabulary"):
        engine.generate([[1, 2], [99999]])
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        engine.generate([[]])
