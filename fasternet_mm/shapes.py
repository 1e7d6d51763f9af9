"""A small synthetic dataset for the end-to-end demo: coloured shapes on a
textured background, in COCO instance format and as semantic masks.

Everything follows from one seed, so every machine generates the same files.
Layout under ``root``::

    train/*.png, val/*.png             images
    annotations/instances_{split}.json COCO instances (polygons)
    seg/{split}/*.png                  semantic masks: 0 background,
                                       i + 1 for CLASSES[i]
"""
import json
import math
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

CLASSES = ('circle', 'square', 'triangle')
SPLITS = ('train', 'val')


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour noise plus faint stripes, so the background is not a
    flat colour the model could learn away in a few iterations."""
    low = rng.uniform(60, 200, size=(6, 6, 3)).astype(np.float32)
    image = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(6, 20)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    stripes = np.sin(
        (xx * math.cos(angle) + yy * math.sin(angle)) / period * 2 * math.pi)
    image += 18 * stripes[..., None]
    image += rng.normal(0, 6, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255)


def _polygon(rng: np.random.Generator, label: str, center: Tuple[float, float],
             radius: float) -> np.ndarray:
    if label == 'circle':
        angles = np.linspace(0, 2 * math.pi, 32, endpoint=False)
    elif label == 'square':
        start = rng.uniform(0, math.pi / 2)
        angles = start + np.arange(4) * math.pi / 2
    else:
        start = rng.uniform(0, 2 * math.pi)
        angles = start + np.arange(3) * 2 * math.pi / 3
    points = np.stack([
        center[0] + radius * np.cos(angles),
        center[1] + radius * np.sin(angles)
    ],
                      axis=1)
    return points.astype(np.float32)


def _place(rng: np.random.Generator, size: int,
           placed: List[Tuple[float, float, float]]):
    """A centre and radius that do not overlap earlier shapes."""
    for _ in range(50):
        radius = rng.uniform(0.07, 0.2) * size
        cx, cy = rng.uniform(radius, size - radius, size=2)
        if all(
                math.hypot(cx - x, cy - y) > radius + r + 2
                for x, y, r in placed):
            return (cx, cy), radius
    return None


def make_image(rng: np.random.Generator, size: int,
               max_shapes: int) -> Tuple[np.ndarray, List[Dict], np.ndarray]:
    """One image, its instances (label index and polygon) and its semantic
    mask."""
    image = _texture(rng, size)
    semantic = np.zeros((size, size), np.uint8)
    instances, placed = [], []
    for _ in range(rng.integers(1, max_shapes + 1)):
        spot = _place(rng, size, placed)
        if spot is None:
            break
        center, radius = spot
        placed.append((*center, radius))
        label = int(rng.integers(len(CLASSES)))
        polygon = _polygon(rng, CLASSES[label], center, radius)
        colour = rng.uniform(0, 255, size=3)
        # Keep each shape visibly different from the background under it.
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
        under = image[mask.astype(bool)].mean(axis=0)
        if np.abs(colour - under).max() < 60:
            colour = (under + 128) % 256
        image[mask.astype(bool)] = colour
        semantic[mask.astype(bool)] = label + 1
        instances.append(dict(label=label, polygon=polygon, mask=mask))
    return image.astype(np.uint8), instances, semantic


def _coco_annotation(instance: Dict, image_id: int, ann_id: int) -> Dict:
    mask = instance['mask']
    ys, xs = np.nonzero(mask)
    x0, y0 = float(xs.min()), float(ys.min())
    w, h = float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)
    return dict(
        id=ann_id,
        image_id=image_id,
        category_id=instance['label'] + 1,
        segmentation=[instance['polygon'].round(2).reshape(-1).tolist()],
        area=float(mask.sum()),
        bbox=[x0, y0, w, h],
        iscrowd=0)


def generate(root: str,
             num_train: int = 240,
             num_val: int = 60,
             size: int = 256,
             max_shapes: int = 4,
             seed: int = 0) -> Dict[str, int]:
    """Write the dataset under ``root``; return the image count per split.

    A root that already holds a dataset made with the same arguments is left
    as it is.
    """
    for name, value in dict(
            num_train=num_train, num_val=num_val, size=size,
            max_shapes=max_shapes).items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive int, got {value!r}')
    if size < 64:
        raise ValueError(f'size must be at least 64 pixels, got {size}')
    settings = dict(
        num_train=num_train,
        num_val=num_val,
        size=size,
        max_shapes=max_shapes,
        seed=seed,
        classes=CLASSES)
    stamp = osp.join(root, 'settings.json')
    counts = dict(train=num_train, val=num_val)
    if osp.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == json.loads(json.dumps(settings)):
                return counts
    rng = np.random.default_rng(seed)
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    for split in SPLITS:
        os.makedirs(osp.join(root, split), exist_ok=True)
        os.makedirs(osp.join(root, 'seg', split), exist_ok=True)
        images, annotations = [], []
        for index in range(counts[split]):
            image, instances, semantic = make_image(rng, size, max_shapes)
            file_name = f'{index:05d}.png'
            cv2.imwrite(osp.join(root, split, file_name), image[..., ::-1])
            cv2.imwrite(osp.join(root, 'seg', split, file_name), semantic)
            image_id = index + 1
            images.append(
                dict(
                    id=image_id, file_name=file_name, height=size, width=size))
            for instance in instances:
                annotations.append(
                    _coco_annotation(instance, image_id,
                                     len(annotations) + 1))
        with open(
                osp.join(root, 'annotations', f'instances_{split}.json'),
                'w') as f:
            json.dump(
                dict(
                    images=images,
                    annotations=annotations,
                    categories=categories), f)
    with open(stamp, 'w') as f:
        json.dump(settings, f)
    return counts
