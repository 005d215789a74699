"""What a user would pick instead of an autoencoder, under the same protocol.

Classical denoisers (scikit-image and the ``bm3d`` package) and a PCA projection. Each works on
(N, C, H, W) arrays in [0, 1] at the working resolution, on exactly the noisy images the model sees.
Settings, documented and fair to the baselines:

    blur      Gaussian blur (skimage.filters.gaussian); sigma picked from BLUR_SIGMAS on training images
    tv        total variation, Chambolle (denoise_tv_chambolle); weight picked from TV_WEIGHTS likewise
    wavelet   BayesShrink soft thresholding (denoise_wavelet, rescale_sigma); no setting to pick
    nlmeans   non-local means (denoise_nl_means, fast mode, 5x5 patches, distance 6), sigma estimated
              per image (estimate_sigma), h = factor x sigma with the factor picked from NLM_FACTORS
    bm3d      BM3D (bm3d.bm3d, per channel) given the true noise level, measured on the training
              split as the std of (noisy - clean): an oracle setting, in BM3D's favour
    pca       PCA fitted on the clean training images, as many components as the model's code
              (at most N_train - 1); the noisy image is projected and reconstructed, then clipped

"Picked on training images" means: the setting with the best mean PSNR on up to 16 noisy training
images (the same corruption, seeded) is used on the test images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import AekitError

BLUR_SIGMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
TV_WEIGHTS = (0.02, 0.05, 0.08, 0.12, 0.18, 0.25)
NLM_FACTORS = (0.4, 0.6, 0.8, 1.0, 1.2)
ALL = ("blur", "tv", "wavelet", "nlmeans", "bm3d", "pca")
TUNE_IMAGES = 16


@dataclass
class Baseline:
    name: str
    setting: str
    denoise: Callable[[np.ndarray], np.ndarray]  # (N, C, H, W) -> (N, C, H, W), values in [0, 1]


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


def _pick(name: str, make: Callable[[float], Callable], grid, tune_noisy, tune_clean, fmt: str) -> Baseline:
    scores = [(_psnr(make(v)(tune_noisy), tune_clean), v) for v in grid]
    best = max(scores)[1]
    return Baseline(name, fmt.format(best), make(best))


def build_baselines(
    names: tuple[str, ...],
    *,
    train_clean: np.ndarray,
    train_noisy: np.ndarray,
    code_length: int,
) -> list[Baseline]:
    """Set up each named baseline, picking its setting on the training images (see the module doc)."""
    unknown = [n for n in names if n not in ALL]
    if unknown:
        raise AekitError(f"--baselines: unknown baseline {unknown[0]!r} (known: {', '.join(ALL)})")
    try:
        from skimage.filters import gaussian
        from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet, estimate_sigma
    except ImportError:
        raise AekitError("the classical baselines need scikit-image: pip install 'aekit[baselines]'") from None

    tn, tc = train_noisy[:TUNE_IMAGES], train_clean[:TUNE_IMAGES]
    noise_sigma = float(np.std(train_noisy.astype(np.float64) - train_clean))
    out: list[Baseline] = []
    for name in names:
        if name == "blur":
            out.append(_pick(name, lambda s: _per_image(lambda im, ca: gaussian(im, sigma=s, channel_axis=ca)),
                             BLUR_SIGMAS, tn, tc, "sigma={:g}"))
        elif name == "tv":
            out.append(_pick(name, lambda w: _per_image(lambda im, ca: denoise_tv_chambolle(im, weight=w, channel_axis=ca)),
                             TV_WEIGHTS, tn, tc, "weight={:g}"))
        elif name == "wavelet":
            fn = _per_image(lambda im, ca: denoise_wavelet(im, method="BayesShrink", mode="soft",
                                                          rescale_sigma=True, channel_axis=ca))
            out.append(Baseline(name, "BayesShrink, soft, sigma estimated", fn))
        elif name == "nlmeans":
            def nlm(k):
                def one(im, ca):
                    s = float(np.mean(estimate_sigma(im, channel_axis=ca)))
                    return denoise_nl_means(im, h=k * max(s, 1e-3), sigma=s, patch_size=5, patch_distance=6,
                                            fast_mode=True, channel_axis=ca)
                return _per_image(one)
            out.append(_pick(name, nlm, NLM_FACTORS, tn, tc, "h={:g} x estimated sigma, 5x5 patches, distance 6"))
        elif name == "bm3d":
            try:
                import bm3d
            except ImportError:
                raise AekitError("the bm3d baseline needs the bm3d package: pip install 'aekit[baselines]'") from None
            sigma = max(noise_sigma, 1e-4)

            def one(im, ca, sigma=sigma):
                if ca is None:
                    return bm3d.bm3d(im, sigma_psd=sigma)
                return np.stack([bm3d.bm3d(im[..., c], sigma_psd=sigma) for c in range(im.shape[-1])], -1)

            out.append(Baseline(name, f"sigma_psd={sigma:.4f} (true noise std, measured on training images)",
                                _per_image(one)))
        elif name == "pca":
            from sklearn.decomposition import PCA

            k = max(1, min(code_length, len(train_clean) - 1))
            flat = train_clean.reshape(len(train_clean), -1)
            pca = PCA(n_components=k, random_state=0).fit(flat)

            def project(x, pca=pca):
                y = pca.inverse_transform(pca.transform(x.reshape(len(x), -1).astype(np.float64)))
                return np.clip(y, 0, 1).reshape(x.shape).astype(x.dtype)

            out.append(Baseline(name, f"{k} components, fitted on the clean training images", project))
    return out


def run_baseline(b: Baseline, noisy: np.ndarray) -> tuple[np.ndarray, float]:
    """Denoise ``noisy`` with ``b``; returns the result and the seconds per image."""
    t0 = time.perf_counter()
    y = b.denoise(noisy)
    return y.astype(np.float32), (time.perf_counter() - t0) / max(len(noisy), 1)
