"""The shape-scene judge: right on the world's own renders, and it tells corrupted ones apart."""

from __future__ import annotations

import copy
import io
import random

import numpy as np
import pytest
from PIL import Image, ImageFilter

from anyseq.judges.image import classify_silhouette, find_objects, judge_shape_scene
from anyseq.world.images import SHAPES, render_shape_scene, sample_scene, scene_object

VERDICTS = ("colour_ok", "shape_ok", "size_ok", "position_ok", "background_ok", "count_ok", "all_ok")


def scenes(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [sample_scene(rng, frozenset(), heldout=False) for _ in range(count)]


def one_object(shape: str, colour: str = "red", size: str = "medium", where: str = "center") -> dict:
    return {"background": "white", "objects": [scene_object(shape, colour, size, where)], "relation": None}


def test_ceiling_on_ground_truth_renders():
    labels = scenes(120, seed=1)
    assert any(scene["relation"] for scene in labels) and any(not scene["relation"] for scene in labels)
    verdicts = [judge_shape_scene(render_shape_scene(scene), scene) for scene in labels]
    for name in VERDICTS:
        assert all(v[name] for v in verdicts), name


@pytest.mark.parametrize("size", ["small", "large"])
def test_every_shape_is_told_apart_from_every_other(size):
    for shape in SHAPES:
        scene = one_object(shape, size=size)
        found = find_objects(render_shape_scene(scene))["objects"]
        assert [o["shape"] for o in found] == [shape]
        assert found[0]["size"] == size


def test_judges_renders_of_any_size():
    for scene in scenes(10, seed=2):
        assert judge_shape_scene(render_shape_scene(scene, size=160), scene)["all_ok"]


def test_accepts_paths_bytes_arrays_and_pil(tmp_path):
    scene = one_object("star", "blue")
    image = render_shape_scene(scene)
    path = tmp_path / "scene.png"
    image.save(path)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    for source in (image, path, str(path), buffer.getvalue(), np.asarray(image), image.convert("RGBA")):
        assert judge_shape_scene(source, scene)["all_ok"]


def test_wrong_colour_is_caught():
    scene = one_object("circle", "red")
    wrong = copy.deepcopy(scene)
    wrong["objects"][0]["colour"] = "green"
    verdict = judge_shape_scene(render_shape_scene(wrong), scene)
    assert not verdict["colour_ok"] and not verdict["all_ok"]
    assert verdict["found"]["objects"][0]["colour"] == "green"


def test_wrong_shape_is_caught():
    scene = one_object("circle", "red")
    for other in SHAPES[1:]:
        wrong = copy.deepcopy(scene)
        wrong["objects"][0]["shape"] = other
        verdict = judge_shape_scene(render_shape_scene(wrong), scene)
        assert verdict["colour_ok"] and not verdict["shape_ok"], other


def test_wrong_position_size_and_background_are_caught():
    scene = one_object("square", "yellow", "medium", "top left")
    moved = one_object("square", "yellow", "medium", "bottom right")
    assert not judge_shape_scene(render_shape_scene(moved), scene)["position_ok"]
    bigger = one_object("square", "yellow", "large", "top left")
    assert not judge_shape_scene(render_shape_scene(bigger), scene)["size_ok"]
    dark = copy.deepcopy(scene)
    dark["background"] = "black"
    verdict = judge_shape_scene(render_shape_scene(dark), scene)
    assert not verdict["background_ok"] and verdict["shape_ok"] and verdict["colour_ok"]


def test_swapped_relation_is_caught():
    scene = next(s for s in scenes(50, seed=3) if s["relation"] == "to the left of")
    swapped = copy.deepcopy(scene)
    swapped["relation"] = "to the right of"
    assert judge_shape_scene(render_shape_scene(scene), scene)["relation_ok"]
    verdict = judge_shape_scene(render_shape_scene(scene), swapped)
    assert verdict["relation_ok"] is False and not verdict["position_ok"]


def test_blank_noisy_and_extra_objects():
    scene = one_object("heart", "pink")
    blank = judge_shape_scene(Image.new("RGB", (64, 64), "white"), scene)
    assert not blank["colour_ok"] and not blank["count_ok"] and blank["found"]["objects"] == []
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert not judge_shape_scene(noise, scene)["all_ok"]
    two = {**scene, "objects": [scene_object("heart", "pink", "small", (0.27, 0.5))]}
    two["objects"].append(scene_object("cross", "blue", "small", (0.73, 0.5)))
    verdict = judge_shape_scene(render_shape_scene(two), {**two, "objects": two["objects"][:1]})
    assert verdict["colour_ok"] and verdict["shape_ok"] and not verdict["count_ok"]


def test_blurred_render_keeps_its_attributes_but_a_blob_does_not():
    scene = one_object("triangle", "orange", "large")
    image = render_shape_scene(scene)
    assert judge_shape_scene(image.filter(ImageFilter.GaussianBlur(0.8)), scene)["shape_ok"]
    blob = image.resize((8, 8), Image.Resampling.BOX).resize((64, 64), Image.Resampling.BILINEAR)
    assert not judge_shape_scene(blob, scene)["shape_ok"]


def near_pair(gap: float) -> dict:
    """A yellow square left of a blue circle, their centres `gap` of the side apart (0.32 overlaps them)."""
    objects = [
        scene_object("square", "yellow", "medium", "center"),
        scene_object("circle", "blue", "medium", "center"),
    ]
    objects[0]["center"], objects[1]["center"] = [0.5 - gap / 2, 0.5], [0.5 + gap / 2, 0.5]
    return {"background": "gray", "objects": objects, "relation": None}


@pytest.mark.parametrize("gap", [0.36, 0.32])
def test_touching_objects_of_two_colours_are_two_objects(gap):
    scene = near_pair(gap)
    verdict = judge_shape_scene(render_shape_scene(scene), scene)
    assert verdict["colour_ok"] and verdict["shape_ok"] and verdict["count_ok"]


@pytest.mark.parametrize("coverage", [0.25, 0.35])
def test_a_faint_bridge_does_not_join_two_silhouettes(coverage):
    """A reconstruction that blurs a narrow gap leaves a faint bridge of colour between the objects."""
    scene = near_pair(0.44)
    image = np.asarray(render_shape_scene(scene), dtype=np.float64)
    image[22:42, 29:35] = (1 - coverage) * np.array([128, 128, 128]) + coverage * np.array([240, 220, 30])
    verdict = judge_shape_scene(Image.fromarray(image.astype(np.uint8)), scene)
    assert verdict["shape_ok"] and verdict["count_ok"]


def test_a_shaded_object_is_one_object_of_its_median_colour():
    """A star brown on its left, drifting toward orange on its right: two parts by colour, one object by its median."""
    scene = {
        "background": "black",
        "objects": [scene_object("star", "brown", "large", "center")],
        "relation": None,
    }
    coverage = np.asarray(render_shape_scene(scene), dtype=np.float64)[..., :1] / 120.0
    brown, orange = np.array([120.0, 70.0, 30.0]), np.array([245.0, 140.0, 20.0])
    ramp = np.clip((np.arange(64) - 32) / 12, 0.0, 1.0)[None, :, None] * 0.4
    shaded = Image.fromarray((coverage * (brown + ramp * (orange - brown))).astype(np.uint8))
    found = find_objects(shaded)["objects"]
    assert [(o["colour"], o["shape"]) for o in found] == [("brown", "star")]


def test_a_blurred_edge_is_not_an_object_of_another_colour():
    """Orange blurred into white passes near pink; it is still orange at partial coverage."""
    scene = one_object("triangle", "orange", "large")
    for radius in (1, 3):
        found = find_objects(render_shape_scene(scene).filter(ImageFilter.GaussianBlur(radius)))["objects"]
        assert [(o["colour"], o["shape"]) for o in found] == [("orange", "triangle")]


def test_classify_silhouette_scores_a_perfect_match_near_one():
    mask = np.asarray(render_shape_scene(one_object("hexagon", "red", "large")))[..., 1] < 128
    shape, score = classify_silhouette(mask.astype(np.float32))
    assert shape == "hexagon" and score > 0.9
