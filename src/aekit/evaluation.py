"""``aekit evaluate``: a trained run on held-out images, beside the baselines, under one protocol.

Every method sees exactly the same images: the held-out split's clean images at the working size,
and (with noise) the same corrupted copies, drawn once from a seeded generator at the data's native
resolution and resized like the model's input. Results go to ``evaluation.json`` and a grid
``evaluation.png`` (clean | noisy | aekit | best baseline) in the run folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import Config, load_config, replace
from .data import fit_images, split_indices, take
from .errors import AekitError
from .inference import FlipEnsemble
from .io import load, write_json
from .metrics import image_metrics
from .noise import NoiseConfig, make_corruption
from .report import image_grid, save_png

BASELINE_TRAIN_IMAGES = 2000  # training images the baselines may use (PCA's fit, picking settings)


def _scores(x: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    return image_metrics(x, clean)


@torch.no_grad()
def evaluate_run(
    run: str | Path,
    *,
    noise: NoiseConfig | None = None,
    split: str | None = None,
    test_fraction: float | None = None,
    baselines: tuple[str, ...] = (),
    limit: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    write: bool = True,
    flip_ensemble: bool = False,
) -> dict[str, Any]:
    """Evaluate the model of ``run`` on its held-out images; returns (and writes) the results.
    With ``flip_ensemble`` the model's output averages its passes on each image and its mirror image."""
    from .baselines import build_baselines, run_baseline
    from .run import prepare_data

    run = Path(run)
    cfg_path = run / "config.toml"
    if not cfg_path.is_file():
        raise AekitError(f"{run}: no config.toml (not an aekit run folder)")
    trained = load_config(cfg_path)
    model = load(run, device=device)
    name = f"aekit ({model.config.name}{', flip ensemble' if flip_ensemble else ''})"
    if flip_ensemble:
        model = FlipEnsemble(model)
    noise = trained.noise if noise is None else noise

    # the evaluation split; a run trained on everything is evaluated on the default split, and we say
    # how many of those images it saw in training
    ev: Config = replace(
        trained,
        **{"data.split": split, "data.test_fraction": test_fraction},
    )
    if ev.data.split == "random" and ev.data.test_fraction == 0:
        ev = replace(ev, **{"data.test_fraction": 0.2})
    prepared = prepare_data(ev)
    trained_on, _ = split_indices(prepared.data, split=trained.data.split, test_fraction=trained.data.test_fraction)
    test_index = prepared.test_index[: limit or None]
    if not test_index:
        raise AekitError(f"{run}: the {ev.data.split} split leaves no held-out images")
    seen = len(set(test_index) & set(int(i) for i in trained_on))

    size = prepared.size

    def fitted(x: torch.Tensor) -> torch.Tensor:
        return fit_images(x, size, ev.data.fit, ev.data.resize)

    test_native = take(prepared.data.images, test_index)
    train_native = take(prepared.data.images, prepared.train_index[:BASELINE_TRAIN_IMAGES])
    clean = fitted(test_native)
    corrupt = make_corruption(noise)
    gen = torch.Generator().manual_seed(seed)
    if corrupt is not None:
        noisy = fitted(corrupt(test_native, gen))
        train_noisy = fitted(corrupt(train_native, gen))
    else:
        noisy, train_noisy = clean, fitted(train_native)
    train_clean = fitted(train_native)

    results = []
    if corrupt is not None:
        results.append({"method": "noisy input", "setting": noise.spec(), **_scores(noisy, clean),
                        "seconds_per_image": 0.0})
    dev = next(model.parameters()).device
    t0 = time.perf_counter()
    recon = torch.cat([model(noisy[i : i + 256].to(dev)).recon.float().cpu() for i in range(0, len(noisy), 256)])
    results.append({"method": name, "setting": str(run),
                    **_scores(recon, clean), "seconds_per_image": (time.perf_counter() - t0) / len(noisy)})

    outputs = {}
    for b in build_baselines(tuple(baselines), train_clean=train_clean.numpy(), train_noisy=train_noisy.numpy(),
                             code_length=model.config.code_length):
        y, spi = run_baseline(b, noisy.numpy())
        outputs[b.name] = torch.from_numpy(y)
        results.append({"method": b.name, "setting": b.setting, **_scores(outputs[b.name], clean),
                        "seconds_per_image": spi})

    base_rows = [r for r in results if r["method"] in outputs]
    best = max(base_rows, key=lambda r: r["psnr"])["method"] if base_rows else None
    report = {
        "run": str(run),
        "noise": noise.spec(),
        "split": ev.data.split,
        "test_fraction": ev.data.test_fraction if ev.data.split == "random" else None,
        "images": len(test_index),
        "seen_in_training": seen,
        "working_size": list(size),
        "seed": seed,
        "results": results,
        "best_baseline": best,
    }
    if write:
        rows = [clean[:10]] + ([noisy[:10]] if corrupt is not None else []) + [recon[:10]]
        if best:
            rows.append(outputs[best][:10])
        save_png(image_grid(rows), run / "evaluation.png")
        write_json(run / "evaluation.json", report)
    return report


def format_table(report: dict[str, Any]) -> str:
    """The results as an aligned text table."""
    lines = [
        f"{report['images']} held-out images ({report['split']} split), noise {report['noise']}, "
        f"working size {report['working_size'][0]}x{report['working_size'][1]}"
        + (f"; WARNING: the model saw {report['seen_in_training']} of them in training" if report["seen_in_training"] else ""),
        f"{'method':<16} {'PSNR (dB)':>9} {'SSIM':>7} {'MSE':>9} {'s/image':>8}  setting",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['method']:<16} {r['psnr']:>9.2f} {r['ssim']:>7.4f} {r['mse']:>9.5f} {r['seconds_per_image']:>8.4f}  {r['setting']}"
        )
    return "\n".join(lines)
