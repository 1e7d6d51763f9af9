"""A small dataset with COCO's awkward cases, for tests that compare two
inference paths on inputs like the world's.

The shapes of :mod:`fasternet_mm.shapes` on images whose sizes and aspect
ratios are drawn as in COCO (portrait, landscape and square, sides of 333
to 640 pixels, so that a test pipeline resizes and pads them), as JPEG
files, with:

- objects that touch or cross the right and bottom edges;
- images with no objects;
- crowd annotations (``iscrowd=1``, RLE), as COCO marks groups;
- a grayscale JPEG (one channel in the file);
- a JPEG whose EXIF orientation rotates it (stored 90 degrees
  counter-clockwise, Orientation 6); its annotations and its ``width`` and
  ``height`` are those of the image as shown;
- tiny objects (under 8 pixels a side).

Everything follows from one seed. Layout under ``root``::

    images/*.jpg                       images
    annotations/instances.json         COCO instances
"""
import json
import os
import os.path as osp
import struct
from typing import Dict, List, Tuple

import cv2
import numpy as np

from .shapes import CLASSES, _polygon, _texture

# (height, width) of common COCO images; the first images have these sizes.
COCO_SIZES = ((480, 640), (640, 480), (375, 500), (612, 612), (333, 500),
              (424, 640))
# Orientation 6: the stored pixels are shown rotated 90 degrees clockwise.
EXIF_ROTATE_CW = 6


def draw_size(rng: np.random.Generator) -> Tuple[int, int]:
    """A (height, width) as COCO's: the long side 640 (mostly) or 500, the
    short side 333 to the long one; landscape, portrait or square."""
    long_side = 640 if rng.random() < 0.8 else 500
    kind = rng.choice(['landscape', 'portrait', 'square'], p=[.55, .3, .15])
    if kind == 'square':
        return long_side, long_side
    short_side = int(rng.integers(333, long_side))
    if kind == 'landscape':
        return short_side, long_side
    return long_side, short_side


def _texture_of(rng: np.random.Generator, height: int,
                width: int) -> np.ndarray:
    side = max(height, width)
    return _texture(rng, side)[:height, :width]


def _mask_of(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask


def _paint(image: np.ndarray, mask: np.ndarray,
           rng: np.random.Generator) -> None:
    """Fill ``mask`` with a colour that stands out from what is under it."""
    colour = rng.uniform(0, 255, size=3)
    under = image[mask.astype(bool)].mean(axis=0)
    if np.abs(colour - under).max() < 60:
        colour = (under + 128) % 256
    image[mask.astype(bool)] = colour


def _polygons_of(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons (x, y, ...) of a mask's outer contours."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if len(contour) >= 3:
            polygons.append(contour.reshape(-1).astype(float).tolist())
    return polygons


def _annotation(mask: np.ndarray, label: int, crowd: bool) -> Dict:
    ys, xs = np.nonzero(mask)
    x0, y0 = float(xs.min()), float(ys.min())
    box = [x0, y0, float(xs.max() + 1 - x0), float(ys.max() + 1 - y0)]
    if crowd:
        from pycocotools import mask as mask_utils
        rle = mask_utils.encode(np.asfortranarray(mask))
        segmentation = dict(
            size=list(rle['size']), counts=rle['counts'].decode('ascii'))
    else:
        segmentation = _polygons_of(mask)
    return dict(
        category_id=label + 1,
        segmentation=segmentation,
        area=float(mask.sum()),
        bbox=box,
        iscrowd=int(crowd))


def make_image(rng: np.random.Generator, height: int, width: int,
               count: int, at_edge: bool, tiny: int,
               crowd: bool) -> Tuple[np.ndarray, List[Dict]]:
    """An image of ``count`` shapes (the first crossing the right or bottom
    edge when ``at_edge``), ``tiny`` shapes under 8 pixels, and with
    ``crowd`` a group of small shapes annotated as one crowd region."""
    image = _texture_of(rng, height, width)
    annotations, taken = [], np.zeros((height, width), bool)

    def place(radius: float, center: Tuple[float, float], crowd_member=False):
        label = int(rng.integers(len(CLASSES)))
        mask = _mask_of(
            _polygon(rng, CLASSES[label], center, radius), height, width)
        if not mask.any() or (taken & mask.astype(bool)).any():
            return None
        taken[mask.astype(bool)] = True
        _paint(image, mask, rng)
        if not crowd_member:
            annotations.append(_annotation(mask, label, crowd=False))
        return label, mask

    short = min(height, width)
    for index in range(count):
        for _ in range(30):
            radius = rng.uniform(0.06, 0.18) * short
            if at_edge and index == 0:
                # Centred on the right or bottom edge: cut by it.
                if rng.random() < 0.5:
                    center = (width - rng.uniform(0, radius * 0.5),
                              rng.uniform(radius, height - radius))
                else:
                    center = (rng.uniform(radius, width - radius),
                              height - rng.uniform(0, radius * 0.5))
            else:
                center = (rng.uniform(radius, width - radius),
                          rng.uniform(radius, height - radius))
            if place(radius, center) is not None:
                break
    for _ in range(tiny):
        for _ in range(30):
            radius = rng.uniform(2.0, 3.5)
            center = tuple(rng.uniform(8, [width - 8, height - 8]))
            if place(radius, center) is not None:
                break
    if crowd:
        # Small shapes close together, annotated as one crowd region.
        radius = 0.2 * short
        cx, cy = rng.uniform(radius, [width - radius, height - radius])
        group = np.zeros((height, width), np.uint8)
        labels = []
        for _ in range(8):
            member = place(
                rng.uniform(0.02, 0.035) * short,
                (cx + rng.uniform(-radius, radius) * 0.8,
                 cy + rng.uniform(-radius, radius) * 0.8),
                crowd_member=True)
            if member is not None:
                labels.append(member[0])
                group |= member[1]
        if labels:
            label = max(set(labels), key=labels.count)
            annotations.append(_annotation(group, label, crowd=True))
    return np.clip(image, 0, 255).astype(np.uint8), annotations


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an EXIF APP1 segment holding only an Orientation tag,
    right after the start-of-image marker."""
    if jpeg[:2] != b'\xff\xd8':
        raise ValueError('not a JPEG: no start-of-image marker')
    # Big-endian TIFF header, one IFD with one SHORT entry, no next IFD.
    tiff = b'MM\x00*' + struct.pack('>I', 8) + struct.pack('>H', 1) + \
        struct.pack('>HHIHH', 0x0112, 3, 1, orientation, 0) + \
        struct.pack('>I', 0)
    payload = b'Exif\x00\x00' + tiff
    segment = b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def _write_jpeg(path: str, image: np.ndarray, orientation: int = 0) -> None:
    ok, data = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError(f'cannot encode {path}')
    data = data.tobytes()
    if orientation:
        data = with_exif_orientation(data, orientation)
    with open(path, 'wb') as f:
        f.write(data)


def generate(root: str, num_images: int = 16, seed: int = 0) -> int:
    """Write the dataset under ``root``; return the image count.

    The images, in order: the six :data:`COCO_SIZES`, then sizes drawn as
    COCO's. Image 1 has no objects, image 2 a crowd region, image 3 is
    grayscale, image 4 is stored rotated with an EXIF orientation, every
    third image has tiny objects, and every other one an object cut by its
    right or bottom edge. A root that already holds a dataset made with
    the same arguments is left as it is.
    """
    if not isinstance(num_images, int) or num_images < 6:
        raise ValueError(f'num_images must be an int of at least 6 (the '
                         f'special cases), got {num_images!r}')
    settings = dict(num_images=num_images, seed=seed, classes=CLASSES)
    stamp = osp.join(root, 'settings.json')
    if osp.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == json.loads(json.dumps(settings)):
                return num_images
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        height, width = COCO_SIZES[index] if index < len(COCO_SIZES) \
            else draw_size(rng)
        count = 0 if index == 1 else int(rng.integers(1, 5))
        image, instances = make_image(
            rng,
            height,
            width,
            count,
            at_edge=index % 2 == 0,
            tiny=2 if index % 3 == 0 and index != 1 else 0,
            crowd=index == 2)
        file_name = f'{index:05d}.jpg'
        path = osp.join(root, 'images', file_name)
        if index == 3:
            _write_jpeg(path, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        elif index == 4:
            _write_jpeg(path, cv2.rotate(image,
                                         cv2.ROTATE_90_COUNTERCLOCKWISE),
                        EXIF_ROTATE_CW)
        else:
            _write_jpeg(path, image)
        image_id = index + 1
        images.append(
            dict(id=image_id, file_name=file_name, height=height,
                 width=width))
        for instance in instances:
            annotations.append(
                dict(instance, id=len(annotations) + 1, image_id=image_id))
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    with open(osp.join(root, 'annotations', 'instances.json'), 'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations,
                categories=categories), f)
    with open(stamp, 'w') as f:
        json.dump(settings, f)
    return num_images
