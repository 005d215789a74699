"""``aekit evaluate``: a trained run on held-out images, beside the baselines, under one protocol.

Every method sees exactly the same images: the held-out split's clean images at the working size,
and (with noise) the same corrupted copies, drawn once from a seeded generator through the run's
input pipeline (:class:`aekit.pipeline.Pipeline`: corrupted where training corrupts, then fitted to
the working size). Results go to ``evaluation.json`` and a grid ``evaluation.png`` (clean | noisy |
aekit | best baseline) in the run folder, or to another .json file and the .png beside it.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .baselines import applicable, build_baselines, run_baseline
from .config import Config, DataConfig, replace, working_size
from .data import (absolute_source, gather, inference_batch_size, load_data, map_batches, size_problem,
                   split_indices, take)
from .errors import AekitError, DataError
from .files import write_json
from .inference import FlipEnsemble, flips_by_default, reconstruct, scale_note
from .metrics import image_metrics
from .noise import NoiseConfig, check_seed, parse_noise
from .pipeline import Pipeline, prepare_data
from .progress import bar, estimate, say
from .report.pictures import image_grid, save_png
from .run_folder import RunFolder
from .training.agreement import digest

BASELINE_TRAIN_IMAGES = 2000  # training images the baselines may use (PCA's fit, picking settings)
GRID_IMAGES = 10  # images per row of evaluation.png
SLOW_HINT = "limit N scores the first N images; baselines without {name} skips it"  # the slow note's advice


@torch.no_grad()
def evaluate_run(
    run: str | Path | RunFolder,
    *,
    data: str | Path | None = None,
    size: tuple[int, int] | None = None,
    fit: str | None = None,
    skip_bad: bool = False,
    layout: str | None = None,
    rescale: bool | None = None,
    noise: NoiseConfig | str | None = None,
    split: str | None = None,
    test_fraction: float | None = None,
    baselines: tuple[str, ...] | str = (),
    limit: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    write: bool = True,
    out: str | Path | None = None,
    flip_ensemble: bool | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    slow_hint: str = SLOW_HINT,
    prepared=None,
) -> dict[str, Any]:
    """Evaluate the model of ``run`` on its held-out images (``split``/``test_fraction``: another
    split), or on every image of ``data`` (a folder or array the run never saw: fitted to the working
    size as in training, or at its own size for a model that runs at any size: then ``size`` fits
    them to a common size, which images of different sizes need, the way ``fit`` says (default: the run's
    data.fit); ``skip_bad`` skips unreadable files; ``layout`` and ``rescale`` read an array as data.layout and
    data.rescale do in training; default: the run's), with ``noise`` (default: the run's own, added where
    the run adds it), beside ``baselines`` (names, or a string such as "blur,bm3d"; set up on the run's training images; "all": those that apply,
    every one with noise, PCA without); returns the results and writes them (unless not ``write``) to
    ``out`` (a .json file, its picture beside it as .png; default: the run folder's evaluation.json). With ``flip_ensemble`` the
    model's output averages its passes on each image and its mirror; by default (None) it does where the
    images are corrupted (a denoising evaluation) and the run trained with flips (:func:`flips_by_default`).
    ``progress``: a bar over each baseline's images (None: when stderr is a terminal); a baseline whose first images
    put it past a minute says so, through ``log`` (default: print), with ``slow_hint`` (``{name}``: the baseline's).
    ``prepared``: the run's data as :func:`aekit.pipeline.prepare_data` gave its training (the end-of-run comparison,
    which holds it: a large folder is not read again)."""
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    with folder.lock(shared=True):  # refused at once while another command trains the run
        pass
    trained = folder.config()
    check_seed(seed)
    noise = parse_noise(noise) if isinstance(noise, str) else noise  # a SPEC: "gaussian:0.2"
    if limit is not None and limit < 1:
        raise AekitError(f"limit must be at least 1, got {limit}", keys="limit")
    for key, given in (("data.size", size), ("data.fit", fit), ("data.layout", layout), ("data.rescale", rescale)):
        if data is None and given is not None:
            raise AekitError(f"{key}: applies to the images of data.source (a folder or array to score); the run's own "
                             "held-out images are scored as it was trained", keys=(key, "data.source"))
    stamp = folder.weights_stamp()
    model = folder.model(device)
    noise = trained.noise if noise is None else dataclasses.replace(noise, where=trained.noise.where)
    if prepared is not None and split is None and test_fraction is None and data is None:
        ev, own = trained, prepared
    else:
        ev, own = _own_data(folder, replace(trained, **{"data.split": split, "data.test_fraction": test_fraction}),
                            scoring_other=data is not None, needed=data is None or bool(baselines))
    if data is None:
        images = _heldout(folder, trained, ev, own, limit)
    else:
        images = _other(folder, trained, ev, own, model, data, size=size, fit=fit, layout=layout, rescale=rescale,
                        skip_bad=skip_bad, limit=limit)
    pipeline = dataclasses.replace(Pipeline.for_run(images.ev, noise=noise), size=images.work)
    baselines = applicable(baselines, denoising=pipeline.corrupt is not None)
    if flip_ensemble is None:
        flip_ensemble = pipeline.corrupt is not None and flips_by_default(folder)
    name = f"aekit ({model.config.name}{', flip ensemble' if flip_ensemble else ''})"
    gen = torch.Generator().manual_seed(seed)
    noisy, clean = pipeline.view(images.test, gen)
    train_noisy = train_clean = torch.empty(0)  # the baselines' training images, read only for them
    if baselines:  # drawn after the held-out images' noise, which is the same without them
        train_noisy, train_clean = pipeline.view(gather(own.data.images, own.train_index[:BASELINE_TRAIN_IMAGES]), gen)

    results = []
    if pipeline.corrupt is not None:
        results.append({"method": "noisy input", "setting": noise.spec(), **image_metrics(noisy, clean),
                        "seconds_per_image": 0.0})
    t0 = time.perf_counter()
    recon = _model_outputs(FlipEnsemble(model) if flip_ensemble else model, noisy, any_size=model.any_size,
                           show=progress)
    results.append({"method": name, "setting": str(folder), **image_metrics(recon, clean),
                    "seconds_per_image": (time.perf_counter() - t0) / len(noisy)})
    outputs, tell = {}, say(log)
    for b in build_baselines(tuple(baselines), train_clean=train_clean.numpy(), train_noisy=train_noisy.numpy(),
                             code_length=model.config.code_length):
        def slow(pace: float, name: str = b.name) -> None:
            tell(f"note: {name} takes {estimate(pace, len(noisy))} ({slow_hint.format(name=name)})")
        with bar(len(noisy), unit="image", desc=b.name, show=progress) as moving:
            y, spi = run_baseline(b, noisy.numpy(), clean.numpy(), moving=moving, slow=slow)
        outputs[b.name] = torch.from_numpy(y)
        results.append({"method": b.name, "setting": b.setting, **image_metrics(outputs[b.name], clean),
                        "seconds_per_image": spi})

    base_rows = [r for r in results if r["method"] in outputs]
    best = max(base_rows, key=lambda r: r["psnr"])["method"] if base_rows else None
    report = {
        "run": str(folder),
        "images_from": images.where,
        "noise": noise.spec(),
        "noise_where": noise.where,
        "noise_std_at_working_size": float((noisy - clean).std()) if pipeline.corrupt is not None else 0.0,
        "split": images.ev.data.split if data is None else None,
        "test_fraction": images.ev.data.test_fraction if data is None and images.ev.data.split == "random" else None,
        "images": len(images.test),
        "seen_in_training": images.seen,
        "working_size": list(images.work),
        "seed": seed,
        "results": results,
        "model": name,  # the model's row of results
        "flip_ensemble": flip_ensemble,
        "best_baseline": best,
        "note": images.note,  # images of another scale than the model learnt (aekit.inference.scale_note)
        "skipped": images.skipped,  # unreadable files of data left out (skip_bad), as "path: reason"
    }
    if write:
        rows = [clean, *([noisy] if pipeline.corrupt is not None else []), recon, *([outputs[best]] if best else [])]
        out = folder / RunFolder.EVALUATION if out is None else Path(out)
        with folder.lock(shared=True):  # not while a training replaces the run's model, nor after it did
            if folder.weights_stamp() != stamp:
                raise AekitError(f"{folder.path}: its model changed while it was evaluated (a training replaced it); "
                                 "nothing was written: aekit evaluate it again")
            save_png(image_grid([r[:GRID_IMAGES] for r in rows]), out.with_suffix(".png"))
            write_json(out, report)
    return report


@dataclasses.dataclass
class _Scored:
    """The images an evaluation scores, and what is known of them."""

    ev: Config  # the run's config as the evaluation reads the data (its split, fit, layout ...)
    test: torch.Tensor  # at their native size; the pipeline fits them to ``work``
    work: tuple[int, int]  # the working size of the scored images
    where: str  # where they come from, in words
    seen: int | None  # how many of them the run trained on (None: unknown, the run's own data is not here)
    note: str | None = None
    skipped: list = dataclasses.field(default_factory=list)


def _own_data(folder: RunFolder, ev: Config, *, scoring_other: bool, needed: bool = True):
    """The run's own data, split for the evaluation: a run trained on everything is evaluated on the default
    split (and the report says how many of those images it trained on); (the config read, the prepared data).
    Not ``needed`` (other images scored without baselines: it only counts those the run trained on), data that is
    not there (a run moved from another machine) is None."""
    everything = ev.data.split == "random" and ev.data.test_fraction == 0
    if everything:
        ev = replace(ev, **{"data.test_fraction": DataConfig().test_fraction})

    def prepared(ev):  # not where config.toml says: an error about the run, not about --data
        try:  # its own held-out images: checked against data.json, a folder's others not decoded
            return prepare_data(ev) if scoring_other else folder.own_data(ev, "evaluate")
        except DataError as e:
            if not needed and "data.source" in e.keys:
                return None
            raise folder.data_gone(e, ev.data.source, why="the baselines are set up on it" if scoring_other else None
                                   ) from None

    try:
        return ev, prepared(ev)
    except DataError:  # too few images for that split; scoring other images needs none (the baselines get all)
        if not (everything and scoring_other):
            raise
        ev = replace(ev, **{"data.test_fraction": 0.0})
        return ev, prepared(ev)


def _heldout(folder: RunFolder, trained: Config, ev: Config, own, limit: int | None) -> _Scored:
    """The run's own held-out images (of the evaluation's split; ``own``: known to be the run's data)."""
    trained_on, _ = split_indices(own.data, split=trained.data.split, test_fraction=trained.data.test_fraction)
    test_index = own.test_index[: limit or None]
    if not test_index:
        raise AekitError(f"{folder}: the {ev.data.split} split leaves no held-out images")
    return _Scored(ev, gather(own.data.images, test_index), own.size, f"{ev.data.split} split",
                   seen=len(set(test_index) & set(int(i) for i in trained_on)))


def _other(folder: RunFolder, trained: Config, ev: Config, own, model, data, *, size, fit, layout, rescale,
           skip_bad: bool, limit: int | None) -> _Scored:
    """Every image of ``data`` (a folder or array), read as the evaluation's arguments say."""
    fixed, own_size = not model.any_size, working_size(trained) if own is None else own.size
    if size is not None and size_problem(size):
        raise AekitError(f"data.size {size_problem(size)}", keys="data.size")
    if fixed and size is not None and tuple(size) != tuple(own_size):
        raise AekitError(f"data.size {size[0]}x{size[1]}: the {model.config.name} model works at its training "
                         f"size, {own_size[0]}x{own_size[1]}, only (leave data.size out)", keys="data.size")
    if fit == "tiles" and size is None and not fixed:
        raise AekitError("data.fit tiles cuts windows of data.size: give it", keys=("data.fit", "data.size"))
    if fit is not None:  # the pipeline fits arrays the same way
        ev = replace(ev, **{"data.fit": fit})
    ev = replace(ev, **{"data.layout": layout, "data.rescale": rescale})  # None keeps the run's
    d = ev.data
    other = load_data(str(data), seed=d.order_seed, size=own_size if fixed else size, fit=d.fit, method=d.resize,
                      channels=model.config.in_channels, layout=d.layout, rescale=d.rescale, skip_bad=skip_bad)
    test = take(other.images, range(min(len(other), limit or len(other))))
    work = own_size if fixed else tuple(size or test.shape[-2:])  # arrays are fitted by the pipeline
    return _Scored(ev, test, work, str(data), _seen(trained, own, data, other, test),
                   note=scale_note(model, list(test), other.names, str(folder)), skipped=other.skipped)


def _seen(trained: Config, own, data, other, test) -> int | None:
    """How many of ``test``, the first images of ``other`` (read from ``data``), the run trained on, said in a warning:
    its own source by name, a copy by the pixels; None (unknown) without the run's own data, ``own``."""
    if own is None:
        return None
    seen = 0
    trained_on, _ = split_indices(own.data, split=trained.data.split, test_fraction=trained.data.test_fraction)
    if absolute_source(str(data)) == absolute_source(trained.data.source):
        saw = {own.data.names[i] for i in trained_on}
        seen = sum(n in saw for n in other.names[: len(test)])
    elif isinstance(own.data.images, torch.Tensor) and isinstance(test, torch.Tensor):
        saw = {digest(own.data.images[i]) for i in trained_on}
        seen = sum(digest(x) in saw for x in test)
    return seen


def _model_outputs(model, noisy: torch.Tensor, *, any_size: bool, show: bool | None = None) -> torch.Tensor:
    """The model's outputs: batches at the working size, or (a model for any size, whose working size may not be
    the one it trained at) each image in one piece or in tiles; a bar over the batches (the same batches either way)."""
    device = next(model.parameters()).device
    step, out = inference_batch_size(device), torch.empty_like(noisy)
    with bar(len(noisy), unit="image", desc="model", show=show) as moving:
        for start in range(0, len(noisy), step):
            part = noisy[start : start + step]
            out[start : start + step] = (torch.stack(reconstruct(model, list(part))) if any_size
                                         else map_batches(lambda x: model(x).recon, part, device))
            moving.update(len(part))
    return out


def comparison(report: dict[str, Any]) -> dict[str, Any] | None:
    """aekit's row beside the best baseline's, and the margin in dB (None without a baseline)."""
    if report["best_baseline"] is None:
        return None
    rows = {r["method"]: r for r in report["results"]}
    ours, base = rows[report["model"]], rows[report["best_baseline"]]
    keep = ("psnr", "ssim", "mse")
    return {"images": report["images"],
            "aekit": {"method": ours["method"], "flip_ensemble": report["flip_ensemble"], **{k: ours[k] for k in keep}},
            "baseline": {"method": base["method"], "setting": base["setting"], **{k: base[k] for k in keep}},
            "margin_db": ours["psnr"] - base["psnr"]}


def format_table(report: dict[str, Any]) -> str:
    """The results as an aligned text table (the method column as wide as its longest name)."""
    m = max(16, *(len(r["method"]) for r in report["results"]))
    lines = [
        f"{report['images']} images ({report['images_from']}), noise {report['noise']}, "
        f"working size {report['working_size'][0]}x{report['working_size'][1]}"
        + (f"; WARNING: the model saw {report['seen_in_training']} of them in training" if report["seen_in_training"] else
           "; whether the model saw any of them in training is unknown (the run's own data is not here)"
           if report["seen_in_training"] is None else ""),
        f"{'method':<{m}} {'PSNR (dB)':>9} {'SSIM':>7} {'MSE':>9} {'s/image':>8}  setting",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['method']:<{m}} {r['psnr']:>9.2f} {r['ssim']:>7.4f} {r['mse']:>9.5f} {r['seconds_per_image']:>8.4f}  {r['setting']}"
        )
    return "\n".join(lines)
