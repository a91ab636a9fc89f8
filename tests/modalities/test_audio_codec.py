"""The shared audio codec core and its training loop, on a codec a few channels wide."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from anyseq.modalities.audio_codec import AudioCodec, CodecConfig, CodecOutput, griffin_lim
from anyseq.tokenizers.audio_train import AudioTrainConfig, Clip, CodecBatch, train_codec, validate

RATE = 16000
TINY = CodecConfig(
    n_fft=256,
    num_codebooks=3,
    codebook_size=16,
    latent_dim=8,
    hidden=16,
    blocks=1,
    kernel_size=3,
    griffin_lim_iters=4,
)


def tone(midi: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 440.0 * 2 ** ((midi - 69) / 12) * t)).astype(np.float32)


def clips(count: int = 6, seconds: float = 0.6) -> list[Clip]:
    return [Clip(tone(60 + 3 * i, seconds), {"index": i}) for i in range(count)]


def test_config_names_what_does_not_divide():
    with pytest.raises(ValueError, match="sample_rate 16000 must be a multiple of frame_rate 30"):
        CodecConfig(frame_rate=30)
    with pytest.raises(ValueError, match="stft_hop 256 must divide the 640 samples"):
        CodecConfig(stft_hop=256)
    assert (TINY.samples_per_frame, TINY.stft_per_frame, TINY.bins) == (640, 4, 129)


def test_forward_shapes_mask_and_finite_losses():
    codec = AudioCodec(TINY)
    audio = torch.from_numpy(np.stack([tone(60, 0.5), tone(67, 0.5)]))  # (2, 8000): 12.5 frames -> 13
    output = codec(audio, lengths=torch.tensor([8000, 3000]))
    assert isinstance(output, CodecOutput)
    assert output.codes.shape == (2, 3, 13) and output.codes.dtype == torch.long
    assert output.latents.shape == (2, 13, 8)
    assert output.level_features.shape == (3, 2, 13, 8)
    assert output.target.shape == output.log_magnitude.shape == (2, 129, 52)
    assert output.frame_mask.sum(dim=1).tolist() == [13, 5]  # ceil(3000 / 640) = 5
    assert set(output.losses) == {"reconstruction", "convergence", "commitment"}
    assert all(torch.isfinite(v) for v in output.losses.values())
    assert codec.frames_for(1) == 1 and codec.frames_for(640) == 1 and codec.frames_for(641) == 2


def test_level_one_features_train_the_encoder_and_all_levels_match_the_codes():
    codec = AudioCodec(TINY)
    audio = torch.from_numpy(tone(64, 0.5))[None]
    output = codec(audio)
    output.level_features[0].pow(2).mean().backward()  # an auxiliary loss on level 1 only
    assert codec.encoder[0].weight.grad.abs().sum() > 0
    assert codec.decoder[-1].weight.grad is None
    codec.eval()
    with torch.no_grad():
        output = codec(audio)
    summed = codec.quantizer.get_output_from_indices(output.codes.transpose(1, 2))  # (B, T, D)
    torch.testing.assert_close(output.level_features[-1], summed)
    first = codec.quantizer.layers[0].codebook[output.codes[0, 0]]  # level-1 vectors alone
    torch.testing.assert_close(output.level_features[0][0], first)


FSQ = CodecConfig(**{**TINY.__dict__, "quantizer": "fsq", "fsq_levels": (4, 4)})


def test_fsq_levels_must_make_the_codebook():
    with pytest.raises(ValueError, match=r"fsq_levels \[4, 8\] must multiply to codebook_size 16"):
        CodecConfig(**{**TINY.__dict__, "quantizer": "fsq", "fsq_levels": (4, 8)})
    with pytest.raises(ValueError, match="quantizer 'pq': 'rvq', 'fsq' or 'fsq_groups'"):
        CodecConfig(**{**TINY.__dict__, "quantizer": "pq"})


@pytest.mark.parametrize("quantizer", ["fsq", "fsq_groups"])
def test_fsq_levels_add_up_to_the_codes_and_level_one_trains_the_encoder(quantizer):
    codec = AudioCodec(CodecConfig(**{**FSQ.__dict__, "quantizer": quantizer}))
    audio = torch.from_numpy(np.stack([tone(60, 0.5), tone(67, 0.5)]))
    output = codec(audio, lengths=torch.tensor([8000, 3000]))
    assert output.codes.shape == (2, 3, 13) and output.codes.dtype == torch.long
    assert 0 <= int(output.codes.min()) and int(output.codes.max()) < 16
    assert output.level_features.shape == (3, 2, 13, 8)
    assert float(output.losses["commitment"]) == 0.0  # no codebook to commit to
    output.level_features[0].pow(2).mean().backward()
    assert codec.encoder[0].weight.grad.abs().sum() > 0
    codec.eval()
    with torch.no_grad():
        output = codec(audio)
        summed = codec.quantizer.get_output_from_indices(output.codes.transpose(1, 2))
    torch.testing.assert_close(output.level_features[-1], summed)
    # level 1's vector is a function of level 1's code alone: one vector per code
    _, indices, _, levels = codec.quantizer(3 * torch.randn(4, 50, 8), return_all_codes=True)
    first, vectors = indices[..., 0].flatten(), levels[0].flatten(0, 1)
    for code in first.unique():
        same = vectors[first == code]
        torch.testing.assert_close(same, same[:1].expand_as(same))
    assert first.unique().numel() > 1
    # encode -> decode_magnitude gives what the training forward predicts
    codes = codec.encode(audio[:1])
    magnitude = codec.decode_magnitude(codes)
    torch.testing.assert_close(magnitude, codec.to_magnitude(output.log_magnitude[:1]), rtol=1e-4, atol=1e-6)


def test_fsq_groups_code_side_by_side_dimensions_where_residual_fsq_refines_the_same_ones():
    latents = 3 * torch.randn(4, 50, 8)
    widths = {}
    for quantizer in ("fsq", "fsq_groups"):
        codec = AudioCodec(CodecConfig(**{**FSQ.__dict__, "quantizer": quantizer}))
        with torch.no_grad():
            *_, levels = codec.quantizer(latents, return_all_codes=True)  # (K, B, T, D)
        outputs = levels.sum(dim=0).flatten(0, 1)
        widths[quantizer] = int(torch.linalg.matrix_rank(outputs - outputs.mean(dim=0)))
        if quantizer == "fsq_groups":  # each level moves the output only along its own group's columns
            weight = codec.quantizer.fsq.project_out.weight.detach()  # (D, K * 2)
            for k in range(FSQ.num_codebooks):
                own = weight[:, 2 * k : 2 * k + 2]
                moved = levels[k].flatten(0, 1)
                moved = moved - moved.mean(dim=0)
                residual = moved - moved @ own @ torch.linalg.pinv(own)
                assert float(residual.abs().max()) < 1e-4
    assert widths == {"fsq": 2, "fsq_groups": 2 * FSQ.num_codebooks}  # 2 = len(fsq_levels)


def test_encode_decode_is_deterministic_with_whole_frames():
    codec = AudioCodec(TINY).eval()
    audio = torch.from_numpy(tone(62, 0.3))[None]  # 4800 samples -> 8 frames
    codes = codec.encode(audio)
    assert codes.shape == (1, 3, 8)
    assert torch.equal(codes, codec.encode(audio))
    waveform = codec.decode(codes)
    assert waveform.shape == (1, 8 * 640)
    assert torch.equal(waveform, codec.decode(codes))
    assert waveform.abs().max() <= 1.0


def test_feature_statistics_standardise_bins_and_a_fresh_decoder_predicts_the_mean():
    codec = AudioCodec(TINY)
    audio = torch.from_numpy(np.stack([tone(60, 0.4), tone(72, 0.4)]))
    codec.fit_feature_statistics(audio)
    log_magnitude = codec.log_magnitude(audio)
    standardised = (log_magnitude - codec.feature_mean[:, None]) / codec.feature_std[:, None]
    assert standardised.mean(dim=(0, 2)).abs().max() < 1e-4
    with torch.no_grad():
        prediction = codec(audio).log_magnitude
    torch.testing.assert_close(prediction, codec.feature_mean[None, :, None].expand_as(prediction))


def test_a_mel_codec_codes_mel_bands_and_decodes_whole_stft_magnitudes():
    config = CodecConfig(**{**TINY.__dict__, "mels": 24})
    assert (config.features, config.bins) == (24, 129)
    codec = AudioCodec(config).eval()
    audio = torch.from_numpy(tone(69, 0.5))[None]  # 440 Hz: 13 frames
    output = codec(audio)
    assert output.target.shape == output.log_magnitude.shape == (1, 24, 52)
    linear = AudioCodec(TINY).log_magnitude(audio).exp()  # (1, 129, 52)
    expected = codec.mel_banks @ linear  # the floor of the clamped bins aside, what the codec codes
    loud = expected > 1e-2
    assert loud.any() and torch.allclose(output.target.exp()[loud], expected[loud], rtol=1e-3)
    # the pseudo-inverse puts the tone's energy back around its STFT bin (440 Hz: bin 7)
    rebuilt = codec.to_magnitude(output.target)
    assert rebuilt.shape == (1, 129, 52) and (rebuilt >= 0).all()
    assert int(linear[0, :, 20].argmax()) == 7
    assert rebuilt[0, 5:10, 20].sum() > 0.9 * rebuilt[0, :, 20].sum()
    assert codec.decode(codec.encode(audio)).shape == (1, 13 * 640)
    with pytest.raises(ValueError, match="mels 129: 0 .STFT bins. or fewer than the 129 bins"):
        CodecConfig(**{**TINY.__dict__, "mels": 129})


def test_griffin_lim_recovers_the_frequency_of_a_tone():
    audio = torch.from_numpy(tone(69, 0.5))[None]  # 440 Hz
    window = torch.hann_window(512)
    magnitude = torch.stft(audio, 512, 128, window=window, return_complex=True).abs()
    rebuilt = griffin_lim(magnitude, 512, 128, iters=16, length=audio.shape[1])
    spectrum = np.abs(np.fft.rfft(rebuilt[0].numpy()))
    assert np.argmax(spectrum) * RATE / audio.shape[1] == pytest.approx(440, abs=4)
    assert torch.equal(rebuilt, griffin_lim(magnitude, 512, 128, iters=16, length=audio.shape[1]))


class CountingLoss(nn.Module):
    """An auxiliary loss on level 1, as speech's CTC head is: it sees the batch's labels."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.labels_seen: list[int] = []

    def forward(self, batch: CodecBatch, output: CodecOutput) -> torch.Tensor:
        self.labels_seen += [labels["index"] for labels in batch.labels]
        return (self.scale * output.level_features[0]).pow(2).mean() * 1e-3


def test_training_lowers_validation_loss_and_trains_the_auxiliary_loss(tmp_path):
    codec, auxiliary = AudioCodec(TINY), CountingLoss()
    data = clips()
    before = validate(codec, data, batch_size=4, auxiliary=auxiliary)
    config = AudioTrainConfig(steps=30, batch_size=4, crop_seconds=0.4, warmup_steps=2, epoch_steps=15)
    result = train_codec(codec, data, data[:2], tmp_path, config, auxiliary=auxiliary)
    after = validate(codec, data, batch_size=4, auxiliary=auxiliary)
    assert result.steps == 30 and not result.stopped_early
    assert [h["step"] for h in result.history] == [15, 30]
    assert after["reconstruction"] < 0.7 * before["reconstruction"]
    assert "auxiliary" in after and auxiliary.scale.item() != 1.0
    assert set(auxiliary.labels_seen) <= set(range(6)) and len(auxiliary.labels_seen) >= 30 * 4
    weights = load_file(tmp_path / "checkpoint" / "model.safetensors")
    assert "auxiliary.scale" in weights and "codec.quantizer.layers.0._codebook.embed" in weights
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


class Interrupt(nn.Module):
    """A zero auxiliary loss that kills the run on its `at`-th call, as a crash would."""

    def __init__(self, at: int | None = None) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, batch: CodecBatch, output: CodecOutput) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return output.latents.sum() * 0.0


def test_resume_after_a_crash_continues_step_for_step(tmp_path):
    config = AudioTrainConfig(steps=6, batch_size=2, crop_seconds=0.3, warmup_steps=1, epoch_steps=3)
    torch.manual_seed(0)
    straight = AudioCodec(TINY)
    train_codec(straight, clips(), clips(2), tmp_path / "straight", config, auxiliary=Interrupt())
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):  # dies in step 4, after the checkpoint of step 3
        train_codec(
            AudioCodec(TINY), clips(), clips(2), tmp_path / "resumed", config, auxiliary=Interrupt(at=5)
        )
    assert json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())["step"] == 3
    resumed = AudioCodec(TINY)  # a fresh process: everything comes from the checkpoint
    result = train_codec(resumed, clips(), clips(2), tmp_path / "resumed", config, auxiliary=Interrupt())
    assert result.steps == 6 and [h["step"] for h in result.history] == [3, 6]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_time_budget_stops_early_validated_and_saved(tmp_path):
    config = AudioTrainConfig(steps=100, batch_size=2, crop_seconds=0.3, max_minutes=0.0)
    result = train_codec(AudioCodec(TINY), clips(), clips(2), tmp_path, config)
    assert result.stopped_early and result.steps == 1
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == 1
    with pytest.raises(ValueError, match="need training and validation clips, got 0 and 2"):
        train_codec(AudioCodec(TINY), [], clips(2), tmp_path, config)
