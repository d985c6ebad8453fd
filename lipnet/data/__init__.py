"""Datasets and image input for lipnet: MNIST (IDX files), a CelebA subset, user images.

Everything here is plain numpy / torch / Pillow so that training scripts, tests
and the dashboard share one loader. The submodules each have one job:
:mod:`~lipnet.data.paths` (data and cache directories), :mod:`~lipnet.data.mnist`,
:mod:`~lipnet.data.celeba` (with :mod:`~lipnet.data.celeba_labels` and
:mod:`~lipnet.data.celeba_split_rule`) and :mod:`~lipnet.data.images` (user
uploads, with :mod:`~lipnet.data.image_guards`, :mod:`~lipnet.data.image_prep`
and :mod:`~lipnet.data.sample_images`).
"""

from __future__ import annotations

from .celeba import (
    CELEBA_ATTRIBUTE_COUNT,
    SPLIT_RULE,
    SPLITS,
    celeba_examples,
    celeba_split,
    describe_split,
    load_celeba,
    read_celeba_attributes,
)
from .images import (
    ALLOWED_FORMATS,
    MAX_BYTES,
    MAX_PIXELS,
    ImageError,
    grace_hopper,
    grace_hopper_face,
    image_to_tensor,
    load_image,
    load_photo,
    rendered_digit,
    tensor_to_image,
)
from .mnist import (
    MNIST_FILES,
    MNIST_MIRRORS,
    DownloadError,
    download_mnist,
    load_mnist,
    mnist_binary,
    read_idx,
)
from .paths import PathLike as PathLike  # type alias, not in __all__ (as before)
from .paths import cache_dir, data_dir

__all__ = [
    "ALLOWED_FORMATS",
    "CELEBA_ATTRIBUTE_COUNT",
    "MAX_BYTES",
    "MAX_PIXELS",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "SPLITS",
    "SPLIT_RULE",
    "DownloadError",
    "ImageError",
    "cache_dir",
    "celeba_examples",
    "celeba_split",
    "data_dir",
    "describe_split",
    "download_mnist",
    "grace_hopper",
    "grace_hopper_face",
    "image_to_tensor",
    "load_celeba",
    "load_image",
    "load_mnist",
    "load_photo",
    "mnist_binary",
    "read_celeba_attributes",
    "read_idx",
    "rendered_digit",
    "tensor_to_image",
]
