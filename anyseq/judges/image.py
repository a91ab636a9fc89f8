"""A pixel-level judge of AnyWorld's shape scenes: which colours, shapes and places an image shows.

AnyGPT scores text-to-image with CLIPscore on COCO (Zhan et al., ACL 2024, section 5.2);
AnyWorld's shape scenes come with exact labels, so AnySeq checks attributes instead,
with no learned model: the judge shares nothing with the tokenizers and the language
model it scores. It reads an image as follows:

1. background: the palette colour nearest to the median of the border pixels;
2. objects: connected regions of pixels far from the background (opened once, so
   anti-aliased fringes and specks drop out), larger than a fraction of the smallest
   object the world draws; a region that holds solid parts of two palette colours
   (two objects that touch) is one object per colour, each pixel going to the colour
   whose blend with the background explains it best;
3. colour: the palette colour nearest to the median of an object's interior;
4. shape: the silhouette (the object's share of the fainter foreground around it,
   where bridged objects split the pixels between them), scaled into a square box with
   its aspect ratio kept, against the world's own renderings of every shape (soft IoU,
   best match wins);
5. size and position: the radius implied by the area, and the centre, compared with the
   geometry the world would have drawn for the labels.

`judge_shape_scene(image, labels)` returns the findings and a verdict per attribute.
The image tokenizer's evaluation uses it for attribute survival, the text-to-image
evaluation for attribute accuracy; both report its ceiling on the original renders.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from scipy import ndimage

from anyseq.media import load_image
from anyseq.world.images import (
    BACKGROUNDS,
    COLOURS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    render_shape_scene,
    scene_object,
)

TEMPLATE_SIZE = 32  # side of the box silhouettes are compared in
SQRT_AREA_IN_BOX = 12.0  # a silhouette is scaled so the square root of its area spans this many box pixels
FOREGROUND_DISTANCE = 60.0  # RGB distance from the background colour that makes a pixel foreground
MIN_AREA_FRACTION = 0.3  # regions smaller than this share of the smallest object's area are noise
# RGB distance that one pixel away from an object's solid part costs, in bridged regions
SPATIAL_WEIGHT = 10.0


def _nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    names = list(palette)
    distances = np.linalg.norm(np.asarray([palette[n] for n in names], dtype=np.float64) - rgb, axis=1)
    return names[int(np.argmin(distances))]


def _normalised(mask: np.ndarray) -> np.ndarray:
    """A silhouette (H, W) in [0, 1] moved to its centroid and scaled by its area, sampled on the template box.

    Moments, not the bounding box, fix position and scale: they move little when a
    small object's edge pixels change.
    """
    area = float(mask.sum())
    rows, cols = np.indices(mask.shape)
    center_row, center_col = (float((mask * rows).sum()) / area, float((mask * cols).sum()) / area)
    step = np.sqrt(area) / SQRT_AREA_IN_BOX  # source pixels per template pixel
    offsets = (np.arange(TEMPLATE_SIZE) - (TEMPLATE_SIZE - 1) / 2) * step
    grid = np.stack(np.meshgrid(center_row + offsets, center_col + offsets, indexing="ij"))
    return ndimage.map_coordinates(mask.astype(np.float32), grid, order=1, mode="constant")


def _render_silhouette(shape: str, radius_px: float) -> np.ndarray:
    """The world's rendering of `shape` with a radius of `radius_px` pixels, as coverage (H, W) in [0, 1]."""
    size = max(16, int(np.ceil(2.5 * radius_px)) + 4)
    obj = {"shape": shape, "colour": "red", "center": [0.5, 0.5], "radius": radius_px / size}
    image = render_shape_scene({"background": "black", "objects": [obj]}, size=size)
    return np.asarray(image, dtype=np.float32)[..., 0] / COLOURS["red"][0]


@cache
def _area_per_radius2() -> dict[str, float]:
    """Per shape, area / radius^2, to read a radius off an area."""
    return {shape: float(_render_silhouette(shape, 40.0).sum()) / 40.0**2 for shape in SHAPES}


@cache
def _template(shape: str, radius_px: float) -> np.ndarray:
    return _normalised(_render_silhouette(shape, radius_px))


def classify_silhouette(mask: np.ndarray) -> tuple[str, float]:
    """The shape whose rendering best matches a silhouette (H, W) in [0, 1], and the soft IoU.

    Each shape is rendered at the radius its area implies (to half a pixel), so small
    objects are compared with equally pixelated renderings.
    """
    silhouette, area = _normalised(mask), float(mask.sum())
    scores = {}
    for shape, per_radius2 in _area_per_radius2().items():
        template = _template(shape, round(2 * np.sqrt(area / per_radius2)) / 2)
        scores[shape] = float(np.minimum(silhouette, template).sum() / np.maximum(silhouette, template).sum())
    best = max(scores, key=scores.get)
    return best, scores[best]


def _blend_residuals(rgb: np.ndarray, background_rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Per pixel and colour (H, W, C): how far the pixel lies from every blend of the background and that colour.

    An anti-aliased or blurred edge mixes an object's colour with the background, and
    such a mix can sit nearer another palette colour (orange on white nears pink); it
    still lies on the orange-white line.
    """
    directions = palette - background_rgb  # (C, 3)
    offsets = rgb - background_rgb  # (H, W, 3)
    coverage = np.clip((offsets @ directions.T) / (directions**2).sum(axis=1), 0.0, 1.0)  # (H, W, C)
    return np.linalg.norm(offsets[..., None, :] - coverage[..., None] * directions, axis=-1)


def _split_by_colour(
    rgb: np.ndarray, region: np.ndarray, explained_by: np.ndarray, min_area: float
) -> list[tuple[np.ndarray, str]]:
    """A foreground region as (solid part, colour) pairs, one per palette colour that holds enough of it.

    Two objects of different colours that touch (a blurred reconstruction fills a
    one-pixel gap) form one connected region; their colours tell them apart.
    `explained_by` (H, W) is the palette index whose blend with the background explains
    each pixel best; a colour counts only where its pixels survive an opening and cover
    `min_area`, so the mixed seam between two colours is not an object.
    """
    parts: dict[str, np.ndarray] = {}
    for index in np.unique(explained_by[region]):
        part = ndimage.binary_opening(region & (explained_by == index), structure=np.ones((3, 3)))
        if part.sum() >= min_area:
            # a shaded object (brown drifting to orange) is one colour by its median: join such parts
            colour = _colour_of(rgb, part)
            parts[colour] = parts[colour] | part if colour in parts else part
    if len(parts) < 2:
        return [(region, _colour_of(rgb, region))]
    return [(part, colour) for colour, part in parts.items()]


def _colour_of(rgb: np.ndarray, part: np.ndarray) -> str:
    """The palette colour nearest to the median of a part's interior."""
    interior = ndimage.binary_erosion(part)
    return _nearest(np.median(rgb[interior if interior.any() else part], axis=0), COLOURS)


def _territories(
    rgb: np.ndarray,
    background_rgb: np.ndarray,
    loose: np.ndarray,
    parts: list[np.ndarray],
    colours: list[str],
) -> list[np.ndarray]:
    """Per object, the pixels its silhouette may take: its loose component, shared out among the objects in it.

    The loose foreground keeps thin parts (a small star's points), but it also joins
    objects that a faint bridge connects. A pixel of a shared component goes to the
    object whose colour, blended with the background, explains it best, with the
    distance to the object's solid part (SPATIAL_WEIGHT per pixel) settling near ties
    and objects of one colour.
    """
    if not parts:
        return []
    palette = np.asarray([COLOURS[colour] for colour in colours], dtype=np.float64)
    scores = _blend_residuals(rgb, background_rgb, palette)  # (H, W, objects)
    for k, part in enumerate(parts):
        scores[..., k] += SPATIAL_WEIGHT * ndimage.distance_transform_edt(~part)
    wholes = [ndimage.binary_dilation(np.isin(loose, np.unique(loose[part]))) for part in parts]
    territories = []
    for k, whole in enumerate(wholes):
        rivals = [j for j, other in enumerate(wholes) if (whole & other).any()]
        best = np.asarray(rivals)[np.argmin(scores[..., rivals], axis=-1)]
        territories.append(whole & (best == k))
    return territories


def _describe(
    rgb: np.ndarray,
    background_rgb: np.ndarray,
    distance: np.ndarray,
    part: np.ndarray,
    colour: str,
    territory: np.ndarray,
) -> dict[str, Any]:
    """Shape, size and centre of one object: `part` is its solid part, `territory` bounds its silhouette."""
    height, width = part.shape
    # soft silhouette: the share of the way from the background to the object's colour
    span = np.linalg.norm(np.asarray(COLOURS[colour], dtype=np.float64) - background_rgb)
    soft = np.clip(distance / max(span, 1.0), 0.0, 1.0) * territory
    shape, match = classify_silhouette(soft)
    rows, cols = np.nonzero(part)
    radius = float(np.sqrt(soft.sum() / _area_per_radius2()[shape])) / min(height, width)
    return {
        "colour": colour,
        "shape": shape,
        "match": round(match, 3),
        "center": [round(float(cols.mean() + 0.5) / width, 4), round(float(rows.mean() + 0.5) / height, 4)],
        "radius": round(radius, 4),
        "size": min(SIZES, key=lambda name: abs(SIZES[name] - radius)),
        "area": int(part.sum()),
    }


def find_objects(image: Any) -> dict[str, Any]:
    """The background and the objects an image shows, with no reference to labels."""
    rgb = np.asarray(load_image(image), dtype=np.float64)  # (H, W, 3)
    height, width = rgb.shape[:2]
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background_rgb = np.median(border, axis=0)
    distance = np.linalg.norm(rgb - background_rgb, axis=-1)  # (H, W)
    foreground = ndimage.binary_opening(distance > FOREGROUND_DISTANCE, structure=np.ones((3, 3)))
    regions, count = ndimage.label(foreground)
    loose, _ = ndimage.label(distance > FOREGROUND_DISTANCE / 2)
    smallest = min(_area_per_radius2().values()) * (min(SIZES.values()) * min(height, width)) ** 2
    min_area = MIN_AREA_FRACTION * smallest
    palette = np.asarray(list(COLOURS.values()), dtype=np.float64)
    explained_by = np.argmin(_blend_residuals(rgb, background_rgb, palette), axis=-1)  # (H, W)
    areas = np.bincount(regions.ravel(), minlength=count + 1)
    found = [
        pair
        for index in np.flatnonzero(areas[1:] >= min_area) + 1
        for pair in _split_by_colour(rgb, regions == index, explained_by, min_area)
    ]
    parts, colours = [part for part, _ in found], [colour for _, colour in found]
    territories = _territories(rgb, background_rgb, loose, parts, colours)
    objects = [
        _describe(rgb, background_rgb, distance, part, colour, territory)
        for part, colour, territory in zip(parts, colours, territories, strict=True)
    ]
    objects.sort(key=lambda o: -o["area"])
    return {"background": _nearest(background_rgb, BACKGROUNDS), "objects": objects}


def _nearest_place(center: list[float], candidates: dict[str, list[float]]) -> str:
    return min(candidates, key=lambda name: float(np.linalg.norm(np.subtract(center, candidates[name]))))


def judge_shape_scene(image: Any, labels: dict[str, Any]) -> dict[str, Any]:
    """Check an image against a shape scene's labels (`anyseq.world.images.sample_scene`).

    Each labelled object is matched to the largest found object of its colour. Returns
    the findings, a verdict per labelled object (colour, shape, size, position), the
    relation of a two-object scene, and overall verdicts: `colour_ok`, `shape_ok`,
    `size_ok`, `position_ok`, `background_ok`, `count_ok` (as many objects as labelled)
    and `all_ok`.
    """
    found = find_objects(image)
    by_colour: dict[str, dict[str, Any]] = {}
    for obj in found["objects"]:  # largest first
        by_colour.setdefault(obj["colour"], obj)
    verdicts = []
    for expected in labels["objects"]:
        match = by_colour.get(expected["colour"])
        position_ok = None
        if match is not None and expected.get("position") is not None:
            centres = {
                name: scene_object(expected["shape"], expected["colour"], expected["size"], name)["center"]
                for name in POSITIONS
            }
            position_ok = _nearest_place(match["center"], centres) == expected["position"]
        verdicts.append(
            {
                "expected": {k: expected.get(k) for k in ("colour", "shape", "size", "position")},
                "found": match,
                "colour_ok": match is not None,
                "shape_ok": match is not None and match["shape"] == expected["shape"],
                "size_ok": match is not None and match["size"] == expected["size"],
                "position_ok": position_ok,
            }
        )
    relation_ok = None
    if labels.get("relation") is not None:
        first, second = (v["found"] for v in verdicts)
        if first is not None and second is not None:
            pair = {name: [*a, *b] for name, (a, b) in RELATIONS.items()}
            relation_ok = _nearest_place([*first["center"], *second["center"]], pair) == labels["relation"]
        else:
            relation_ok = False
    colour_ok = all(v["colour_ok"] for v in verdicts)
    shape_ok = all(v["shape_ok"] for v in verdicts)
    size_ok = all(v["size_ok"] for v in verdicts)
    places = [v["position_ok"] for v in verdicts if v["expected"]["position"] is not None]
    position_ok = all(p is True for p in places) and relation_ok is not False
    background_ok = found["background"] == labels["background"]
    count_ok = len(found["objects"]) == len(labels["objects"])
    return {
        "found": found,
        "objects": verdicts,
        "relation_ok": relation_ok,
        "colour_ok": colour_ok,
        "shape_ok": shape_ok,
        "size_ok": size_ok,
        "position_ok": position_ok,
        "background_ok": background_ok,
        "count_ok": count_ok,
        "all_ok": colour_ok and shape_ok and size_ok and position_ok and background_ok and count_ok,
    }
