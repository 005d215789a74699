"""What a user would pick instead of an autoencoder, under the same protocol.

Classical denoisers (scikit-image, the ``bm3d`` package, a Wiener filter in the training images'
principal components) and a PCA projection. Each works on
(N, C, H, W) arrays in [0, 1] at the working resolution, on exactly the noisy images the model sees.
Settings, documented and fair to the baselines:

    blur      Gaussian blur (skimage.filters.gaussian); sigma picked from BLUR_SIGMAS on training images
    tv        total variation, Chambolle (denoise_tv_chambolle); weight picked from TV_WEIGHTS likewise
    wavelet   BayesShrink soft thresholding (denoise_wavelet, rescale_sigma); no setting to pick
    nlmeans   non-local means (denoise_nl_means, fast mode, 5x5 patches, distance 6), sigma estimated
              per image (estimate_sigma), h = factor x sigma with the factor picked from NLM_FACTORS
    bm3d      BM3D (bm3d.bm3d, per channel) given each image's true noise level, the std of its
              (noisy - clean): an oracle setting, in BM3D's favour (it also gets the level of blind noise)
    pca-wiener  the linear least-squares (Wiener) estimate from the clean training images' mean and
              covariance (Ledoit-Wolf shrinkage toward the identity, no setting to pick) given each image's
              true noise level, an oracle as for BM3D: "eigenfaces" denoising, PCA's best at the task
    pca       PCA fitted on the clean training images, as many components as the model's code
              (at most N_train - 1); the noisy image is projected and reconstructed, then clipped

"Picked on training images" means: the setting with the best mean PSNR on up to 16 noisy training
images (the same corruption, seeded) is used on the test images. The baselines are one table,
:data:`BASELINES`: name -> a setup function; a new baseline is one function with ``@baseline``.
scikit-image and bm3d are optional (``pip install 'aekit[baselines]'``), imported where used.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import AekitError, did_you_mean
from .progress import PROBE, in_parts

BLUR_SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
TV_WEIGHTS = (0.02, 0.05, 0.08, 0.12, 0.18, 0.25)
NLM_FACTORS = (0.4, 0.6, 0.8, 1.0, 1.2)
TUNE_IMAGES = 16
WIENER_BYTES = 2**30  # pca-wiener fits on as many training images as fit in this much float64 memory


@dataclass
class Baseline:
    name: str
    setting: str
    denoise: Callable[..., np.ndarray]  # (N, C, H, W) -> (N, C, H, W), values in [0, 1]
    oracle: bool = False  # denoise(noisy, clean) is also given the clean images (to measure the true noise level)
    batched: bool = False  # one matrix product over all the images: run at once (a row's last bits follow the batch)


@dataclass
class Setup:
    """What a baseline may look at to set itself up: training images (clean and corrupted the same
    way as the test images) and the code length of the model it stands beside."""

    train_clean: np.ndarray  # (N, C, H, W)
    train_noisy: np.ndarray  # (N, C, H, W)
    code_length: int

    @property
    def tune(self) -> tuple[np.ndarray, np.ndarray]:
        """(noisy, clean) images the settings are picked on."""
        return self.train_noisy[:TUNE_IMAGES], self.train_clean[:TUNE_IMAGES]


BASELINES: dict[str, Callable[[Setup], Baseline]] = {}


def baseline(name: str):
    """Register a baseline's setup function under ``name``."""
    def deco(fn: Callable[[Setup], Baseline]) -> Callable[[Setup], Baseline]:
        BASELINES[name] = fn
        return fn
    return deco


def _per_image(fn: Callable[..., np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Lift ``fn(image, channel_axis)`` to (N, C, H, W) batches, clipped to [0, 1].

    ``fn`` gets an (H, W) image with channel_axis None for grayscale, (H, W, C) with -1 for colour.
    """

    def run(x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        gray = x.shape[1] == 1
        for i, img in enumerate(x.astype(np.float64)):
            y = fn(img[0], None) if gray else fn(img.transpose(1, 2, 0), -1)
            y = np.clip(y, 0, 1)
            out[i] = y[None] if gray else y.transpose(2, 0, 1)
        return out

    return run


def _psnr(x: np.ndarray, y: np.ndarray) -> float:
    mse = ((x.astype(np.float64) - y) ** 2).reshape(len(x), -1).mean(1)
    return float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-12))))


def _pick(name: str, make: Callable[[float], Callable], grid, setup: Setup, fmt: str) -> Baseline:
    """The setting of ``grid`` with the best PSNR on the setup's tuning images."""
    noisy, clean = setup.tune
    best = max((_psnr(make(v)(noisy), clean), v) for v in grid)[1]
    return Baseline(name, fmt.format(best), make(best))


def _skimage():
    import skimage.filters  # present: build_baselines checked NEEDS
    import skimage.restoration
    return skimage.filters, skimage.restoration


@baseline("blur")
def _blur(setup: Setup) -> Baseline:
    filters, _ = _skimage()
    return _pick("blur", lambda s: _per_image(lambda im, ca: filters.gaussian(im, sigma=s, channel_axis=ca)),
                 BLUR_SIGMAS, setup, "sigma={:g}")


@baseline("tv")
def _tv(setup: Setup) -> Baseline:
    _, restoration = _skimage()
    return _pick("tv", lambda w: _per_image(lambda im, ca: restoration.denoise_tv_chambolle(im, weight=w,
                                                                                          channel_axis=ca)),
                 TV_WEIGHTS, setup, "weight={:g}")


@baseline("wavelet")
def _wavelet(setup: Setup) -> Baseline:
    _, restoration = _skimage()
    fn = _per_image(lambda im, ca: restoration.denoise_wavelet(im, method="BayesShrink", mode="soft",
                                                              rescale_sigma=True, channel_axis=ca))
    return Baseline("wavelet", "BayesShrink, soft, sigma estimated", fn)


@baseline("nlmeans")
def _nlmeans(setup: Setup) -> Baseline:
    _, restoration = _skimage()

    def make(k: float):
        def one(im, ca):
            s = float(np.mean(restoration.estimate_sigma(im, channel_axis=ca)))
            return restoration.denoise_nl_means(im, h=k * max(s, 1e-3), sigma=s, patch_size=5, patch_distance=6,
                                                fast_mode=True, channel_axis=ca)
        return _per_image(one)

    return _pick("nlmeans", make, NLM_FACTORS, setup, "h={:g} x estimated sigma, 5x5 patches, distance 6")


@baseline("bm3d")
def _bm3d(setup: Setup) -> Baseline:
    import bm3d  # present: build_baselines checked NEEDS

    def one(im, ca, sigma):
        if ca is None:
            return bm3d.bm3d(im, sigma_psd=sigma)
        return np.stack([bm3d.bm3d(im[..., c], sigma_psd=sigma) for c in range(im.shape[-1])], -1)

    def denoise(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        sigmas = np.maximum(_true_sigmas(noisy, clean), 1e-4)
        return np.concatenate([_per_image(lambda im, ca, s=s: one(im, ca, s))(x[None]) for x, s in zip(noisy, sigmas)])

    return Baseline("bm3d", "sigma_psd = each image's true noise std", denoise, oracle=True)


def _true_sigmas(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Each image's true noise level: the std of (noisy - clean)."""
    return (noisy.astype(np.float64) - clean).reshape(len(noisy), -1).std(1)


def _ledoit_wolf(gram: np.ndarray, features: int) -> float:
    """Ledoit and Wolf's shrinkage of a covariance toward a multiple of the identity, computed from the
    (N, N) Gram matrix of the centred images rather than the (D, D) covariance (the same quantity as
    sklearn.covariance.ledoit_wolf_shrinkage, which forms D x D blocks)."""
    n = len(gram)
    trace = float(np.trace(gram)) / n  # of the empirical covariance
    mu = trace / features
    delta_ = float((gram ** 2).sum()) / n ** 2
    beta = (float((np.diag(gram) ** 2).sum()) / n - delta_) / (features * n)
    delta = (delta_ - 2 * mu * trace + features * mu ** 2) / features
    beta = min(beta, delta)
    return 0.0 if beta == 0 else beta / delta


@baseline("pca-wiener")
def _pca_wiener(setup: Setup) -> Baseline:
    """The linear least-squares (Wiener) estimate ``m + C (C + s^2 I)^-1 (y - m)``, with m and C the clean
    training images' mean and covariance, C shrunk toward a multiple of the identity (Ledoit-Wolf) so that
    what the training images do not span is damped, not removed; worked in C's principal components."""
    features = int(np.prod(setup.train_clean.shape[1:]))
    fit = max(2, WIENER_BYTES // (8 * features))  # large images: the first of them (a seeded order), in bounded memory
    x = setup.train_clean[:fit].reshape(-1, features).astype(np.float64)
    n = len(x)
    mean = x.mean(0)
    xc = x - mean
    gram = xc @ xc.T
    shrink = _ledoit_wolf(gram, features)  # 0 for one image: no spread, and the estimate is that image
    floor = shrink * float(np.trace(gram)) / (n * features)  # the shrunk covariance's variance off the span
    lam, u = np.linalg.eigh(gram)
    keep = lam > 1e-9 * max(float(lam.max()), 1e-300)
    lam, u = lam[keep], u[:, keep]
    comps = (u.T @ xc) / np.sqrt(lam)[:, None]  # orthonormal rows: the principal directions
    var = (1 - shrink) * lam / n + floor  # the shrunk covariance's variance along each

    def denoise(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
        noise = _true_sigmas(noisy, clean)[:, None] ** 2
        r = noisy.reshape(len(noisy), -1).astype(np.float64) - mean
        c = r @ comps.T
        off = floor / np.maximum(floor + noise, 1e-300)
        y = mean + off * (r - c @ comps) + (var / (var + noise) * c) @ comps
        return np.clip(y, 0, 1).reshape(noisy.shape).astype(noisy.dtype)

    return Baseline("pca-wiener", f"{len(lam)} components, Ledoit-Wolf shrinkage {shrink:.3f}, "
                    "each image's true noise std", denoise, oracle=True, batched=True)


@baseline("pca")
def _pca(setup: Setup) -> Baseline:
    from sklearn.decomposition import PCA  # here: scikit-learn takes a second to import

    clean = setup.train_clean
    k = max(1, min(setup.code_length, len(clean) - 1))
    with np.errstate(invalid="ignore", divide="ignore"):  # one training image: no variance to explain, only a mean
        pca = PCA(n_components=k, random_state=0).fit(clean.reshape(len(clean), -1))

    def project(x: np.ndarray) -> np.ndarray:
        y = pca.inverse_transform(pca.transform(x.reshape(len(x), -1).astype(np.float64)))
        return np.clip(y, 0, 1).reshape(x.shape).astype(x.dtype)

    return Baseline("pca", f"{k} components, fitted on the clean training images", project, batched=True)


ALL = tuple(BASELINES)
CLASSICAL = ("blur", "tv", "wavelet", "nlmeans", "bm3d", "pca-wiener")  # the classical denoisers
# the optional modules each baseline imports (scikit-image's estimate_sigma, used by nlmeans, needs PyWavelets)
NEEDS = {"blur": ("skimage",), "tv": ("skimage",), "wavelet": ("skimage", "pywt"), "nlmeans": ("skimage", "pywt"),
         "bm3d": ("bm3d",)}
PACKAGES = {"skimage": "scikit-image", "pywt": "PyWavelets", "bm3d": "bm3d"}  # module -> what pip installs


def missing(name: str) -> list[str]:
    """The packages baseline ``name`` needs that are not installed."""
    return [PACKAGES[m] for m in NEEDS.get(name, ()) if importlib.util.find_spec(m) is None]


def installed(names: tuple[str, ...]) -> tuple[str, ...]:
    """Those of ``names`` whose optional packages are installed (``pip install 'aekit[baselines]'``)."""
    return tuple(n for n in names if not missing(n))


def rivals(denoising: bool) -> tuple[str, ...]:
    """What a user would pick instead: the classical denoisers for a denoising run, PCA with the same
    code length for a reconstruction (installed ones only)."""
    return installed(CLASSICAL) if denoising else ("pca",)


def applicable(names: tuple[str, ...] | str, *, denoising: bool) -> tuple[str, ...]:
    """The baselines to run (names, or a comma-separated string of them): "all" is every one for a denoising
    evaluation and PCA for a reconstruction (a denoiser handed clean images returns them: no rival to a code);
    a denoiser named for a reconstruction is an error."""
    if names == "all":
        return ALL if denoising else rivals(denoising=False)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    clean_only = [n for n in names if n in CLASSICAL]
    if clean_only and not denoising:
        raise AekitError(f"baselines: {clean_only[0]} is a denoiser, and this evaluation corrupts nothing (a "
                         "reconstruction): compare with pca, or give noise, e.g. gaussian:0.2",
                         keys=("baselines", "noise"))
    return tuple(names)


def build_baselines(names: tuple[str, ...], *, train_clean: np.ndarray, train_noisy: np.ndarray,
                    code_length: int) -> list[Baseline]:
    """Set up each named baseline, picking its setting on the training images (see the module doc)."""
    for n in names:
        if n not in BASELINES:
            raise AekitError(f"baselines: unknown baseline {n!r}{did_you_mean(n, BASELINES)} "
                             f"(known: {', '.join(BASELINES)})", keys="baselines")
        if lacking := missing(n):
            raise AekitError(f"baselines: {n} needs {' and '.join(lacking)}: pip install {' '.join(lacking)}",
                             keys="baselines")
    setup = Setup(train_clean, train_noisy, code_length)
    return [BASELINES[n](setup) for n in names]


def run_baseline(b: Baseline, noisy: np.ndarray, clean: np.ndarray | None = None, *, moving=None,
                 slow: Callable[[float], None] | None = None) -> tuple[np.ndarray, float]:
    """Denoise ``noisy`` with ``b`` (an oracle baseline also sees ``clean``) a part at a time, the bar ``moving``
    moved by each, ``slow(seconds_per_image)`` called when the first images say it takes long (:func:`in_parts`);
    the result and the seconds per image."""
    out = np.empty(noisy.shape, np.float32)

    def work(start: int, stop: int) -> None:
        x = noisy[start:stop]
        out[start:stop] = b.denoise(x, clean[start:stop]) if b.oracle else b.denoise(x)

    spi = in_parts(work, len(noisy), moving=moving, slow=slow, first=len(noisy) if b.batched else PROBE)
    return out, spi
