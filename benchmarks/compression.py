"""Compression: what a user gets from the README's command, against PCA with the same code length.

For every (split, code length) it runs the command a user types,

    aekit train --model hybrid --code-length N --split SPLIT --out runs/... [--epochs E]

with its defaults (model selection on a validation split carved from the training images, the
end-of-run comparison with PCA fitted on the same training images, both scored on the same
held-out faces), and reads the comparison from the run's metrics.json. Nothing is chosen here:
the table is the product's defaults. Prints a Markdown table (with each row's command) and writes
benchmarks/compression.json.

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/compression.py      # 8 cells
    python benchmarks/compression.py --codes 64 --splits subject --epochs 30                 # one cell
    python benchmarks/compression.py --splits --estimator --codes 128 256 --name compression-estimator
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import machine_line, save

ROOT = Path(__file__).resolve().parents[1]


def command(split: str, code: int, args) -> list[str]:
    cmd = ["aekit", "train", "--model", "hybrid", "--code-length", str(code), "--split", split]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    if args.data != "olivetti":
        cmd += ["--data", args.data]
    return cmd + ["--out", str(args.runs / f"compression-{split}-{code}{'-e' + str(args.epochs) if args.epochs else ''}")]


def estimator_rows(codes: list[int], epochs: int | None = None) -> list[dict]:
    """The scikit-learn estimator with its defaults where PCA goes (``epochs``: given, as a user may):
    fitted on the rows (64x64 faces, flattened) of people 0-31, scored on people 32-39, beside PCA
    with as many components."""
    import torch
    from sklearn.datasets import fetch_olivetti_faces
    from sklearn.decomposition import PCA

    from aekit.metrics import psnr, ssim
    from aekit.sklearn import AutoencoderTransformer

    faces = fetch_olivetti_faces()
    X, people = faces.data.astype(np.float32), faces.target
    train, test = X[people < 32], X[people >= 32]
    as_images = lambda rows: torch.from_numpy(np.clip(rows, 0, 1).reshape(-1, 1, 64, 64).astype(np.float32))  # noqa: E731
    score = lambda rows: {"psnr": float(psnr(as_images(rows), as_images(test)).mean()),  # noqa: E731
                          "ssim": float(ssim(as_images(rows), as_images(test)).mean())}
    rows = []
    for code in codes:
        t0 = time.perf_counter()
        given = {"epochs": epochs} if epochs else {}
        est = AutoencoderTransformer(code_length=code, **given).fit(train)
        mine = score(est.inverse_transform(est.transform(test)))
        pca = PCA(code).fit(train)
        theirs = score(pca.inverse_transform(pca.transform(test)))
        rows.append({"split": "subject (estimator)", "code": code, "aekit": mine, "pca": theirs,
                     "margin_db": mine["psnr"] - theirs["psnr"], "chosen_epoch": (est.history_.selection or {}).get("chosen_epoch"), "epochs_run": len(est.history_),
                     "minutes": (time.perf_counter() - t0) / 60,
                     "command": f"AutoencoderTransformer(code_length={code}{f', epochs={epochs}' if epochs else ''})"
                                ".fit(X[people < 32])"})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splits", nargs="*", default=["random", "subject"], help="none: only the estimator's rows")
    ap.add_argument("--codes", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--epochs", type=int, default=None, help="an epoch count, as a user may give one (default: none)")
    ap.add_argument("--data", default="olivetti")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "benchmarks")
    ap.add_argument("--estimator", action="store_true", help="also the scikit-learn estimator with its defaults")
    ap.add_argument("--name", default=None, help="results file: benchmarks/NAME.json (default: compression[-epochsN])")
    args = ap.parse_args()
    rows = []
    for split in args.splits:
        for code in args.codes:
            cmd = command(split, code, args)
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "aekit", *cmd[1:], "--overwrite", "--no-progress"],
                               capture_output=True, text=True, cwd=ROOT)
            if r.returncode:
                raise SystemExit(f"{shlex.join(cmd)} failed:\n{r.stderr}")
            m = json.loads((Path(cmd[-1]) / "metrics.json").read_text())
            c, s = m["comparison"], m["selection"]
            rows.append({"split": split, "code": code, "command": shlex.join(cmd), "aekit": c["aekit"],
                         "pca": c["baseline"], "margin_db": c["margin_db"], "chosen_epoch": s["chosen_epoch"],
                         "epochs_run": s["epochs_run"], "minutes": (time.perf_counter() - t0) / 60})
            print(json.dumps(rows[-1]), flush=True)
    if args.estimator:
        rows += estimator_rows(args.codes, args.epochs)
    print(f"\n{machine_line('cpu')}\n")
    print("| split | code | PCA | aekit (hybrid) | margin | chosen epoch (of run) | minutes | command |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(f"| {r['split']} | {r['code']} | {r['pca']['psnr']:.2f} / {r['pca']['ssim']:.3f} | "
              f"**{r['aekit']['psnr']:.2f} / {r['aekit']['ssim']:.3f}** | {r['margin_db']:+.2f} dB | "
              f"{r['chosen_epoch']} ({r['epochs_run']}) | {r['minutes']:.1f} | `{r['command']}` |")
    save(args.name or "compression" + (f"-epochs{args.epochs}" if args.epochs else ""), settings=vars(args), rows=rows)


if __name__ == "__main__":
    main()
