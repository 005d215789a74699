"""Time to the reference's quality: the shipped config fast against the reference schedule.

The target is the reference's final training loss, 0.4636 per sample in its unit (half the summed
squared error), measured here on all 400 faces in eval mode. ``fast`` (a shipped config) trains the same
architecture with the same loss; this script measures, in one session:

1. the reference schedule's wall time per epoch (the shipped config reference, epochs timed before and
   after the fast run, median) x its 600 epochs. ``--full-reference`` runs all 600 epochs instead
   (about 25-35 minutes on 2 cores) and also reports where they end;
2. the fast configuration's training wall time until its loss on all 400 faces first reaches the
   target (checked every ``--check-every`` epochs; the checks themselves are not counted).

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/time_to_quality.py [--seed N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import aekit
from aekit.config import replace
from aekit.models import create_model
from aekit.pipeline import prepare_data
from aekit.training import evaluate, fit
from common import machine_line, save

TARGET = 0.4636  # docs/reference-experiments.md: the reference's average loss per sample at epoch 600
REFERENCE_EPOCHS = 600


class Stopwatch:
    """Training time of a fit() call, excluding the time spent in the hook's quality checks."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.excluded = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.excluded


def time_reference_epochs(cfg, x, epochs: int) -> list[float]:
    model = create_model(cfg.model)
    history = fit(model, x, replace(cfg, **{"train.epochs": epochs}).train, seed=cfg.seed,
                  progress=False, log=lambda s: None)
    return [s.seconds for s in history[1:]]  # the first epoch carries start-up costs


def run_fast(cfg, x, check_every: int) -> tuple[float | None, int | None, list[tuple[int, float, float]]]:
    """(seconds to target, epoch reached, [(epoch, loss on all faces, training seconds so far)])."""
    model = create_model(cfg.model)
    clock, trace, reached = Stopwatch(), [], {}

    def hook(ctx) -> None:
        stats = ctx.stats
        if reached or not (stats.epoch % check_every == 0 or stats.epoch == cfg.train.epochs):
            return
        t_check = time.perf_counter()
        seconds = clock.elapsed()
        loss = evaluate(model, x)["loss_per_sample"]
        trace.append((stats.epoch, loss, seconds))
        if loss <= TARGET:
            reached.update(epoch=stats.epoch, seconds=seconds)
        clock.excluded += time.perf_counter() - t_check

    clock.start = time.perf_counter()
    fit(model, x, cfg.train, seed=cfg.seed, progress=False, log=lambda s: None, on_epoch=hook)
    return reached.get("seconds"), reached.get("epoch"), trace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fast", default="fast")
    ap.add_argument("--seed", type=int, default=None, help="default: each config's own")
    ap.add_argument("--reference-epochs", type=int, default=12, help="reference epochs timed before and after")
    ap.add_argument("--full-reference", action="store_true", help="run all 600 reference epochs")
    ap.add_argument("--check-every", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ref = aekit.load_config("reference")
    fast = aekit.load_config(args.fast)
    ref = replace(ref, seed=args.seed, **{"train.device": "cpu"})
    fast = replace(fast, seed=args.seed, **{"train.device": "cpu"})
    x = prepare_data(ref).train_x
    if not torch.equal(prepare_data(fast).train_x, x):
        raise SystemExit(f"{args.fast}: its data differ from the reference's 400 faces")

    ref_full = None
    if args.full_reference:
        model = create_model(ref.model)
        t0 = time.perf_counter()
        history = fit(model, x, ref.train, seed=ref.seed, progress=False, log=lambda s: None)
        ref_wall = time.perf_counter() - t0
        ref_full = (history[-1].loss_per_sample, evaluate(model, x)["loss_per_sample"])
        per_epoch = [s.seconds for s in history[1:]]
    else:
        per_epoch = time_reference_epochs(ref, x, args.reference_epochs // 2 + 1)
    seconds, epoch, trace = run_fast(fast, x, args.check_every)
    if not args.full_reference:
        per_epoch += time_reference_epochs(ref, x, args.reference_epochs // 2 + 1)
        ref_wall = statistics.median(per_epoch) * REFERENCE_EPOCHS

    print(f"\n{machine_line('cpu')}")
    how = "measured, all 600 epochs" if ref_full else (
        f"median of {len(per_epoch)} timed epochs ({min(per_epoch):.2f}-{max(per_epoch):.2f} s) x 600")
    print(f"reference schedule ({ref.train.batch_size}/batch, lr {ref.train.lr:g}, 600 epochs): "
          f"{ref_wall / 60:.1f} min ({how})")
    if ref_full:
        print(f"  its epoch-600 loss {ref_full[0]:.4f}, on all 400 faces in eval mode {ref_full[1]:.4f}")
    t = fast.train
    print(f"fast ({Path(args.fast).name}: batch {t.batch_size}, lr {t.lr:g}, {t.schedule} schedule, "
          f"{t.warmup_epochs} warm-up epochs, {t.epochs} epochs, seed {fast.seed}):")
    for e, loss, s in trace:
        print(f"  epoch {e:4d}  loss on all 400 faces {loss:8.4f}  {s:7.1f} s")
    if seconds is None:
        print(f"target {TARGET} NOT reached (best {min(l for _, l, _ in trace):.4f})")
    else:
        print(f"target {TARGET} reached at epoch {epoch} after {seconds:.1f} s = "
              f"{seconds / ref_wall:.3f} of the reference's wall time ({ref_wall / seconds:.1f}x faster)")
    save("time_to_quality", settings=vars(args), rows={
        "reference_minutes": ref_wall / 60, "reference_epoch_seconds": per_epoch, "reference_full": ref_full,
        "fast_trace": trace, "target": TARGET, "reached_seconds": seconds, "reached_epoch": epoch})


if __name__ == "__main__":
    main()
