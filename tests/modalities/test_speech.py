"""The "codec-speech" tokenizer: protocol contract, all levels, voices, files, and bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import soundfile
import torch

from anyseq.media import Audio, MediaError
from anyseq.modalities import ModalityTokenizer, build_tokenizer, load_tokenizer, save_tokenizer
from anyseq.modalities.audio_codec import ResidualFSQQuantizer
from anyseq.modalities.speech import PhonemeCTC, SpeechConfig, SpeechTokenizer, phoneme_units
from anyseq.tokenizers.audio_train import CodecBatch
from anyseq.world.speech import synthesize

UNITS = " '-23:@ADEINOSTUVZabdefghijklmnoprstuvwz"


@pytest.fixture(scope="module")
def clip() -> Audio:
    return synthesize("draw a red circle", "us-male", rate=175, pitch=50).audio  # about 1 s at 16 kHz


@pytest.fixture(scope="module")
def other_voice() -> Audio:
    return synthesize("play it again", "gb-female", rate=175, pitch=60).audio


@pytest.fixture(scope="module")
def tokenizer() -> SpeechTokenizer:
    torch.manual_seed(0)
    return build_tokenizer("codec-speech", **SpeechConfig.preset("test", phonemes=UNITS).to_dict())


def test_protocol_and_spec(tokenizer):
    assert isinstance(tokenizer, ModalityTokenizer)
    spec = tokenizer.spec
    assert (spec.name, spec.num_codebooks, spec.codebook_size) == ("speech", 1, 32)
    assert spec.max_frames == 4 * 25  # max_seconds x frame_rate: the longest span the LM may write
    assert tokenizer.num_codebooks == 1 and tokenizer.config.num_levels == 3


def test_encode_gives_level1_of_all_levels(tokenizer, clip):
    codes = tokenizer.encode(clip)
    levels = tokenizer.encode_levels(clip)
    frames = int(np.ceil(clip.duration * 25))
    assert codes.shape == (1, frames) and codes.dtype == torch.long
    assert levels.shape == (3, frames)
    assert torch.equal(codes, levels[:1])
    assert int(levels.min()) >= 0 and int(levels.max()) < 32


def test_batch_encoding_matches_one_by_one(tokenizer, clip, other_voice):
    batch = tokenizer.encode_batch([clip, other_voice])
    assert torch.equal(batch[0], tokenizer.encode_levels(clip))
    assert torch.equal(batch[1], tokenizer.encode_levels(other_voice))


def test_decode_runs_the_acoustic_model_and_keeps_the_length(tokenizer, clip, other_voice):
    codes = tokenizer.encode(clip)
    default = tokenizer.decode(codes)
    assert isinstance(default, Audio) and default.sample_rate == 16000
    assert len(default.samples) == codes.shape[1] * 640 and np.abs(default.samples).max() <= 1.0
    completed = tokenizer.complete(codes, voice=other_voice)
    assert completed.shape == (3, codes.shape[1]) and torch.equal(completed[:1], codes)
    assert torch.equal(tokenizer.complete(codes, voice=other_voice), completed)  # deterministic
    assert tokenizer.voice_prompt(other_voice).shape == (3, int(np.ceil(other_voice.duration * 25)))
    assert len(tokenizer.decode(codes, voice=other_voice).samples) == len(default.samples)


def test_voice_prompt_is_cut_to_prompt_seconds(tokenizer):
    long_voice = synthesize("the red circle is above the blue square", "us-female").audio
    assert long_voice.duration > 1.0
    assert tokenizer.voice_prompt(long_voice).shape == (3, 25)  # prompt_seconds = 1.0 in the test preset


def test_save_load_round_trip(tokenizer, clip, tmp_path):
    tokenizer.default_prompt = tokenizer.encode_levels(clip)[:, :10]
    save_tokenizer(tokenizer, tmp_path / "speech")
    config = json.loads((tmp_path / "speech" / "config.json").read_text())
    assert config["kind"] == "codec-speech" and config["phonemes"] == UNITS
    assert sorted(p.name for p in (tmp_path / "speech").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_tokenizer(tmp_path / "speech")
    assert isinstance(loaded, SpeechTokenizer)
    codes = tokenizer.encode(clip)
    assert torch.equal(loaded.encode(clip), codes)
    assert torch.equal(loaded.default_prompt, tokenizer.default_prompt)
    assert np.array_equal(loaded.decode(codes).samples, tokenizer.decode(codes).samples)


def _saved_before(tokenizer: SpeechTokenizer, directory, *settings: str):
    """Save `tokenizer` with `settings` left out of its config, as a tokenizer saved before they existed,
    and load it again."""
    save_tokenizer(tokenizer, directory)
    path = directory / "config.json"
    config = json.loads(path.read_text())
    for name in settings:
        del config[name]
    path.write_text(json.dumps(config))
    return load_tokenizer(directory)


def test_a_tokenizer_saved_before_mel_codecs_loads_as_an_stft_bin_codec(tmp_path):
    bins = SpeechTokenizer(SpeechConfig.preset("test", phonemes=UNITS, mels=0))
    loaded = _saved_before(bins, tmp_path / "speech", "mels")
    assert loaded.config.mels == 0 and loaded.codec.core.config.features == 256 // 2 + 1


def test_a_tokenizer_saved_before_fsq_loads_its_residual_vq(tmp_path, clip):
    rvq = SpeechTokenizer(SpeechConfig.preset("test", phonemes=UNITS, quantizer="rvq"))
    codes = rvq.encode_levels(clip)  # the first batch seeds the VQ codebooks (k-means)
    loaded = _saved_before(rvq, tmp_path / "speech", "quantizer", "fsq_levels")
    assert loaded.codec.core.config.quantizer == "rvq"
    assert torch.equal(loaded.encode_levels(clip), codes)
    assert SpeechConfig.preset("tiny").quantizer == "fsq_groups"  # what new tokenizers train


def test_an_fsq_tokenizer_saved_before_digit_heads_loads_its_one_softmax_acoustic_model(tmp_path, clip):
    old = SpeechTokenizer(SpeechConfig.preset("test", phonemes=UNITS, quantizer="fsq", acoustic_digits=False))
    assert old.acoustic.classes == old.config.codebook_size
    completed = old.complete(old.encode(clip))
    loaded = _saved_before(old, tmp_path / "speech", "acoustic_digits", "digit_decisions")
    assert isinstance(loaded.codec.core.quantizer, ResidualFSQQuantizer)  # its levels stay residual
    assert torch.equal(loaded.complete(loaded.encode(clip)), completed)
    new = SpeechTokenizer(SpeechConfig.preset("test", phonemes=UNITS))  # what new tokenizers train
    assert new.acoustic.config.digits == (4, 8) and new.acoustic.classes == 12
    assert new.acoustic.config.digit_decisions == ("mean", "mode")


def test_a_tokenizer_saved_before_the_wider_ctc_head_loads_its_head(tmp_path):
    old = SpeechTokenizer(SpeechConfig.preset("test", phonemes=UNITS, ctc_hidden=128))
    loaded = _saved_before(old, tmp_path / "speech", "ctc_hidden")
    assert loaded.ctc.conv.out_channels == 128
    features = torch.randn(1, 5, old.config.content_dim)
    assert torch.equal(loaded.ctc.log_probs(features), old.ctc.log_probs(features))
    assert SpeechConfig.preset("tiny").ctc_hidden == 256  # what new tokenizers train


def test_level1_passes_gradients_straight_through(tokenizer):
    """The content quantizer hands the encoder exactly the gradient of its output (no rotation)."""
    quantizer = copy.deepcopy(tokenizer.codec.content_quantizer).train()  # training updates the codebook
    latents = torch.randn(2, 6, tokenizer.config.content_dim, requires_grad=True)
    weights = torch.randn(2, 6, tokenizer.config.content_dim)
    quantized, _, _ = quantizer(latents)
    assert not torch.equal(quantized, latents)  # the codes are a real bottleneck
    (quantized * weights).sum().backward()
    assert torch.allclose(latents.grad, weights)


def test_phoneme_units_drop_stress_marks():
    assert phoneme_units("dr'O: a# r'Ed") == list("drO: a# rEd")
    assert phoneme_units("  D@2   bl,u: ") == list("D@2 blu:")


def test_ctc_head_scores_phonemes_of_level1(tokenizer, clip):
    ctc = tokenizer.ctc
    assert isinstance(ctc, PhonemeCTC)
    tokenizer.codec.train()
    audio = torch.from_numpy(clip.samples)[None]
    output = tokenizer.codec(audio, torch.tensor([audio.shape[1]]))
    tokenizer.codec.eval()
    assert output.codes.shape[1] == 3 and output.content_features.shape[-1] == 16
    batch = CodecBatch(audio, torch.tensor([audio.shape[1]]), [{"phonemes": "dr'O: a# r'Ed s'3:k@L"}])
    loss = ctc(batch, output)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    encoder_grad = tokenizer.codec.content_encoder[0].weight.grad
    assert encoder_grad is not None and encoder_grad.abs().sum() > 0  # CTC trains the content encoder
    assert tokenizer.codec.core.encoder[0].weight.grad is None  # and never the acoustic branch
    tokenizer.codec.zero_grad(set_to_none=True)
    ctc.zero_grad(set_to_none=True)


def test_reconstruction_never_trains_level1(tokenizer, clip):
    tokenizer.codec.train()
    audio = torch.from_numpy(clip.samples)[None]
    output = tokenizer.codec(audio)
    tokenizer.codec.eval()
    output.losses["reconstruction"].backward()
    assert tokenizer.codec.content_encoder[0].weight.grad is None
    assert tokenizer.codec.core.decoder[-1].weight.grad.abs().sum() > 0
    tokenizer.codec.zero_grad(set_to_none=True)


def test_bf16_training_autocasts_the_convolutions_and_keeps_quantizers_and_losses_in_fp32(tokenizer, clip):
    """The training loops' bf16 autocast (`AudioTrainConfig.bf16`) must not reach the code choice."""
    codec = tokenizer.codec
    seen: dict[str, tuple] = {}

    def record(name):
        def hook(module, args, output=None):
            tensor = output if output is not None else args[0]
            seen[name] = (tensor.dtype, torch.is_autocast_enabled("cpu"))

        return hook

    handles = [
        codec.core.encoder.register_forward_hook(record("encoder")),
        codec.content_quantizer.register_forward_pre_hook(record("content quantizer")),
        codec.core.quantizer.register_forward_pre_hook(record("acoustic quantizer")),
    ]
    audio = torch.from_numpy(clip.samples)[None]
    batch = CodecBatch(audio, torch.tensor([audio.shape[1]]), [{"phonemes": "dr'O: a# r'Ed s'3:k@L"}])
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = codec(audio, batch.lengths)
            ctc_loss = tokenizer.ctc(batch, output)
    finally:
        for handle in handles:
            handle.remove()
    assert seen["encoder"] == (torch.bfloat16, True)  # autocast is on where the work is
    assert seen["content quantizer"] == (torch.float32, False)
    assert seen["acoustic quantizer"] == (torch.float32, False)
    assert {loss.dtype for loss in output.losses.values()} == {torch.float32}
    assert ctc_loss.dtype == torch.float32 and torch.isfinite(ctc_loss)


# -- input handling --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "subtype", "channels", "fmt"),
    [
        (16000, "PCM_16", 1, "WAV"),
        (44100, "PCM_24", 2, "WAV"),
        (8000, "PCM_U8", 1, "WAV"),
        (22050, "PCM_32", 2, "WAV"),
        (48000, "FLOAT", 1, "WAV"),
        (24000, "PCM_16", 2, "FLAC"),
    ],
)
def test_any_rate_depth_and_channel_count_is_read(tokenizer, clip, tmp_path, rate, subtype, channels, fmt):
    import soxr

    samples = soxr.resample(clip.samples, 16000, rate)
    if channels == 2:
        samples = np.stack([samples, samples], axis=1)
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(path, samples, rate, subtype=subtype, format=fmt)
    codes = tokenizer.encode(path)
    assert codes.shape == (1, int(np.ceil(clip.duration * 25)))


def test_bad_files_name_the_file_and_the_limit(tokenizer, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty.wav: file is empty"):
        tokenizer.encode(empty)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    with pytest.raises(MediaError, match="corrupt.wav: not a readable WAV/FLAC file"):
        tokenizer.encode(corrupt)
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(160, dtype=np.float32), 16000)
    with pytest.raises(MediaError, match=r"short.wav: 0.010 s is shorter than the minimum of 0.04 s"):
        tokenizer.encode(short)
    long = tmp_path / "long.flac"
    soundfile.write(long, np.zeros(16000 * 5, dtype=np.float32), 16000)
    with pytest.raises(MediaError, match=r"long.flac: 5.00 s is longer than the maximum of 4.0 s"):
        tokenizer.encode(long)
    with pytest.raises(MediaError, match="missing.wav: no such file"):
        tokenizer.encode(tmp_path / "missing.wav")
    with pytest.raises(MediaError, match="NaN or infinite"):
        tokenizer.encode(np.full(1600, np.nan, dtype=np.float32))


def test_bad_codes_are_rejected_with_the_limit(tokenizer):
    with pytest.raises(ValueError, match=r"expected codes of shape \[1, T\]"):
        tokenizer.decode(torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expected codes of shape \[1, T\] with T >= 1"):
        tokenizer.decode(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"codes must be integers in \[0, 32\)"):
        tokenizer.decode(torch.full((1, 5), 32))
    with pytest.raises(ValueError, match=r"codes must be integers"):
        tokenizer.decode(torch.zeros(1, 5))
    with pytest.raises(ValueError, match=r"125 frames exceed the maximum of 100 \(4.0 s at 25 Hz\)"):
        tokenizer.decode(torch.zeros(1, 125, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expected codes of shape \[3, T\]"):
        tokenizer.decode_levels(torch.zeros(1, 5, dtype=torch.long))


def test_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="unknown speech preset 'huge'"):
        SpeechConfig.preset("huge")
    with pytest.raises(ValueError, match=r"unknown settings \['wings'\]"):
        SpeechConfig.from_dict({"wings": 2})
    with pytest.raises(ValueError, match="one entry per level 2..4"):
        SpeechConfig(refinement_steps=[1])
    with pytest.raises(ValueError, match="must be a multiple of frame_rate"):
        SpeechConfig(frame_rate=30)
    with pytest.raises(ValueError, match="non-empty unit inventory"):
        PhonemeCTC("", 8, 2, 16)
    with pytest.raises(ValueError, match="mels 80 must equal content_mels 64"):
        SpeechConfig(mels=80)


def test_presets_follow_speechtokenizer_numbers():
    config = SpeechConfig.preset("anygpt-7b")
    assert (config.sample_rate, config.frame_rate, config.num_levels, config.codebook_size) == (
        16000,
        50,
        8,
        1024,
    )
    tiny = SpeechConfig.preset("tiny")
    assert (tiny.frame_rate, tiny.num_levels, tiny.codebook_size) == (25, 4, 512)
    assert (tiny.mels, tiny.n_fft) == (64, 512)  # log-mel codec: see SpeechConfig.mels


def test_a_mel_codec_feeds_its_own_bands_to_the_content_encoder(tokenizer, clip):
    codec = tokenizer.codec
    assert codec.core.config.mels == tokenizer.config.content_mels == 32 and not hasattr(codec, "mel_banks")
    audio = torch.from_numpy(clip.samples)[None]
    output = codec(audio)
    assert output.target.shape[1] == 32  # the codec codes mel bands
    assert codec.decode_magnitude(output.codes).shape[1] == 256 // 2 + 1  # and decodes STFT bins


def test_level_dropout_decodes_some_examples_from_fewer_levels():
    codec = SpeechTokenizer(SpeechConfig.preset("test", phonemes=UNITS, level_dropout=1.0)).codec
    assert codec._levels_kept(64, torch.device("cpu")).tolist() == [2] * 64  # eval: all K - 1 acoustic levels
    codec.train()
    kept = codec._levels_kept(64, torch.device("cpu"))
    assert set(kept.tolist()) == {0, 1}  # level 1 alone, or with level 2
    codec.config.level_dropout = 0.0
    assert codec._levels_kept(8, torch.device("cpu")).tolist() == [2] * 8
