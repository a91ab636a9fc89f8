import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anyseq.modalities import ModalitySpec
from anyseq.vocab import VocabLayout, special_token_names


@st.composite
def modality_specs(draw):
    names = draw(st.lists(st.sampled_from(["image", "speech", "music"]), min_size=1, max_size=3, unique=True))
    specs = []
    for name in names:
        k = draw(st.integers(1, 4))
        size = draw(st.integers(1, 50))
        if draw(st.booleans()):
            specs.append(ModalitySpec(name, k, size, tokens_per_item=k * draw(st.integers(1, 8))))
        else:
            specs.append(ModalitySpec(name, k, size, max_frames=draw(st.integers(1, 20))))
    return specs


@settings(max_examples=40, deadline=None)
@given(specs=modality_specs(), data=st.data())
def test_to_global_to_local_round_trip(bpe, specs, data):
    layout = VocabLayout(bpe, specs)
    seen = set(range(layout.text_size)) | set(layout.special_ids.values())
    for spec in specs:
        local = torch.tensor(
            data.draw(st.lists(st.integers(0, spec.size - 1), max_size=30)), dtype=torch.long
        )
        ids = layout.to_global(spec.name, local)
        assert torch.equal(layout.to_local(spec.name, ids), local)
        r = layout.ranges[spec.name]
        assert all(layout.modality_of(i) == spec.name for i in ids.tolist())
        assert not (set(range(r.start, r.end)) & seen), "ranges must not overlap"
        seen |= set(range(r.start, r.end))
    assert len(seen) == layout.vocab_size


def test_layout_order_and_names(layout, bpe):
    assert layout.text_size == bpe.get_vocab_size()
    specials = [layout.special(t) for t in special_token_names()]
    assert specials == list(range(layout.text_size, layout.text_size + len(specials)))
    assert layout.ranges["image"].start == specials[-1] + 1
    assert layout.ranges["music"].end == layout.vocab_size
    full = layout.full_tokenizer()
    assert full.id_to_token(layout.ranges["image"].start + 17) == "<img_17>"
    music = layout.ranges["music"]
    assert full.id_to_token(music.start + 2 * 32 + 31) == "<mu2_31>"
    assert full.id_to_token(layout.special("[AnyGPT]")) == "[AnyGPT]"


def test_text_with_control_strings_stays_text(layout):
    ids = layout.encode_text("hi <eoh> [AnyGPT] <img_3> </s>")
    assert all(layout.is_text(i) for i in ids)
    assert layout.eos_id not in ids
    assert layout.decode_text(ids) == "hi <eoh> [AnyGPT] <img_3> </s>"


def test_out_of_range_ids_are_named(layout):
    with pytest.raises(ValueError, match=r"image: local ids must lie in \[0, 512\), got \[0, 512\]"):
        layout.to_global("image", torch.tensor([0, 512]))
    start = layout.ranges["speech"].start
    with pytest.raises(ValueError, match=f"music: id {start} is outside its range"):
        layout.to_local("music", torch.tensor([start]))
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        layout.to_global("video", torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        ModalitySpec("video", 1, 8, tokens_per_item=4)
    with pytest.raises(ValueError, match="are not text ids"):
        layout.decode_text([layout.vocab_size - 1])


def test_layout_survives_json(layout):
    rebuilt = VocabLayout.from_dict(layout.to_dict(), layout.full_tokenizer())
    assert rebuilt.to_dict() == layout.to_dict()
    tampered = layout.to_dict() | {"vocab_size": layout.vocab_size + 1}
    with pytest.raises(ValueError, match="does not match its tokenizer.json"):
        VocabLayout.from_dict(tampered, layout.full_tokenizer())
