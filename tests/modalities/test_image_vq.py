"""The trainable image tokenizer: config, shapes, round trips, input handling, bad input, a trained checkpoint."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anyseq.judges.image import judge_shape_scene
from anyseq.media import MediaError
from anyseq.modalities import build_tokenizer, load_tokenizer, save_tokenizer
from anyseq.modalities.image_vq import VQImageConfig, VQImageTokenizer
from anyseq.tokenizers.image_eval import psnr
from anyseq.world.images import render_shape_scene, sample_scene

FIXTURE = Path(__file__).parent.parent / "fixtures" / "image_vq"
SMALL = {"channels": (32,), "encoder_blocks": (1,), "decoder_blocks": (1,), "head": 64, "levels": (5, 5, 5)}


@pytest.fixture(scope="module")
def tokenizer() -> VQImageTokenizer:
    return build_tokenizer("vq-image", **SMALL)


def picture(size: tuple[int, int] = (64, 64), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_presets_and_derived_sizes():
    tiny = VQImageConfig.from_preset("tiny")
    assert (tiny.image_size, tiny.grid, tiny.tokens_per_image, tiny.codebook_size) == (64, 8, 64, 1000)
    small = VQImageConfig.from_preset("small")
    assert small.tokens_per_image == 64 and small.codebook_size == 8000
    spec = VQImageTokenizer(tiny).spec
    assert (spec.name, spec.num_codebooks, spec.codebook_size, spec.tokens_per_item) == ("image", 1, 1000, 64)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"patch": 7}, "multiple of patch"),
        ({"channels": (32, 64), "encoder_blocks": (1,), "decoder_blocks": (1, 1)}, "one entry per stage"),
        (
            {"channels": (8, 16, 32, 64, 128), "encoder_blocks": (1,) * 5, "decoder_blocks": (1,) * 5},
            r"2 \*\* \(stages - 1\)",
        ),
        ({"levels": (8, 2)}, "at least 3"),
        ({"fit": "zoom"}, "fit must be"),
    ],
)
def test_bad_configs_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        VQImageConfig(**settings)


def test_unknown_preset_and_setting():
    with pytest.raises(ValueError, match="unknown image tokenizer preset 'huge'"):
        VQImageConfig.from_preset("huge")
    with pytest.raises(ValueError, match="unknown settings \\['colour'\\]"):
        VQImageTokenizer.from_config({"colour": 3})


def test_encode_decode_shapes_and_dtypes(tokenizer):
    codes = tokenizer.encode(picture())
    assert codes.shape == (1, 64) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < tokenizer.codebook_size == 125
    image = tokenizer.decode(codes)
    assert isinstance(image, Image.Image) and image.size == (64, 64) and image.mode == "RGB"
    batch = tokenizer.encode_batch([picture(seed=s) for s in range(3)])
    assert batch.shape == (3, 1, 64) and batch.dtype == torch.int64
    assert torch.equal(batch[0], codes)
    images = tokenizer.decode_batch(batch)
    assert len(images) == 3 and all(i.size == (64, 64) for i in images)
    assert np.array_equal(np.asarray(images[0]), np.asarray(image))


def test_quantized_latents_equal_decoded_codes(tokenizer):
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        output = tokenizer.model(pixels)
        assert torch.allclose(output.reconstruction, tokenizer.model.decode(output.codes), atol=1e-5)
        assert torch.equal(output.codes, tokenizer.model.encode(pixels))


def test_fresh_models_are_seeded():
    a, b = build_tokenizer("vq-image", **SMALL), build_tokenizer("vq-image", **SMALL)
    assert torch.equal(a.encode(picture()), b.encode(picture()))
    c = build_tokenizer("vq-image", **SMALL, seed=1)
    assert not torch.equal(a.encode(picture()), c.encode(picture()))


def test_save_load_round_trip(tokenizer, tmp_path):
    save_tokenizer(tokenizer, tmp_path / "image")
    config = json.loads((tmp_path / "image" / "config.json").read_text())
    assert config["kind"] == "vq-image" and config["levels"] == [5, 5, 5]
    loaded = load_tokenizer(tmp_path / "image")
    assert isinstance(loaded, VQImageTokenizer) and loaded.config == tokenizer.config
    codes = tokenizer.encode(picture())
    assert torch.equal(loaded.encode(picture()), codes)
    assert np.array_equal(np.asarray(loaded.decode(codes)), np.asarray(tokenizer.decode(codes)))


def test_load_refuses_incomplete_or_foreign_directories(tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        VQImageTokenizer.load(tmp_path)
    save_tokenizer(tokenizer, tmp_path / "image")
    (tmp_path / "image" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        VQImageTokenizer.load(tmp_path / "image")
    save_tokenizer(build_tokenizer("grid-image"), tmp_path / "grid")
    (tmp_path / "grid" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="kind is 'grid-image', expected 'vq-image'"):
        VQImageTokenizer.load(tmp_path / "grid")


def test_image_modes_are_converted(tokenizer):
    rgb = picture()
    palette = rgb.quantize(colors=16)
    reference = tokenizer.encode(palette.convert("RGB"))
    assert torch.equal(tokenizer.encode(palette), reference)
    gray = rgb.convert("L")
    reference = tokenizer.encode(gray.convert("RGB"))
    for source in (gray, np.asarray(gray), np.asarray(gray)[..., None], gray.convert("1").convert("L")):
        codes = tokenizer.encode(source)
        assert codes.shape == (1, 64)
    assert torch.equal(tokenizer.encode(np.asarray(gray)), reference)
    transparent = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    white = Image.new("RGB", (64, 64), "white")
    assert torch.equal(tokenizer.encode(transparent), tokenizer.encode(white))
    assert torch.equal(tokenizer.encode(np.asarray(transparent)), tokenizer.encode(white))


def test_paths_and_bytes_give_the_same_codes(tokenizer, tmp_path):
    image = picture()
    path = tmp_path / "picture.png"
    image.save(path)
    expected = tokenizer.encode(image)
    assert torch.equal(tokenizer.encode(path), expected)
    assert torch.equal(tokenizer.encode(str(path)), expected)
    assert torch.equal(tokenizer.encode(path.read_bytes()), expected)
    assert torch.equal(tokenizer.encode(np.asarray(image)), expected)


def halves(size: tuple[int, int]) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", size, (255, 0, 0))
    image.paste((0, 0, 255), (size[0] // 2, 0, size[0], size[1]))
    return image


def test_any_size_is_made_square_as_configured():
    wide = halves((256, 64))  # 4:1
    crop = build_tokenizer("vq-image", **SMALL).prepare(wide)
    assert crop.size == (64, 64)
    pixels = np.asarray(crop)
    assert tuple(pixels[32, 2]) == (255, 0, 0) and tuple(pixels[32, 61]) == (0, 0, 255)  # the centre
    pad = np.asarray(build_tokenizer("vq-image", **SMALL, fit="pad").prepare(wide))
    assert tuple(pad[2, 32]) == (255, 255, 255) and tuple(pad[32, 2]) == (255, 0, 0)  # white bars
    stretch = np.asarray(build_tokenizer("vq-image", **SMALL, fit="stretch").prepare(halves((256, 64))))
    assert tuple(stretch[2, 2]) == (255, 0, 0) and tuple(stretch[2, 61]) == (0, 0, 255)
    small = build_tokenizer("vq-image", **SMALL).prepare(halves((10, 30)))
    assert small.size == (64, 64)
    square = picture()
    assert np.array_equal(
        np.asarray(build_tokenizer("vq-image", **SMALL).prepare(square)), np.asarray(square)
    )


def test_bad_files_give_errors_naming_the_file(tokenizer, tmp_path):
    buffer = io.BytesIO()
    picture().save(buffer, format="PNG")
    cases = {
        "truncated.png": buffer.getvalue()[: len(buffer.getvalue()) // 2],
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "notes.txt": b"this is not an image",
        "sound.wav": b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40),
        "empty.png": b"",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(MediaError, match=name):
            tokenizer.encode(path)
    with pytest.raises(MediaError, match="no such file"):
        tokenizer.encode(tmp_path / "missing.png")


def test_bad_in_memory_inputs_are_refused(tokenizer):
    with pytest.raises(MediaError, match="uint8"):
        tokenizer.encode(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(MediaError, match="C in \\(1, 3, 4\\)"):
        tokenizer.encode(np.zeros((8, 8, 5), dtype=np.uint8))
    with pytest.raises(MediaError, match="no pixels"):
        tokenizer.encode(np.zeros((0, 8, 3), dtype=np.uint8))
    with pytest.raises(MediaError, match="expected a path, bytes, PIL image or uint8 array"):
        tokenizer.encode(12)
    with pytest.raises(ValueError, match="at least one image"):
        tokenizer.encode_batch([])


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    limited = build_tokenizer("vq-image", **SMALL, max_pixels=50 * 50)
    path = tmp_path / "big.png"
    picture((60, 60)).save(path)
    with pytest.raises(MediaError, match=r"big\.png: 60x60 = 3600 pixels exceeds the limit of 2500"):
        limited.encode(path)
    with pytest.raises(MediaError, match="exceeds the limit of 2500"):
        limited.encode(picture((60, 60)))
    bomb = tmp_path / "bomb.png"
    Image.new("1", (5000, 5000)).save(bomb)  # a few kB on disk, 25 megapixels decoded
    assert bomb.stat().st_size < 100_000
    with pytest.raises(
        MediaError, match=r"bomb\.png: 5000x5000 = 25000000 pixels exceeds the limit of 16777216"
    ):
        build_tokenizer("vq-image", **SMALL).encode(bomb)


def test_bad_codes_are_refused(tokenizer):
    codes = tokenizer.encode(picture())
    with pytest.raises(ValueError, match=r"shape \[1, T\] with T = 64, got \[1, 63\]"):
        tokenizer.decode(codes[:, :63])
    with pytest.raises(ValueError, match=r"shape \[B, 1, T\]"):
        tokenizer.decode_batch(codes)
    with pytest.raises(ValueError, match="must be integers"):
        tokenizer.decode(codes.float())
    with pytest.raises(ValueError, match=r"in \[0, 125\), got \[0, 125\]"):
        tokenizer.decode(torch.cat([codes[:, :63].clamp(0, 0), torch.tensor([[125]])], dim=1))
    with pytest.raises(ValueError, match="expected a tensor"):
        tokenizer.decode([[1, 2, 3]])


@pytest.mark.skipif(
    not (FIXTURE / "config.json").is_file(),
    reason="the trained tiny checkpoint fixture is not committed yet (anyseq tokenizer train image, then save as float16)",
)
def test_trained_checkpoint_reconstructs_shape_scenes():
    """The committed checkpoint (the `tiny` preset trained on AnyWorld tiny by `make demo`, stored in
    float16). Measured on these 32 scenes: PSNR 31.0 dB, colours kept in 31, colour and shape in 25
    (small stars and hexagons still come back rounded: the open gap of the image tokenizer)."""
    trained = load_tokenizer(FIXTURE)
    assert trained.config == VQImageConfig.from_preset("tiny")
    assert sum(p.stat().st_size for p in FIXTURE.iterdir()) < 2_000_000
    rng = random.Random(123)
    labels = [sample_scene(rng, frozenset(), heldout=False) for _ in range(32)]
    originals = [render_shape_scene(scene) for scene in labels]
    codes = trained.encode_batch(originals)
    reconstructions = trained.decode_batch(codes)
    scores = [psnr(np.asarray(a), np.asarray(b)) for a, b in zip(originals, reconstructions, strict=True)]
    assert np.mean(scores) > 30.0
    kept = [judge_shape_scene(r, scene) for r, scene in zip(reconstructions, labels, strict=True)]
    assert sum(v["colour_ok"] for v in kept) >= 30
    assert sum(v["colour_ok"] and v["shape_ok"] for v in kept) >= 24
