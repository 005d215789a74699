"""A scikit-learn estimator: an aekit autoencoder as a transformer, usable where PCA is.

    from sklearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression
    from aekit.sklearn import AutoencoderTransformer

    pipe = make_pipeline(AutoencoderTransformer(code_length=64, epochs=50), LogisticRegression())
    pipe.fit(faces.data, faces.target)          # faces.data: (N, 4096) in [0, 1]

``X`` holds images with values in [0, 1] (or any values with ``scale="minmax"``): (N, H*W) rows of
square grayscale images (or of ``image_shape``), (N, H, W) or (N, C, H, W). ``transform`` gives the codes, ``inverse_transform``
the images (in the input's layout), ``score`` the negative mean squared error of the reconstructions.
Constructor arguments are only stored (scikit-learn's convention); everything happens in ``fit``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .codes import cannot_decode
from .config import Config, TrainConfig, validate
from .data import map_batches
from .errors import ConfigError
from .latent import decode, encode
from .models import build_model_config, create_model, list_models, model_class
from .noise import SEEDS
from .typed import build
from .training import fit as fit_model
from .training.devices import callers_generator


_PARAMS = {"train.epochs": "epochs", "train.batch_size": "batch_size", "train.lr": "lr", "train.device": "device",
           "model.code_length": "code_length", "model.loss": "loss", "model.name": "model",
           "seed": "random_state", "train.select": "select"}  # config key -> parameter
_SET_ELSEWHERE = {"name": "is the parameter model: set it there", "code_length": "is a parameter: set it there",
                  "loss": "is a parameter: set it there", "in_channels": "comes from X's shape (or image_shape)",
                  "input_size": "comes from X's shape (or image_shape)"}  # model_params may not override these


def _parameter_error(e: ConfigError) -> ValueError:
    """A configuration error as scikit-learn raises one, naming the estimator's parameter."""
    message = re.sub(r"^model: unknown key", "model_params: unknown key", str(e))
    for key, param in _PARAMS.items():
        message = re.sub(rf"(?<![\w.]){re.escape(key)}\b", param, message)
    return ValueError(message)


def _fitting_size(config):
    """``config`` at the smallest input size at or above its own (by area, at most 32 more pixels a side)
    that its architecture takes (conv and vae: sides divisible by their strides); itself when it takes its
    own size or none is found (fit then names the rule)."""
    if config.check() is None:
        return config
    h, w = config.input_size
    sizes = sorted(((h + dh, w + dw) for dh in range(33) for dw in range(33)), key=lambda s: (s[0] * s[1], s))
    return next((c for c in (dataclasses.replace(config, input_size=s) for s in sizes) if c.check() is None), config)


class AutoencoderTransformer(TransformerMixin, BaseEstimator):
    """An aekit autoencoder as a scikit-learn transformer: images -> codes -> images.

    Parameters
    ----------
    model : registered architecture name (``aekit.list_models()``); the default, ``hybrid``, starts at PCA and
        works at any image size; ``fcn`` and ``unet`` cannot decode codes (their decoders also read the
        encoder's features), so they have no ``inverse_transform``.
    code_length : length of the code (``n_components`` of PCA); None: the model's own default (hybrid 64,
        conv 256, vae 16; unet's is its code channels, 192).
    image_shape : (H, W) or (C, H, W) of one image when ``X`` is flat; None: a square grayscale image
        (rows whose length is not a square are padded with zeros into the smallest square, with a
        warning, and cropped back by inverse_transform); with (N, H, W) or (N, C, H, W) X it must match X's images, or be None.
        Models with strides (conv, vae) get images padded with zeros (below, right) to the nearest size
        the strides divide (``model_size_``), cropped back in every output.
    epochs, batch_size, lr : training (Adam); ``epochs`` is the most it may take when ``select``.
    select : model selection: a seeded tenth of X is held out, the start and every epoch are scored on it,
        the best weights are kept and training stops when it stops improving (``train.select``); a model
        that starts from the data (``hybrid``) also decides there whether to train with left-right flips
        (its start with the mirror images against the start without them).
    loss : l2, mse, bce or psnr (the model's reconstruction loss); None: the model's default.
    scale : "none": X must lie in [0, 1] (a ValueError otherwise); "minmax": X's minimum and maximum
        seen in ``fit`` map to 0 and 1 (later values outside are clipped), and back in inverse_transform.
    model_params : further architecture fields (e.g. ``{"decoder_strides": [2, 2, 1]}``); not those set
        otherwise (``name``, ``code_length``, ``loss``: the parameters; ``in_channels``, ``input_size``: X's shape).
    device : torch device for training and inference.
    random_state : seed of the initialisation, shuffling and validation split (an int; None or a ``RandomState``
        draw one); ``fit`` leaves torch's global generator as it was. Impossible parameters, or parameters of
        the wrong type, raise a ValueError naming the parameter when ``fit`` starts.
    """

    def __init__(self, model="hybrid", code_length=None, image_shape=None, epochs=300, batch_size=50, lr=1e-3,
                 loss=None, select=True, scale="none", model_params=None, device="cpu", random_state=0):
        self.model = model
        self.code_length = code_length
        self.image_shape = image_shape
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.loss = loss
        self.select = select
        self.scale = scale
        self.model_params = model_params
        self.device = device
        self.random_state = random_state

    # -- shapes ---------------------------------------------------------------------------------
    def _images(self, X, *, reset: bool) -> torch.Tensor:
        """X -> (N, C, H, W) float32 tensor; checks the shape and the [0, 1] range."""
        X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X
        shape = np.shape(X) if isinstance(X, (np.ndarray, list, tuple)) else None
        if shape is not None and len(shape) > 2:  # (N, H, W) or (N, C, H, W): checked as rows, then reshaped
            x = validate_data(self, np.reshape(X, (shape[0], -1)), reset=reset, dtype=np.float32).reshape(shape)
            if not reset and (1, *shape[1:])[-3:] != tuple(self.image_shape_):
                raise ValueError(f"X holds images of shape {shape[1:]}, but {self.image_shape_} were fitted")
        else:
            x = validate_data(self, X, reset=reset, dtype=np.float32)
        if reset:
            if self.scale not in ("none", "minmax"):
                raise ValueError(f"scale must be 'none' or 'minmax', got {self.scale!r}")
            lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
            self.data_range_ = (0.0, 1.0) if self.scale == "none" else (lo, hi if hi > lo else lo + 1.0)
        lo, hi = self.data_range_
        if self.scale == "minmax":
            x = np.clip((x - lo) / (hi - lo), 0, 1).astype(np.float32)
        elif x.size and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"X must hold images with values in [0, 1], got [{x.min():.3g}, {x.max():.3g}] (or scale='minmax')"
            )
        if reset:
            self.input_ndim_ = x.ndim
            self.image_shape_ = self._infer_shape(x)
        n = x.shape[0]
        if x.ndim == 2 and x.shape[1] != math.prod(self.image_shape_):  # rows padded with zeros to a square
            x = np.pad(x, ((0, 0), (0, math.prod(self.image_shape_) - x.shape[1])))
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32).reshape(n, *self.image_shape_))

    def _infer_shape(self, x: np.ndarray) -> tuple[int, int, int]:
        given = None
        if self.image_shape is not None:
            ok = isinstance(self.image_shape, (tuple, list)) and len(self.image_shape) in (2, 3)
            if not ok or not all(isinstance(v, numbers.Integral) and v >= 1 for v in self.image_shape):
                raise ValueError(f"image_shape must be (H, W) or (C, H, W) of positive integers, got {self.image_shape!r}")
            given = tuple(int(v) for v in self.image_shape)
            given = (1, *given) if len(given) == 2 else given
        if x.ndim in (3, 4):
            shape = tuple(x.shape[1:]) if x.ndim == 4 else (1, *x.shape[1:])
            if shape[0] not in (1, 3):
                last = "; channels last? X.transpose(0, 3, 1, 2) puts them first" if shape[-1] in (1, 3) else ""
                raise ValueError(f"X of shape {x.shape}: 4-d images must be (N, C, H, W) with C 1 or 3{last}")
            if given is not None and given != shape:
                raise ValueError(f"image_shape {self.image_shape} does not match X's images of shape {x.shape[1:]} "
                                 "(image_shape is for rows of flat images; leave it None)")
            return shape
        if x.ndim != 2:
            raise ValueError(f"X must be 2-, 3- or 4-dimensional, got {x.ndim} dimensions")
        m = x.shape[1]
        if given is not None:
            if len(given) != 3 or math.prod(given) != m:
                raise ValueError(f"image_shape {self.image_shape} does not match the {m} features of X")
            return given
        side = math.isqrt(m - 1) + 1 if m else 0  # the smallest square holding m values
        if side * side != m:
            warnings.warn(f"X's rows of {m} values are not square images: fitted as {side}x{side} images, padded with "
                          f"{side * side - m} zeros; give image_shape=(H, W) for their true shape", UserWarning)
        return (1, side, side)

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        """Images padded with zeros (below, right) to the size the model takes (``model_size_``)."""
        (h, w), (mh, mw) = x.shape[-2:], self.model_size_
        return x if (mh, mw) == (h, w) else torch.nn.functional.pad(x, (0, mw - w, 0, mh - h))

    def _out_layout(self, x: torch.Tensor) -> np.ndarray:
        lo, hi = self.data_range_
        _, h, w = self.image_shape_
        y = x[..., :h, :w].numpy() * (hi - lo) + lo
        if self.input_ndim_ == 2:
            return y.reshape(len(y), -1)[:, : self.n_features_in_]
        if self.input_ndim_ == 3:
            return y[:, 0]
        return y

    # -- the estimator --------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Train a new model on the images X; y is ignored."""
        x = self._images(X, reset=True)
        c, h, w = self.image_shape_
        rs = self.random_state  # an int is the seed itself; None or a RandomState draw one (scikit-learn's way)
        seed = int(rs) if isinstance(rs, numbers.Integral) else int(check_random_state(rs).randint(SEEDS - 1))
        taken = sorted(set(self.model_params or {}) & _SET_ELSEWHERE.keys())
        if taken:
            raise ValueError(f"model_params: {taken[0]!r} {_SET_ELSEWHERE[taken[0]]}")
        try:  # the CLI's checks, each error naming the parameter (a ValueError, as scikit-learn's own)
            given = {"code_length": self.code_length, "loss": self.loss}
            model_config = _fitting_size(build_model_config({"name": self.model, "in_channels": c, "input_size": (h, w),
                                                             **{k: v for k, v in given.items() if v is not None},
                                                             **(self.model_params or {})}, where="model"))
            self.model_size_ = tuple(model_config.input_size)
            config = build(TrainConfig, {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                                         "select": self.select, "device": self.device, "eval_every": 0,
                                         "checkpoint_seconds": 0}, "train")  # types checked: epochs=2.0 named
            validate(Config(seed=seed, model=model_config, train=config), where=type(self).__name__)
            with callers_generator():  # the caller's global generator is left as it was
                torch.manual_seed(seed)
                self.model_ = create_model(model_config)
                self.history_ = fit_model(self.model_, self._padded(x), config, seed=seed, progress=False,
                                          log=lambda s: None)
        except ConfigError as e:
            raise _parameter_error(e) from None
        self.model_.eval()
        self.n_features_out_ = self.model_.code_size(*self.model_size_)
        return self

    @torch.no_grad()
    def transform(self, X):
        """The codes of X, (N, code length)."""
        check_is_fitted(self)
        return encode(self.model_, self._padded(self._images(X, reset=False)))

    def _decodes_codes(self) -> bool:
        """Whether ``inverse_transform`` exists: the model decodes a code on its own."""
        try:
            decodes = model_class(self.model).decodes_codes
        except ConfigError:
            return True  # fit names the unknown model
        if not decodes:
            those = ", ".join(n for n in list_models() if model_class(n).decodes_codes)
            raise AttributeError(f"{cannot_decode(self.model)}: it has no inverse_transform; {those} have one")
        return True

    @available_if(_decodes_codes)
    @torch.no_grad()
    def inverse_transform(self, X):
        """Images decoded from codes X, in the layout of the training input."""
        check_is_fitted(self)
        codes = check_array(X, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.n_features_out_:
            raise ValueError(f"X must be codes of shape (N, {self.n_features_out_}), got {codes.shape}")
        return self._out_layout(decode(self.model_, codes))

    @torch.no_grad()
    def score(self, X, y=None):
        """Negative mean squared error of the reconstructions, per value and in X's units (higher is
        better): scikit-learn's ``neg_mean_squared_error`` of ``inverse_transform(transform(X))``, so a
        grid search can compare models, losses and code lengths on one scale."""
        check_is_fitted(self)
        x = self._images(X, reset=False)
        recon = self._out_layout(map_batches(lambda b: self.model_(b).recon.float(), self._padded(x),
                                             next(self.model_.parameters()).device))
        target = np.asarray(X, dtype=np.float64)  # X itself: values outside fit's range are not clipped here
        target = target.reshape(recon.shape) if target.size == recon.size else self._out_layout(x)
        return -float(np.mean(np.square(recon - target)))

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self)
        return np.asarray([f"code{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = self.scale == "none"
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
