"""Adapters for transformers' image VQ models: built from tiny random configs, loaded from local directories."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import (
    ChameleonVQVAE,
    ChameleonVQVAEConfig,
    Emu3VQVAE,
    Emu3VQVAEConfig,
    JanusVQVAE,
    JanusVQVAEConfig,
)

from anyseq.media import MediaError
from anyseq.modalities import build_tokenizer, load_tokenizer, save_tokenizer
from anyseq.modalities.hf_image import (
    ChameleonImageTokenizer,
    Emu3ImageTokenizer,
    HFImageTokenizer,
    JanusImageTokenizer,
)

SIZE = 32  # tiny models: 32 px -> 16 x 16 codes of 64


def tiny_model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    common = {"base_channels": 32, "channel_multiplier": [1, 2], "num_res_blocks": 1}
    if kind == "chameleon-image":
        config = ChameleonVQVAEConfig(
            embed_dim=8, num_embeddings=64, latent_channels=32, resolution=SIZE, attn_resolutions=[], **common
        )
        return ChameleonVQVAE(config).eval()
    if kind == "emu3-image":
        config = Emu3VQVAEConfig(
            codebook_size=64, embed_dim=4, latent_channels=4, attn_resolutions=[], hidden_size=64, **common
        )
        return Emu3VQVAE(config).eval()
    config = JanusVQVAEConfig(
        embed_dim=8,
        num_embeddings=64,
        latent_channels=32,
        num_patches=SIZE // 2,
        projection_dim=32,
        image_token_embed_dim=32,
        **common,
    )
    return JanusVQVAE(config).eval()


KINDS = {
    "chameleon-image": ChameleonImageTokenizer,
    "emu3-image": Emu3ImageTokenizer,
    "janus-image": JanusImageTokenizer,
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, tuple[torch.nn.Module, str]]:
    """Each tiny VQ model, saved with `save_pretrained` in its own directory."""
    out = {}
    for kind in KINDS:
        directory = tmp_path_factory.mktemp(kind)
        model = tiny_model(kind)
        model.save_pretrained(directory)
        out[kind] = (model, str(directory))
    return out


def picture(seed: int = 0, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def reference_pixels(image: Image.Image) -> torch.Tensor:
    """The families' own preprocessing: shortest edge to SIZE, centre crop, [-1, 1]."""
    scale = SIZE / min(image.size)
    resized = image.resize(
        (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
    )
    left, top = (resized.width - SIZE) // 2, (resized.height - SIZE) // 2
    square = np.array(resized.crop((left, top, left + SIZE, top + SIZE)))
    return torch.from_numpy(square).permute(2, 0, 1)[None].float() / 127.5 - 1


@pytest.mark.parametrize("kind", KINDS)
def test_encode_matches_the_model_and_has_the_protocol_shape(kind, saved):
    model, directory = saved[kind]
    tokenizer = build_tokenizer(kind, model_dir=directory, image_size=SIZE)
    assert isinstance(tokenizer, KINDS[kind])
    spec = tokenizer.spec
    assert (spec.name, spec.num_codebooks, spec.codebook_size, spec.tokens_per_item) == ("image", 1, 64, 256)
    codes = tokenizer.encode(picture())
    assert codes.shape == (1, 256) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < 64
    with torch.no_grad():
        pixels = reference_pixels(picture())
        if kind == "emu3-image":
            expected = model.encode(pixels, torch.tensor([[SIZE, SIZE]])).image_tokens[0]
        else:
            expected = model.encode(pixels).image_tokens
    assert torch.equal(codes.flatten(), expected.flatten())
    batch = tokenizer.encode_batch([picture(0), picture(1)])
    assert batch.shape == (2, 1, 256) and torch.equal(batch[0], codes)


@pytest.mark.parametrize("kind", ["emu3-image", "janus-image"])
def test_decode_matches_the_model(kind, saved):
    model, directory = saved[kind]
    tokenizer = build_tokenizer(kind, model_dir=directory, image_size=SIZE)
    codes = tokenizer.encode(picture())
    image = tokenizer.decode(codes)
    assert isinstance(image, Image.Image) and image.size == (SIZE, SIZE) and image.mode == "RGB"
    with torch.no_grad():
        grid = codes.reshape(1, 16, 16)
        pixels = model.decode(grid) if kind == "emu3-image" else model.decode(grid.flatten(1))
    expected = ((pixels[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    assert np.array_equal(np.asarray(image), expected)
    images = tokenizer.decode_batch(torch.stack([codes, codes]))
    assert len(images) == 2 and np.array_equal(np.asarray(images[1]), expected)


def test_chameleon_has_no_decoder(saved):
    tokenizer = build_tokenizer("chameleon-image", model_dir=saved["chameleon-image"][1])
    assert tokenizer.image_size == SIZE  # native size: the VQ config's resolution
    with pytest.raises(NotImplementedError, match="no image decoder"):
        tokenizer.decode(tokenizer.encode(picture()))


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_is_self_contained(kind, saved, tmp_path):
    tokenizer = build_tokenizer(kind, model_dir=saved[kind][1], image_size=SIZE)
    save_tokenizer(tokenizer, tmp_path / "image")
    config = json.loads((tmp_path / "image" / "config.json").read_text())
    assert config["kind"] == kind and config["model_dir"] is None and config["vq_config"]
    loaded = load_tokenizer(tmp_path / "image")
    assert type(loaded) is KINDS[kind]
    assert torch.equal(loaded.encode(picture()), tokenizer.encode(picture()))


def test_whole_model_directory_takes_the_vqmodel_tensors(saved, tmp_path):
    """A converted Janus/Emu3/Chameleon checkpoint keeps the VQ model under `model.vqmodel.`."""
    model, directory = saved["janus-image"]
    whole = tmp_path / "janus-pro"
    whole.mkdir()
    tensors = {f"model.vqmodel.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors["model.language_model.embed_tokens.weight"] = torch.zeros(4, 4)
    save_file(tensors, whole / "model.safetensors")
    (whole / "config.json").write_text(
        json.dumps({"model_type": "janus", "vq_config": model.config.to_dict()})
    )
    from_whole = build_tokenizer("janus-image", model_dir=str(whole))
    from_vq = build_tokenizer("janus-image", model_dir=directory)
    assert torch.equal(from_whole.encode(picture()), from_vq.encode(picture()))


def test_local_directories_only_and_clear_errors(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        build_tokenizer("janus-image", model_dir="deepseek-community/Janus-Pro-1B")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="neither 'janus_vqgan' nor a model with a 'vq_config'"):
        build_tokenizer("janus-image", model_dir=str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "janus", "vq_config": {}}))
    with pytest.raises(FileNotFoundError, match="only safetensors"):
        build_tokenizer("janus-image", model_dir=str(tmp_path))
    with pytest.raises(ValueError, match="exactly one of model_dir"):
        build_tokenizer("janus-image")
    with pytest.raises(ValueError, match="needs 16 x 16 codes, i.e. image_size 32; got image_size 64"):
        build_tokenizer("janus-image", model_dir=saved["janus-image"][1], image_size=64)
    with pytest.raises(ValueError, match="multiple of 2"):
        build_tokenizer("emu3-image", model_dir=saved["emu3-image"][1], image_size=33)


def test_inputs_and_codes_are_checked(saved, tmp_path):
    tokenizer: HFImageTokenizer = build_tokenizer("janus-image", model_dir=saved["janus-image"][1])
    gray, rgba = picture().convert("L"), picture().convert("RGBA")
    assert torch.equal(tokenizer.encode(gray), tokenizer.encode(gray.convert("RGB")))
    assert torch.equal(tokenizer.encode(rgba), tokenizer.encode(picture()))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(MediaError, match="broken.png: not a readable image"):
        tokenizer.encode(broken)
    limited = build_tokenizer("janus-image", model_dir=saved["janus-image"][1], max_pixels=100)
    with pytest.raises(MediaError, match="exceeds the limit of 100"):
        limited.encode(picture())
    with pytest.raises(ValueError, match=r"in \[0, 64\)"):
        tokenizer.decode(torch.full((1, 256), 64))
    with pytest.raises(ValueError, match=r"T = 256"):
        tokenizer.decode(torch.zeros(1, 255, dtype=torch.long))
