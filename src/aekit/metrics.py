"""Image-quality metrics on (N, C, H, W) tensors in [0, 1]: MSE, PSNR and SSIM, per image.

SSIM follows ``skimage.metrics.structural_similarity(data_range=1)`` exactly: a 7 x 7 uniform
window, K1 = 0.01, K2 = 0.03, sample covariance, the mean over the region that excludes the
3-pixel border, and the mean over channels (tests compare with scikit-image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image, shape (N,)."""
    return (x.double() - y.double()).flatten(1).square().mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """PSNR in dB of each image (peak 1), shape (N,); identical images give +inf."""
    return 10.0 * torch.log10(peak**2 / mse(x, y))


SSIM_WINDOW = 7  # scikit-image's default window side


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = SSIM_WINDOW) -> torch.Tensor:
    """SSIM of each image, shape (N,), as scikit-image computes it (mean over channels)."""
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}x{win_size}, got {tuple(x.shape[-2:])}")
    n, c = x.shape[:2]
    x = x.double().reshape(n * c, 1, *x.shape[-2:])
    y = y.double().reshape(n * c, 1, *y.shape[-2:])
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    cov_norm = win_size**2 / (win_size**2 - 1)

    def mean(t: torch.Tensor) -> torch.Tensor:  # valid 7x7 box filter = scikit-image's cropped region
        return F.avg_pool2d(t, win_size, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).reshape(n, c).mean(1)


SMALL_ACTIVATION = 0.1  # a code value with |value| below this counts as "off" in code_small (sparsity)
COLLAPSE_STD = 1e-4  # mean per-unit std of the code across a batch below which the code has collapsed
COLLAPSED_RECONSTRUCTIONS = 0.05  # reconstructions varying less than this fraction of the images: one image for all
# (measured on the reference model: collapsed runs fall below 4e-6 by epoch 5, runs that recover stay above 8e-4)


COLLAPSE_FROM_EPOCH = 5  # a code may start narrow: the collapse is called from this epoch on


def collapsed(epoch: int, code_std: float) -> bool:
    """Whether an epoch's code spread says the code has collapsed (the training warning's and the report's rule)."""
    return epoch >= COLLAPSE_FROM_EPOCH and code_std < COLLAPSE_STD


def collapse_warning(epoch: int, code_std: float) -> str:
    return (f"the code has collapsed (epoch {epoch}: every image gets almost the same code, "
            f"mean per-unit spread {code_std:.1e}), so the decoder can only learn the mean image; "
            "this happens to the reference model in about 1 run in 5: try another seed, or train.data_init "
            "(calibrates the code layer on the images first)")


def code_small(code: torch.Tensor, threshold: float = SMALL_ACTIVATION) -> torch.Tensor:
    """Fraction of the code's values whose magnitude is below ``threshold`` (a sparsity measure)."""
    return (code.abs() < threshold).float().mean()


def image_metrics(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Mean MSE, PSNR (mean of per-image PSNR, dB) and SSIM of a batch of images against references."""
    return {
        "mse": float(mse(x, y).mean()),
        "psnr": float(psnr(x, y).mean()),
        "ssim": float(ssim(x, y).mean()) if min(x.shape[-2:]) >= SSIM_WINDOW else float("nan"),
    }
