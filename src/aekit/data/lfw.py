"""The faces of scikit-image's bundled LFW subset: another face collection, offline, for unseen images.

``skimage.data.lfw_subset()`` ships with scikit-image (no download): 200 grayscale crops of 25 x 25
from Labeled Faces in the Wild, the first 100 faces and the rest background. aekit's ``lfw-subset``
source is the 100 faces, values in [0, 1], in a seeded order like every source; they carry no labels
(the subset does not name the people). Needs scikit-image (``pip install 'aekit[baselines]'``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .container import ImageData

LFW_SOURCE = "lfw-subset"
LFW_FACES = 100  # the first 100 of the subset's 200 crops are faces


def load_lfw(*, seed: int = 1000) -> ImageData:
    """The 100 faces of scikit-image's LFW subset, (100, 1, 25, 25), in a seeded order (``seed``)."""
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise DataError(f"data.source {LFW_SOURCE!r}: needs scikit-image, which ships these faces "
                        "(pip install 'aekit[baselines]')", keys="data.source") from None
    faces = np.asarray(lfw_subset()[:LFW_FACES], dtype=np.float32)
    order = np.random.RandomState(seed).permutation(len(faces))  # as an array source orders its images
    return ImageData(
        images=torch.from_numpy(np.ascontiguousarray(faces[order]))[:, None],
        names=[f"lfw-{i:03d}" for i in order],
        source=LFW_SOURCE,
        symmetric=True,  # centred faces: a mirror image is another plausible face
    )
