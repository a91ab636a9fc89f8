import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anyseq.patterns import FrameMajorPattern, build_pattern


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 8), size=st.integers(1, 64), frames=st.integers(0, 12), seed=st.integers(0, 2**16))
def test_flatten_unflatten_round_trip(k, size, frames, seed):
    pattern = FrameMajorPattern(k, size)
    codes = torch.randint(0, size, (k, frames), generator=torch.Generator().manual_seed(seed))
    flat = pattern.flatten(codes)
    assert flat.shape == (k * frames,)
    assert torch.equal(pattern.unflatten(flat), codes)
    for position, token in enumerate(flat.tolist()):
        assert token // size == pattern.level_at(position)


def test_frame_major_matches_anygpt_music_layout():
    # AnyGPT: for each frame, levels 0..3, token = code + 2048 * level.
    codes = torch.tensor([[5, 6], [7, 8], [9, 10], [11, 12]])
    flat = FrameMajorPattern(4, 2048).flatten(codes)
    assert flat.tolist() == [5, 2048 + 7, 4096 + 9, 6144 + 11, 6, 2048 + 8, 4096 + 10, 6144 + 12]


def test_unflatten_rejects_partial_frames_and_wrong_levels():
    pattern = FrameMajorPattern(2, 10)
    with pytest.raises(ValueError, match="not a whole number of 2-token frames"):
        pattern.unflatten(torch.tensor([1, 12, 3]))
    with pytest.raises(ValueError, match="not a level-1 id"):
        pattern.unflatten(torch.tensor([1, 3]))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 10\)"):
        pattern.flatten(torch.tensor([[10], [0]]))
    with pytest.raises(ValueError, match="unknown codebook pattern"):
        build_pattern("delayed", 2, 10)
