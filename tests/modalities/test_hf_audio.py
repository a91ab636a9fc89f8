"""Adapters for transformers' EnCodec, DAC and Mimi, built from tiny random configs saved to disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from anyseq.media import Audio, MediaError
from anyseq.modalities import build_tokenizer, load_tokenizer, save_tokenizer
from anyseq.modalities.hf_audio import DacTokenizer, EncodecTokenizer, HFAudioTokenizer, MimiTokenizer


def _configs() -> dict[str, object]:
    from transformers import DacConfig, EncodecConfig, MimiConfig

    return {
        # the public 32 kHz EnCodec's layout (4 levels x 2048 at 50 Hz, 2.2 kbps), 16 channels wide
        "encodec": EncodecConfig(
            sampling_rate=32000,
            upsampling_ratios=[8, 5, 4, 4],
            target_bandwidths=[2.2],
            codebook_size=2048,
            hidden_size=16,
            num_filters=4,
            num_lstm_layers=1,
        ),
        "dac": DacConfig(
            encoder_hidden_size=4, decoder_hidden_size=16, n_codebooks=4, codebook_size=64, codebook_dim=4
        ),
        "mimi": MimiConfig(
            hidden_size=16,
            num_filters=4,
            codebook_size=64,
            codebook_dim=16,
            num_quantizers=4,
            vector_quantization_hidden_dimension=16,
            num_hidden_layers=1,
            intermediate_size=32,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
            upsample_groups=16,
            sliding_window=16,
        ),
    }


# kind -> (adapter, K by default, frames of 1 s, decoded samples of those frames)
EXPECTED = {
    "encodec": (EncodecTokenizer, 4, 50, 32000),
    "dac": (DacTokenizer, 4, 31, 31 * 512),
    "mimi": (MimiTokenizer, 4, 13, 13 * 1920),
}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, str]:
    """Each codec with random weights (codebooks too, which transformers initialises to zeros)."""
    from transformers import DacModel, EncodecModel, MimiModel

    classes = {"encodec": EncodecModel, "dac": DacModel, "mimi": MimiModel}
    dirs = {}
    for kind, config in _configs().items():
        torch.manual_seed(0)
        model = classes[kind](config)
        for name, buffer in model.named_buffers():
            if name.endswith(("codebook.embed", "codebook.embed_sum")):
                buffer.normal_()
        directory = tmp_path_factory.mktemp(kind)
        model.save_pretrained(directory)
        dirs[kind] = str(directory)
    return dirs


def sweep(seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * (200 + 600 * t) * t)).astype(np.float32)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_contract_from_a_local_directory(model_dirs, kind, tmp_path):
    adapter, levels, frames, samples = EXPECTED[kind]
    tokenizer = build_tokenizer(kind, model_dir=model_dirs[kind])
    assert isinstance(tokenizer, adapter)
    assert (tokenizer.name, tokenizer.num_codebooks) == ("music", levels)
    codes = tokenizer.encode(Audio(sweep(), 16000))  # resampled to the codec's rate
    assert codes.shape == (levels, frames) and codes.dtype == torch.long
    assert 0 <= codes.min() and codes.max() < tokenizer.codebook_size and codes.unique().numel() > 1
    audio = tokenizer.decode(codes)
    assert audio.sample_rate == tokenizer.sample_rate and audio.samples.shape == (samples,)
    assert audio.samples.dtype == np.float32 and np.abs(audio.samples).max() <= 1.0
    spec = tokenizer.spec
    assert spec.num_codebooks == levels and spec.max_frames == int(np.ceil(5.0 * tokenizer.frame_rate))
    save_tokenizer(tokenizer, tmp_path / kind)
    saved = json.loads((tmp_path / kind / "config.json").read_text())
    assert saved["kind"] == kind and saved["model_config"]["model_type"] == kind
    loaded = load_tokenizer(tmp_path / kind)
    assert type(loaded) is adapter and torch.equal(loaded.encode(Audio(sweep(), 16000)), codes)
    np.testing.assert_array_equal(loaded.decode(codes).samples, audio.samples)


def test_encodec_32khz_serves_music_or_speech_and_picks_levels_by_bandwidth(model_dirs):
    music = EncodecTokenizer.from_config({"model_dir": model_dirs["encodec"]})
    assert (music.sample_rate, music.frame_rate, music.codebook_size) == (32000, 50.0, 2048)
    assert music.spec.max_span_tokens == 1000  # AnyGPT: 5 s of music = 1000 tokens
    speech = EncodecTokenizer.from_config({"model_dir": model_dirs["encodec"], "modality": "speech"})
    assert speech.spec.name == "speech" and speech.spec.start_token == "<sosp>"
    with pytest.raises(ValueError, match=r"num_codebooks=3 matches none of the model's bandwidths \[2\.2\]"):
        EncodecTokenizer.from_config({"model_dir": model_dirs["encodec"], "num_codebooks": 3})


def test_encodec_that_needs_chunk_scales_is_refused(tmp_path):
    from transformers import EncodecConfig, EncodecModel

    config = EncodecConfig(
        hidden_size=8, num_filters=2, num_lstm_layers=1, normalize=True, chunk_length_s=1.0, overlap=0.01
    )
    EncodecModel(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="need per-chunk scales"):
        EncodecTokenizer.from_config({"model_dir": str(tmp_path)})


def test_fewer_levels_for_dac_and_mimi(model_dirs):
    dac = DacTokenizer.from_config({"model_dir": model_dirs["dac"], "num_codebooks": 2})
    codes = dac.encode(sweep())
    assert codes.shape == (2, 31) and dac.decode(codes).samples.shape == (31 * 512,)
    mimi = MimiTokenizer.from_config(
        {"model_dir": model_dirs["mimi"], "num_codebooks": 1}
    )  # semantic level only
    full = MimiTokenizer.from_config({"model_dir": model_dirs["mimi"]})
    assert torch.equal(mimi.encode(sweep()), full.encode(sweep())[:1])
    with pytest.raises(ValueError, match="exceeds the model's 4 codebooks"):
        DacTokenizer.from_config({"model_dir": model_dirs["dac"], "num_codebooks": 5})
    with pytest.raises(ValueError, match=r"must lie in \[1, 4\]"):
        MimiTokenizer.from_config({"model_dir": model_dirs["mimi"], "num_codebooks": 6})


def test_directories_are_local_and_of_the_right_model(model_dirs, tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        EncodecTokenizer.from_config({"model_dir": "facebook/encodec_32khz"})
    with pytest.raises(ValueError, match="holds a 'dac' model, expected 'encodec'"):
        EncodecTokenizer.from_config({"model_dir": model_dirs["dac"]})
    with pytest.raises(ValueError, match=r"unknown settings \['bandwidth'\]"):
        DacTokenizer.from_config({"model_dir": model_dirs["dac"], "bandwidth": 6.0})
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        DacTokenizer.from_config({"model_dir": model_dirs["dac"], "modality": "video"})


def test_bad_input_and_bad_codes(model_dirs, tmp_path):
    tokenizer: HFAudioTokenizer = DacTokenizer.from_config(
        {"model_dir": model_dirs["dac"], "max_seconds": 1.0}
    )
    path = tmp_path / "long.flac"
    soundfile.write(path, sweep(1.5, 44100), 44100, subtype="PCM_24")
    with pytest.raises(MediaError, match=r"long\.flac: 1\.50 s is longer than the maximum of 1\.0 s"):
        tokenizer.encode(path)
    with pytest.raises(MediaError, match="shorter than the minimum"):
        tokenizer.encode(sweep(0.01))
    with pytest.raises(ValueError, match=r"expected codes \[4, T >= 1\], got \[2, 7\]"):
        tokenizer.decode(torch.zeros(2, 7, dtype=torch.long))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 64\), got \[-1, 0\]"):
        tokenizer.decode(torch.tensor([[-1], [0], [0], [0]]))
