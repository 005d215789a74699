"""The Olivetti faces: scikit-learn's ``fetch_olivetti_faces``, wrapped, cached and offline-friendly.

400 grayscale faces of 64 x 64, 40 people x 10 images, values in [0, 1], in the order scikit-learn
gives for ``shuffle=True, random_state=seed`` (seed 1000 is the reference's). It works offline from
scikit-learn's cache (``$SCIKIT_LEARN_DATA`` or ``data_home``); without a cache scikit-learn downloads it.
The cache is a pickle (joblib's): it is read as plain arrays only (:func:`_arrays_only`), since a run folder from
elsewhere may name a ``data_home`` of its own, holding a planted cache that would otherwise run code as it loads.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..files import user_path
from .container import ImageData

OLIVETTI_FILE = "olivetti_py3.pkz"


def load_olivetti(*, seed: int = 1000, data_home: str | None = None) -> ImageData:
    """The Olivetti faces, (400, 1, 64, 64), in scikit-learn's order for ``random_state=seed``;
    labels are the people (0-39)."""
    images, labels = _fetch_olivetti(seed, data_home)
    return ImageData(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=labels.copy(),
        names=[f"olivetti-{i:03d}" for i in range(len(images))],
        source="olivetti",
        symmetric=True,  # aligned frontal faces: a mirror image is another plausible face
    )


@lru_cache(maxsize=4)
def _fetch_olivetti(seed: int, data_home: str | None) -> tuple[np.ndarray, np.ndarray]:
    wanted = Path(user_path(data_home or os.environ.get("SCIKIT_LEARN_DATA") or "~/scikit_learn_data"))
    created = [p for p in (wanted, *wanted.parents) if not p.exists()]  # deepest first; scikit-learn makes them
    from sklearn.datasets import fetch_olivetti_faces, get_data_home  # here: scikit-learn takes a second to import
    home = get_data_home(data_home)  # honours $SCIKIT_LEARN_DATA when data_home is None
    cached = Path(home) / OLIVETTI_FILE
    try:
        # scikit-learn prints "downloading ..." and warns before each retry of a download: aekit's error says it
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _arrays_only():
            warnings.simplefilter("ignore")
            faces = fetch_olivetti_faces(data_home=data_home, shuffle=True, random_state=seed,
                                         download_if_missing=True)
    except _NotArrays as e:
        raise DataError(f"olivetti: {cached}: not the cache scikit-learn writes ({e}: loading it could run code); "
                        f"delete it, and scikit-learn downloads the faces again, or point SCIKIT_LEARN_DATA or "
                        f"data.data_home at a folder holding {OLIVETTI_FILE}", keys="data.data_home") from None
    except Exception as e:  # no cache and no network, or a corrupt cache
        for folder in created:  # a mistyped data_home is not left behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        where = f"{cached} exists but could not be read" if cached.exists() else f"{cached} is missing"
        raise DataError(
            f"olivetti: {where} and downloading it failed ({type(e).__name__}: {e}); "
            f"point SCIKIT_LEARN_DATA or data.data_home at a folder holding {OLIVETTI_FILE}, "
            "or connect to the internet so scikit-learn can download it", keys="data.data_home",
        ) from None
    return faces.images.astype(np.float32), faces.target.astype(np.int64)


class _NotArrays(pickle.UnpicklingError):
    """A pickle holding something other than plain arrays."""


_ARRAYS = {("numpy", "ndarray"), ("numpy", "dtype"), ("joblib.numpy_pickle", "NumpyArrayWrapper")}  # the cache's


@contextlib.contextmanager
def _arrays_only():
    """Within the block, joblib's unpicklers (scikit-learn's cache reader) build plain arrays and nothing else: any
    other class or function named in the pickle, or an array of Python objects (which joblib unpickles unchecked),
    is :class:`_NotArrays`."""
    from joblib import numpy_pickle, numpy_pickle_compat  # scikit-learn's own reader (imported with it, on use)

    class PlainArray(numpy_pickle.NumpyArrayWrapper):
        def read(self, *args, **kwargs):
            if self.dtype.hasobject:
                raise _NotArrays("an array of Python objects")
            return super().read(*args, **kwargs)

    def find_class(self, module: str, name: str):
        if (module, name) not in _ARRAYS:
            raise _NotArrays(f"it names {module}.{name}")
        return PlainArray if name == "NumpyArrayWrapper" else original[type(self)](self, module, name)

    readers = (numpy_pickle.NumpyUnpickler, numpy_pickle_compat.ZipNumpyUnpickler)
    original = {cls: cls.find_class for cls in readers}
    for cls in readers:
        cls.find_class = find_class
    try:
        yield
    finally:
        for cls in readers:
            cls.find_class = original[cls]

