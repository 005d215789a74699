"""Denoising: what a user gets from the documented command, against the classical denoisers.

Every cell runs the command a user types, with its defaults and a time budget,

    aekit train --model unet --noise NOISE --size S --split subject --max-time 10 --out runs/...

(noise added at the working size; model selection on a validation split of training people; the
end-of-run comparison with the classical denoisers: blur, TV, wavelet, NL-means, BM3D given each
image's true noise level, and the PCA Wiener filter of the training images given that level too,
all set up on the training images and scored on the same seeded noisy held-out faces) and reads the
comparison from metrics.json. Across collections, a model trained on all 400 Olivetti faces
at 32x32 (``--size 32x32 --test-fraction 0``) is scored with ``aekit evaluate RUN --data lfw-subset --baselines`` on
the 100 faces of scikit-image's LFW subset (built in), at their own 25x25 and resized (``--size 32x32``). Nothing is
chosen here.
Prints Markdown tables (with each row's command) and writes benchmarks/denoising.json.

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/denoising.py          # ~1 hour
    python benchmarks/denoising.py --sizes 32 --noises gaussian:0.2 --minutes 2 --no-lfw        # a quick look
    python benchmarks/denoising.py --baselines-only    # every cell's baselines alone, on the same images (~6 minutes)

``--baselines-only`` trains each cell's command for one epoch, without its comparison (the split, the
working size and the seeded noisy images are the command's, whatever the training), and scores the
baselines on those images with ``aekit evaluate RUN --limit 500 --baselines LIST``: how a new baseline
moves the published margins without training the models again.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from aekit.baselines import CLASSICAL
from aekit.evaluation import comparison
from aekit.run import COMPARE_IMAGES
from common import machine_line, save

ROOT = Path(__file__).resolve().parents[1]
ONE_EPOCH = ["--epochs", "1", "--no-compare"]  # --baselines-only: the command's data, split and noise, no model worth scoring


def aekit(cmd: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", "aekit", *cmd[1:]], capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed:\n{r.stderr}")


LFW_SIZES = {"25x25": [], "32x32": ["--size", "32x32"]}  # the faces' own size, and resized to the working size


def row_of(comparison: dict, where: str, noise: str, cmd: str, minutes: float, extra: dict) -> dict:
    return {"where": where, "noise": noise, "command": cmd, "aekit": comparison["aekit"],
            "best_baseline": comparison["baseline"], "margin_db": comparison["margin_db"], "minutes": minutes, **extra}


def evaluated(run: Path, evaluate: list[str]) -> dict:
    """Run the ``aekit evaluate`` command ``evaluate`` on ``run`` and read back its report."""
    aekit(evaluate)
    return json.loads((run / "evaluation.json").read_text())


def baselines_row(report: dict, where: str, noise: str, cmd: str, evaluate: list[str]) -> dict:
    """--baselines-only: every classical baseline's scores in ``report``, from the command ``evaluate``."""
    scores = {r["method"]: {k: r[k] for k in ("setting", "psnr", "ssim")} for r in report["results"]
              if r["method"] in CLASSICAL}
    best = report["best_baseline"]
    return {"where": where, "noise": noise, "command": cmd, "evaluate": shlex.join(evaluate), "baselines": scores,
            "best_baseline": {"method": best, **scores[best]}}


def print_tables(rows: list[dict], args) -> None:
    print(f"\n{machine_line('cpu')}; {args.minutes:g}-minute training budget per cell\n")
    if args.baselines_only:
        print(f"| images | noise | {' | '.join(CLASSICAL)} |")
        print(f"| --- | --- |{' ---: |' * len(CLASSICAL)}")
        for r in rows:
            cells = [f"{r['baselines'][n]['psnr']:.2f}" for n in CLASSICAL]
            cells = [f"**{c}**" if n == r["best_baseline"]["method"] else c for n, c in zip(CLASSICAL, cells)]
            print(f"| {r['where']} | {r['noise']} | {' | '.join(cells)} |")
        return
    print("| images | noise | aekit | best baseline | margin | command |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for r in rows:
        b, ahead = r["best_baseline"], r["margin_db"] > 0
        ours, theirs = f"{r['aekit']['psnr']:.2f} / {r['aekit']['ssim']:.3f}", f"{b['psnr']:.2f} / {b['ssim']:.3f}"
        print(f"| {r['where']} | {r['noise']} | {f'**{ours}**' if ahead else ours} | "
              f"{b['method']} {theirs if ahead else f'**{theirs}**'} | {r['margin_db']:+.2f} dB | `{r['command']}` |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="unet")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--noises", nargs="+", default=["gaussian:0.2", "gaussian-image:0-0.4"])
    ap.add_argument("--splits", nargs="+", default=["subject"])
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per cell (--max-time)")
    ap.add_argument("--no-lfw", action="store_true", help="skip the cross-collection cells")
    ap.add_argument("--baselines-only", action="store_true",
                    help="score only the baselines of every cell, on the same images (one epoch of training each)")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "benchmarks")
    ap.add_argument("--name", default=None, help="results file: benchmarks/NAME.json (default denoising, or "
                    "denoising-baselines with --baselines-only)")
    args = ap.parse_args()
    args.name = args.name or ("denoising-baselines" if args.baselines_only else "denoising")
    train = ["--overwrite", "--no-progress", *(ONE_EPOCH if args.baselines_only else [])]
    rows = []
    for split in args.splits:
        for size in args.sizes:
            for noise in args.noises:
                out = args.runs / f"denoising-{args.model}-{split}-{size}-{noise.replace(':', '')}"
                cmd = ["aekit", "train", "--model", args.model, "--noise", noise, "--size", f"{size}x{size}",
                       "--split", split, "--max-time", f"{args.minutes:g}", "--out", str(out)]
                where = f"{split} split, {size}x{size}"
                t0 = time.perf_counter()
                aekit(cmd + train)
                if args.baselines_only:  # the end-of-run comparison's images: the run's split and noise, its limit
                    ev = ["aekit", "evaluate", str(out), "--limit", str(COMPARE_IMAGES), "--baselines", ",".join(CLASSICAL)]
                    rows.append(baselines_row(evaluated(out, ev), where, noise, shlex.join(cmd), ev))
                else:
                    m = json.loads((out / "metrics.json").read_text())
                    rows.append(row_of(m["comparison"], where, noise, shlex.join(cmd), (time.perf_counter() - t0) / 60,
                                       {"epochs": m["epochs"], "chosen_epoch": m["selection"]["chosen_epoch"]}))
                print(json.dumps(rows[-1]), flush=True)
    if not args.no_lfw:
        for noise in args.noises:
            out = args.runs / f"denoising-{args.model}-all-olivetti-{noise.replace(':', '')}"
            cmd = ["aekit", "train", "--model", args.model, "--noise", noise, "--size", "32x32", "--test-fraction", "0",
                   "--max-time", f"{args.minutes:g}", "--out", str(out)]
            t0 = time.perf_counter()
            aekit(cmd + train)
            minutes = (time.perf_counter() - t0) / 60
            m = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").is_file() else {}
            run = {"epochs": m["epochs"], "chosen_epoch": m["selection"]["chosen_epoch"]} if m.get("selection") else {}
            for size, fitted in LFW_SIZES.items():
                ev = ["aekit", "evaluate", str(out), "--data", "lfw-subset", *fitted, "--noise", noise, "--baselines",
                      ",".join(CLASSICAL)]
                report = evaluated(out, ev)
                if args.baselines_only:
                    rows.append(baselines_row(report, f"LFW faces at {size}", noise, shlex.join(cmd), ev))
                else:
                    rows.append(row_of(comparison(report), f"LFW faces at {size}", noise,
                                       f"{shlex.join(cmd)} && {shlex.join(ev)}", minutes, run))
                print(json.dumps(rows[-1]), flush=True)
    print_tables(rows, args)
    save(args.name, settings=vars(args), rows=rows)


if __name__ == "__main__":
    main()
