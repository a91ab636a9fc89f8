"""The speech judges: grammar, PocketSphinx with dither, the CTC recognizer, the speaker classifier."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from anyseq.judges.speech import (
    CTCRecognizer,
    GrammarRecognizer,
    RecognizerConfig,
    SpeakerClassifier,
    SpeechJudges,
    normalize_text,
    sentence_grammar,
    train_ctc_recognizer,
    word_error_rate,
)
from anyseq.media import Audio, MediaError
from anyseq.world.speech import synthesize

SENTENCES = [
    "draw a red circle",
    "draw a blue circle",
    "draw a red square",
    "make it bigger",
    "make it",
    "the melody is fast",
]


def _language(grammar: str) -> set[str]:
    """Every sentence a grammar written by `sentence_grammar` accepts (rules `<sN> = a <sM> | [ b ];`)."""
    rules = dict(re.findall(r"<(s\d+)> = (.*);", grammar))
    start = re.search(r"public <(s\d+)>", grammar).group(1)

    def expand(rule: str) -> set[str]:
        body = rules[rule]
        optional = body.startswith("[ ")
        body = body[2:-2] if optional else body
        out = {""} if optional else set()
        for alternative in body.split(" | "):
            word, *rest = alternative.split()
            tails = expand(rest[0][1:-1]) if rest else {""}
            out |= {f"{word} {tail}".strip() for tail in tails}
        return out

    return expand(start)


def test_normalize_and_word_error_rate():
    assert normalize_text("  The RED, square!  it's") == "the red square it's"
    assert word_error_rate(["the red square"], ["the blue square"]) == pytest.approx(1 / 3)
    assert word_error_rate(["the red square", "make it"], ["The red square.", ""]) == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="as many hypotheses as references"):
        word_error_rate(["a"], [])
    with pytest.raises(ValueError, match="empty after normalisation"):
        word_error_rate(["?!"], ["a"])


def test_grammar_accepts_exactly_the_sentences():
    grammar = sentence_grammar([*SENTENCES, "Draw a RED circle!"])
    assert _language(grammar) == set(SENTENCES)
    # shared prefixes and suffixes are merged: fewer rules than words in the sentences
    assert grammar.count(" = ") < sum(len(s.split()) for s in SENTENCES) / 2
    with pytest.raises(ValueError, match="at least one non-empty sentence"):
        sentence_grammar(["", "  "])


@pytest.fixture(scope="module")
def grammar_recognizer() -> GrammarRecognizer:
    return GrammarRecognizer(SENTENCES)


def test_pocketsphinx_hears_grammar_sentences_in_two_voices(grammar_recognizer):
    for text, voice in [("draw a red circle", "us-male"), ("the melody is fast", "gb-male")]:
        clip = synthesize(text, voice).audio
        assert grammar_recognizer.transcribe(clip) == text
        assert grammar_recognizer.transcribe(clip) == text  # the dither is seeded: same clip, same words


def test_pocketsphinx_tells_a_corrupted_clip_apart(grammar_recognizer):
    clip = synthesize("draw a blue circle", "us-male").audio
    rng = np.random.default_rng(0)
    corrupted = Audio(
        np.clip(clip.samples + rng.normal(0, 0.3, clip.samples.shape), -1, 1).astype(np.float32), 16000
    )
    assert grammar_recognizer.transcribe(clip) == "draw a blue circle"
    assert grammar_recognizer.transcribe(corrupted) != "draw a blue circle"


def test_grammar_recognizer_input_errors(grammar_recognizer, tmp_path):
    with pytest.raises(ValueError, match=r"missing from PocketSphinx's dictionary .*\['zorblax'\]"):
        GrammarRecognizer(["draw a zorblax"])
    with pytest.raises(MediaError, match="shorter than the minimum"):
        grammar_recognizer.transcribe(np.zeros(100, dtype=np.float32))
    with pytest.raises(MediaError, match="longer than the maximum of 30.0 s"):
        grammar_recognizer.transcribe(np.zeros(16000 * 31, dtype=np.float32))
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(MediaError, match="empty.wav: file is empty"):
        grammar_recognizer.transcribe(tmp_path / "empty.wav")


@pytest.fixture(scope="module")
def clips() -> list[tuple[Audio, str, str]]:
    """Real espeak-ng clips: (audio, text, voice), four sentences in each of two voices."""
    return [(synthesize(t, v, pitch=50).audio, t, v) for v in ("us-male", "us-female") for t in SENTENCES[:4]]


def test_ctc_recognizer_snaps_to_its_vocabulary_and_round_trips(clips, tmp_path):
    config = RecognizerConfig.preset("test")
    model = train_ctc_recognizer([c[0] for c in clips], [c[1] for c in clips], config)
    assert model.vocabulary == ["a", "bigger", "blue", "circle", "draw", "it", "make", "red", "square"]
    assert model._snap("drow a rad sqare") == "draw a red square"
    texts = model.transcribe_batch([c[0] for c in clips])
    assert all(set(t.split()) <= set(model.vocabulary) for t in texts)
    model.save(tmp_path / "recognizer")
    assert sorted(p.name for p in (tmp_path / "recognizer").iterdir()) == ["config.json", "model.safetensors"]
    loaded = CTCRecognizer.load(tmp_path / "recognizer")
    assert loaded.transcribe_batch([c[0] for c in clips]) == texts
    audio = torch.from_numpy(clips[0][0].samples)[None]
    mels = model.features(audio)
    assert torch.equal(loaded(mels), model(mels))
    assert model(mels).shape[1] == int(model.output_frames(torch.tensor([audio.shape[1]])))
    with pytest.raises(ValueError, match="as many transcripts as clips"):
        train_ctc_recognizer([clips[0][0]], [], config)


@pytest.mark.slow
def test_ctc_recognizer_learns_real_clips(clips):
    config = RecognizerConfig(channels=64, blocks=2, rnn_hidden=64, steps=200, batch_size=8, max_noise=0.0)
    model = train_ctc_recognizer([c[0] for c in clips], [c[1] for c in clips], config)
    assert word_error_rate([c[1] for c in clips], model.transcribe_batch([c[0] for c in clips])) < 0.2


def test_speaker_classifier_on_unseen_sentences(clips, tmp_path):
    speaker = SpeakerClassifier.fit([c[0] for c in clips], [c[2] for c in clips])
    unseen = [(synthesize("the melody is fast", v, pitch=50).audio, v) for v in ("us-female", "us-male")]
    assert speaker.predict([u[0] for u in unseen]) == ["us-female", "us-male"]
    speaker.save(tmp_path / "speaker")
    assert sorted(p.name for p in (tmp_path / "speaker").iterdir()) == ["config.json", "model.safetensors"]
    loaded = SpeakerClassifier.load(tmp_path / "speaker")
    assert np.array_equal(loaded.scores([u[0] for u in unseen]), speaker.scores([u[0] for u in unseen]))
    with pytest.raises(ValueError, match="at least 2 speakers"):
        SpeakerClassifier.fit([c[0] for c in clips[:2]], ["a", "a"])


@pytest.mark.slow
def test_judges_of_a_world_are_built_once_and_cached(micro_world, tmp_path):
    cache = tmp_path / "judges"
    judges = SpeechJudges.for_world(micro_world, cache, RecognizerConfig.preset("test"))
    written = {p: p.stat().st_mtime_ns for p in cache.rglob("*.safetensors")}
    assert len(written) == 2
    again = SpeechJudges.for_world(micro_world, cache, RecognizerConfig.preset("test"))
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.safetensors")} == written
    assert again.speaker.speakers == judges.speaker.speakers
    from anyseq.world.dataset import iter_items

    items = list(iter_items(micro_world, "speech", "test"))
    rates = judges.word_error_rates([i.text for i in items], [i.media for i in items])
    assert set(rates) == {"pocketsphinx", "ctc"} and all(0 <= r <= 2 for r in rates.values())
    assert rates["pocketsphinx"] < 0.5  # the grammar judge works on real clips from the first build
