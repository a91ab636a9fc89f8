"""Code embeddings: a new model's modality rows start from its tokenizers' code vectors."""

import pytest
import torch

from anyseq.checkpoint import load_checkpoint
from anyseq.modalities.base import ModalitySpec, code_vectors
from anyseq.modalities.image_vq import VQImageConfig, VQImageTokenizer
from anyseq.modalities.music import MusicConfig, MusicTokenizer
from anyseq.modalities.speech import SpeechConfig, SpeechTokenizer
from anyseq.training.init import code_features, embed_codes, init_model
from anyseq.vocab import VocabLayout

MICRO_IMAGE = dict(
    image_size=16,
    patch=8,
    levels=(5, 5),
    channels=(8, 16),
    encoder_blocks=(1, 1),
    decoder_blocks=(1, 1),
    head=16,
)


class TwoLevelMusic:
    """A music tokenizer stand-in with K = 2 levels of 4 codes whose levels share their vectors."""

    name, num_codebooks, codebook_size = "music", 2, 4
    spec = ModalitySpec("music", 2, 4, max_frames=16)

    def code_vectors(self) -> torch.Tensor:
        level = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        return torch.cat([level, level])  # (K x codebook_size, D), level-major


def test_code_features_keep_the_codes_geometry():
    grid = torch.cartesian_prod(torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 5))  # a 5 x 5 FSQ grid
    features = code_features(grid, 512, torch.Generator().manual_seed(0))
    assert features.shape == (25, 512)
    assert features.var().item() == pytest.approx(1.0, abs=0.1)
    similarity = features @ features.T / 512
    corner, neighbour, opposite = 0, 1, 24
    assert similarity[corner, neighbour] > 0.45  # the kernel there is about 0.6
    assert abs(similarity[corner, opposite]) < 0.15
    with pytest.raises(ValueError, match="median distance of 0"):
        code_features(torch.zeros(3, 2), 8, torch.Generator())


def test_every_trained_tokenizer_offers_one_vector_per_vocabulary_id():
    image = VQImageTokenizer(VQImageConfig(**MICRO_IMAGE))
    assert code_vectors(image).shape == (25, 2)  # FSQ grid points exist before training
    music = MusicTokenizer(MusicConfig.preset("test"))
    assert code_vectors(music).shape == (music.spec.size, music.config.codec.latent_dim)
    speech = SpeechTokenizer(SpeechConfig.preset("test"))
    assert code_vectors(speech).shape == (speech.spec.size, speech.config.content_dim)
    assert code_vectors(object()) is None  # the method is optional


def test_init_embeds_the_codes_and_leaves_text_and_untrained_codebooks_alone(tmp_path):
    tokenizers = [
        (tmp_path / "image", VQImageTokenizer(VQImageConfig(**MICRO_IMAGE))),
        (tmp_path / "speech", SpeechTokenizer(SpeechConfig.preset("test"))),  # EMA codebook still all zero
    ]
    for directory, tokenizer in tokenizers:
        tokenizer.save(directory)
    texts = ["a red circle", "a blue square"] * 20
    plain, embedded = (
        load_checkpoint(
            init_model(
                tmp_path / name,
                [d for d, _ in tokenizers],
                texts=texts,
                backbone="test",
                text_vocab_size=300,
                code_embeddings=name == "embedded",
            )  # fmt: skip
        )
        for name in ("plain", "embedded")
    )
    assert plain.metadata["code_embeddings"] == [] and embedded.metadata["code_embeddings"] == ["image"]
    layout = embedded.layout
    grid = code_vectors(tokenizers[0][1])
    image_ids = layout.to_global("image", torch.arange(25))
    speech_ids = layout.to_global("speech", torch.arange(layout.spec("speech").size))
    for get in ("get_input_embeddings", "get_output_embeddings"):
        before, after = (getattr(c.model, get)().weight for c in (plain, embedded))
        changed = (before != after).any(dim=1)
        assert changed[image_ids].all() and changed.sum() == len(image_ids)
        assert not changed[speech_ids].any()
        text_std = after[: layout.text_size].std()
        assert after[image_ids].std().item() == pytest.approx(text_std.item(), rel=0.25)
        rows = torch.nn.functional.normalize(after[image_ids], dim=1)
        similarity = rows @ rows.T  # (25, 25) over the 5 x 5 grid of codes
        steps = torch.cdist(grid, grid) * 2  # grid steps between codes (the grid spacing is 0.5)
        near, far = similarity[steps.round() == 1].mean(), similarity[steps > 3].abs().mean()
        assert near > 0.4 and far < 0.25  # about 0.6 and 0.15 at this width of 32


def test_each_level_of_a_modality_gets_its_own_projection(tmp_path):
    image = VQImageTokenizer(VQImageConfig(**MICRO_IMAGE))
    image.save(tmp_path / "image")
    checkpoint = load_checkpoint(
        init_model(
            tmp_path / "model",
            [tmp_path / "image"],
            texts=["a red circle"] * 20,
            backbone="test",
            text_vocab_size=300,
            code_embeddings=False,
        )
    )
    layout = VocabLayout(checkpoint.layout.text_tokenizer, [image.spec, TwoLevelMusic.spec])
    model = checkpoint.model
    model.resize_token_embeddings(layout.vocab_size)
    assert embed_codes(model, layout, {"image": image, "music": TwoLevelMusic()}) == ["image", "music"]
    weight = model.get_input_embeddings().weight
    level1, level2 = (weight[layout.to_global("music", torch.arange(k * 4, k * 4 + 4))] for k in (0, 1))
    # the same vectors on two levels, projected independently: the rows differ
    cosine = torch.nn.functional.cosine_similarity(level1, level2, dim=1)
    assert cosine.abs().max() < 0.5


def test_a_preset_can_start_with_its_shape_changed(tmp_path):
    image = tmp_path / "image"
    VQImageTokenizer(VQImageConfig(**MICRO_IMAGE)).save(image)
    texts = ["a red circle", "a blue square"] * 20
    shape = {"hidden_size": 48, "num_layers": 1, "intermediate_size": 80}
    model = load_checkpoint(
        init_model(
            tmp_path / "m",
            [image],
            texts=texts,
            backbone="test",
            backbone_overrides=shape,
            text_vocab_size=300,
        )
    )
    config = model.model.config
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (48, 1, 80)
    assert config.num_attention_heads == 4 and config.max_position_embeddings == 256  # the preset's
    assert model.metadata["backbone"] == "test"
    assert model.metadata["backbone_config"] | shape == model.metadata["backbone_config"]
    with pytest.raises(ValueError, match="backbone num_layers must be positive, got 0"):
        init_model(
            tmp_path / "z", [image], texts=texts, backbone="test", backbone_overrides={"num_layers": 0}
        )
    with pytest.raises(ValueError, match="are for a preset, not for --from-hf"):
        init_model(tmp_path / "hf", [image], from_hf=tmp_path / "m", backbone_overrides=shape)
    assert not (tmp_path / "z").exists() and not (tmp_path / "hf").exists()
