"""Fixtures shared by the test files. Importable code is in helpers.py."""
import pytest
from helpers import SHAPES

from fasternet_mm import coco_like
from fasternet_mm.shapes import generate

# Dataset roots by their arguments, for the whole test run: the fixtures
# below are module-scoped, so the cache lives here.
_ROOTS = {}


@pytest.fixture(scope='module')
def make_shapes(tmp_path_factory):
    """``make_shapes(num_train, num_val, size, seed)``: the root of the
    shapes dataset made with these arguments, generated once per test run
    and shared by every test that asks for the same ones. A test that
    changes the data works on a copy (``shutil.copytree``)."""

    def make(num_train, num_val, size, seed):
        key = (num_train, num_val, size, seed)
        if key not in _ROOTS:
            root = tmp_path_factory.mktemp(
                'shapes_{}_{}_{}_seed{}'.format(*key))
            generate(
                str(root),
                num_train=num_train,
                num_val=num_val,
                size=size,
                seed=seed)
            _ROOTS[key] = root
        return _ROOTS[key]

    return make


@pytest.fixture(scope='module')
def shapes(make_shapes):
    """The demo runs' dataset (helpers.py's ``SHAPES``)."""
    return make_shapes(**SHAPES)


@pytest.fixture(scope='module')
def small_shapes(make_shapes):
    """Two 64x64 training images and one to evaluate: for runs that only
    have to start."""
    return make_shapes(num_train=2, num_val=1, size=64, seed=0)


@pytest.fixture(scope='module')
def coco_like_images(tmp_path_factory):
    """The root of :mod:`fasternet_mm.coco_like`'s dataset of ten images:
    COCO's sizes, empty images, objects cut by the edges, a crowd region,
    a grayscale and an EXIF-rotated JPEG, tiny objects. Generated once per
    test run."""
    key = 'coco_like'
    if key not in _ROOTS:
        root = tmp_path_factory.mktemp('coco_like')
        coco_like.generate(str(root), num_images=10, seed=0)
        _ROOTS[key] = root
    return _ROOTS[key]
