"""The music tokenizer: protocol, frame-major flattening through the codec, bad inputs, train/eval/bench."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile
import torch

from anyseq.media import Audio, MediaError
from anyseq.modalities import build_tokenizer, load_tokenizer, save_tokenizer
from anyseq.modalities.music import MusicConfig, MusicTokenizer
from anyseq.patterns import FrameMajorPattern

RATE = 16000


def melody(seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    pitch = 60 + 2 * (t * 4).astype(int)  # a new note every 250 ms
    phase = 2 * np.pi * np.cumsum(440.0 * 2 ** ((pitch - 69) / 12)) / rate
    return (0.3 * (np.sin(phase) + 0.5 * np.sin(2 * phase)) * np.exp(-3 * (t % 0.25))).astype(np.float32)


@pytest.fixture(scope="module")
def tokenizer() -> MusicTokenizer:
    """The `test` preset (2 levels x 16, max 2 s), its codebooks seeded by one encode."""
    torch.manual_seed(0)
    tokenizer = MusicTokenizer.from_config({"preset": "test"})
    tokenizer.encode(melody(2.0))
    return tokenizer


def test_presets_spell_the_token_budget():
    tiny = MusicConfig.preset("tiny")
    assert (tiny.codec.sample_rate, tiny.codec.frame_rate, tiny.codec.num_codebooks) == (16000, 25, 4)
    assert tiny.max_frames == 125  # 5 s, as AnyGPT cut music
    encodec = MusicConfig.preset("anygpt-7b")
    assert (encodec.codec.sample_rate, encodec.codec.frame_rate, encodec.codec.codebook_size) == (
        32000,
        50,
        2048,
    )
    assert encodec.max_frames * encodec.codec.num_codebooks == 1000  # AnyGPT: 5 s = 1000 tokens
    with pytest.raises(ValueError, match="unknown music preset 'huge'"):
        MusicConfig.preset("huge")
    with pytest.raises(ValueError, match=r"unknown settings \['colour'\]"):
        MusicConfig.from_dict({"colour": "red"})


def test_spec_follows_the_protocol(tokenizer):
    spec = tokenizer.spec
    assert (spec.name, spec.num_codebooks, spec.codebook_size, spec.max_frames) == ("music", 2, 16, 50)
    assert spec.max_span_tokens == 100 and spec.token_name(16 + 5) == "<mu1_5>"
    codes = tokenizer.encode(melody(1.0))
    assert codes.shape == (2, 25) and codes.dtype == torch.long
    assert 0 <= codes.min() and codes.max() < 16
    audio = tokenizer.decode(codes)
    assert isinstance(audio, Audio) and audio.sample_rate == RATE and len(audio.samples) == 25 * 640


@pytest.mark.parametrize("levels", [1, 2, 4, 8])
def test_flatten_unflatten_through_the_codec(levels):
    torch.manual_seed(levels)
    tokenizer = MusicTokenizer.from_config({"preset": "test", "codec": {"num_codebooks": levels}})
    codes = tokenizer.encode(melody(0.6))  # [K, 15]
    pattern = tokenizer.pattern
    assert isinstance(pattern, FrameMajorPattern) and pattern.num_codebooks == levels
    flat = pattern.flatten(codes)
    assert flat.shape == (levels * 15,)
    for level in range(levels):  # position t*K + k holds frame t of level k, in level k's id range
        assert torch.equal(flat[level::levels], codes[level] + level * 16)
    restored = pattern.unflatten(flat)
    assert torch.equal(restored, codes)
    np.testing.assert_array_equal(tokenizer.decode(restored).samples, tokenizer.decode(codes).samples)
    if levels > 1:
        with pytest.raises(ValueError, match="not a whole number"):
            pattern.unflatten(flat[:-1])


def test_save_load_through_the_registry(tokenizer, tmp_path):
    save_tokenizer(tokenizer, tmp_path / "music")
    assert json.loads((tmp_path / "music" / "config.json").read_text())["kind"] == "codec-music"
    loaded = load_tokenizer(tmp_path / "music")
    assert isinstance(loaded, MusicTokenizer) and loaded.config == tokenizer.config
    clip = melody(1.0)
    assert torch.equal(loaded.encode(clip), tokenizer.encode(clip))
    np.testing.assert_array_equal(
        loaded.decode(tokenizer.encode(clip)).samples, tokenizer.decode(tokenizer.encode(clip)).samples
    )
    assert isinstance(build_tokenizer("codec-music", preset="test"), MusicTokenizer)
    (tmp_path / "music" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_tokenizer(tmp_path / "music")


def test_batches_give_the_codes_and_audio_of_single_calls(tokenizer):
    clips = [melody(1.0), melody(0.5), melody(1.0)[::-1].copy()]
    batch = tokenizer.encode_batch(clips)
    assert [c.shape[1] for c in batch] == [25, 13, 25]
    for clip, codes in zip(clips, batch, strict=True):
        assert torch.equal(codes, tokenizer.encode(clip))
    decoded = tokenizer.decode_batch(batch)
    for codes, audio in zip(batch, decoded, strict=True):
        np.testing.assert_array_equal(audio.samples, tokenizer.decode(codes).samples)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_any_sample_rate_is_resampled(tokenizer, tmp_path, rate):
    path = tmp_path / f"clip_{rate}.wav"
    soundfile.write(path, melody(1.0, rate), rate)
    assert tokenizer.encode(path).shape == (2, 25)
    assert tokenizer.read_audio(path).sample_rate == RATE


def test_stereo_is_downmixed(tokenizer, tmp_path):
    mono = melody(1.0)
    soundfile.write(tmp_path / "stereo.wav", np.stack([mono, mono], axis=1), RATE, subtype="FLOAT")
    soundfile.write(
        tmp_path / "left_only.wav", np.stack([mono, np.zeros_like(mono)], axis=1), RATE, subtype="FLOAT"
    )
    assert torch.equal(tokenizer.encode(tmp_path / "stereo.wav"), tokenizer.encode(mono))
    np.testing.assert_allclose(tokenizer.read_audio(tmp_path / "left_only.wav").samples, mono / 2, atol=1e-7)


@pytest.mark.parametrize(
    ("suffix", "subtype", "tolerance"),
    [
        ("wav", "PCM_U8", 1 / 64),
        ("wav", "PCM_16", 1e-4),
        ("wav", "PCM_24", 1e-6),
        ("wav", "PCM_32", 1e-7),
        ("wav", "FLOAT", 0.0),
        ("wav", "DOUBLE", 1e-7),
        ("flac", "PCM_S8", 1 / 64),
        ("flac", "PCM_16", 1e-4),
        ("flac", "PCM_24", 1e-6),
    ],
)
def test_wav_and_flac_sample_formats(tokenizer, tmp_path, suffix, subtype, tolerance):
    clip = melody(0.5)
    path = tmp_path / f"clip.{suffix}"
    soundfile.write(path, clip, RATE, subtype=subtype)
    np.testing.assert_allclose(tokenizer.read_audio(path).samples, clip, atol=tolerance)
    assert tokenizer.encode(path).shape == (2, 13)


def test_bad_files_are_named_with_the_limit(tokenizer, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.wav: file is empty"):
        tokenizer.encode(empty)
    silent = tmp_path / "no_samples.wav"
    soundfile.write(silent, np.zeros(0, np.float32), RATE)
    with pytest.raises(MediaError, match=r"no_samples\.wav: audio has no samples"):
        tokenizer.encode(silent)
    short = tmp_path / "short.wav"
    soundfile.write(short, melody(0.01), RATE)
    with pytest.raises(MediaError, match=r"short\.wav: 0\.010 s is shorter than the minimum of 0\.04 s"):
        tokenizer.encode(short)
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(range(256)) * 4)
    with pytest.raises(MediaError, match=r"corrupt\.flac: not a readable WAV/FLAC file"):
        tokenizer.encode(corrupt)
    with pytest.raises(MediaError, match=r"missing\.wav: no such file"):
        tokenizer.encode(tmp_path / "missing.wav")


def test_long_music_is_cut_to_the_maximum_with_a_warning(tokenizer, tmp_path, caplog):
    path = tmp_path / "long.wav"
    soundfile.write(path, melody(3.5), RATE)
    with caplog.at_level(logging.WARNING, logger="anyseq.modalities.music"):
        codes = tokenizer.encode(path)
    assert codes.shape == (2, tokenizer.spec.max_frames)
    assert (
        "long.wav: 3.50 s of music is longer than the maximum of 2.0 s; using the first 2.0 s" in caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="anyseq.modalities.music"):
        tokenizer.encode(melody(2.0))
    assert caplog.text == ""  # exactly the maximum: no cut, no note


def test_bad_codes_are_refused_with_the_expected_shape(tokenizer):
    with pytest.raises(ValueError, match=r"expected codes \[2, T >= 1\], got \[3, 5\]"):
        tokenizer.decode(torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expected codes \[2, T >= 1\], got \[10\]"):
        tokenizer.decode(torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\), got \[0, 16\]"):
        tokenizer.decode(torch.tensor([[0, 16], [1, 2]]))


@pytest.mark.slow
def test_train_eval_and_bench_on_the_micro_world(micro_world, tmp_path):
    from anyseq.tokenizers.music_bench import run_bench
    from anyseq.tokenizers.music_eval import evaluate_music_tokenizer
    from anyseq.tokenizers.music_train import train_music_tokenizer

    out = tmp_path / "music"
    report = train_music_tokenizer(micro_world, out, preset="test")
    assert report["codec"]["steps"] == 4 and report["tokens_per_second"] == 50
    assert (out / "checkpoint" / "state.json").is_file() and list((out / "tensorboard").iterdir())
    again = train_music_tokenizer(micro_world, out, preset="test")  # resumes a finished run: no new steps
    assert again["codec"]["steps"] == 4
    summary = evaluate_music_tokenizer(out, micro_world, tmp_path / "eval.json", split="test")
    written = json.loads((tmp_path / "eval.json").read_text())
    assert written["summary"] == summary and len(written["clips"]) == summary["clips"] > 0
    for key in ("tempo_kept", "chroma_similarity", "key_agreement", "tempo_judge_ceiling"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["pitch_original"] > 0.5  # pYIN on the originals (the judge's ceiling)
    assert summary["encode_realtime"] > 0 and summary["decode_realtime"] > 0
    bench = run_bench(tmp_path / "bench.json", model_dir=out, repeats=1, threads=(1,))
    assert bench["frames"] == 50 and set(bench["threads_1"]) >= {"encode_realtime", "decode_realtime"}
    assert bench["threads_1"]["encode_realtime"] > 1 and bench["threads_1"]["decode_realtime"] > 1
    assert json.loads((tmp_path / "bench.json").read_text()) == bench
