"""How the unseen-people denoising cell grows with the number of people trained on.

The 32x32 unseen-people cell of benchmarks/denoising.py trains on Olivetti people 0-31 and scores on
people 32-39. Here the same command, with its defaults, trains on people 0 to K-1 for each K, and
each model is scored on the same seeded noisy faces of people 32-39 beside the baselines (each set up
on that run's own training faces, as in every evaluation). Only user commands:

    aekit data olivetti --size 32x32 --out DIR/faces                    # one folder per person
    DIR/trainK/: links to DIR/faces/00 ... K-1;  DIR/unseen/: links to DIR/faces/32 ... 39
    aekit train --model unet --noise NOISE --data DIR/trainK --test-fraction 0 --max-time M --out DIR/runK
    aekit evaluate DIR/runK --data DIR/unseen --noise NOISE --baselines blur,bm3d,pca-wiener

(the validation people are carved from the K, as always: a tenth of them, at least one). Prints the
table and the least-squares slope of each method's PSNR against log2 of the faces trained on, and
writes benchmarks/faces_curve.json.

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/faces_curve.py   # ~20 minutes
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from pathlib import Path

import numpy as np

from common import machine_line, save
from denoising import aekit, evaluated

BASELINES = ("blur", "bm3d", "pca-wiener")
UNSEEN = range(32, 40)


def person_links(faces: Path, out: Path, people) -> Path:
    out.mkdir()
    for p in people:
        (out / f"{p:02d}").symlink_to(faces / f"{p:02d}", target_is_directory=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", default="8,16,24,32", help="numbers of training people, comma-separated (at most 32)")
    ap.add_argument("--noise", default="gaussian:0.2")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--dir", type=Path, default=None, help="where the faces and runs go (default: a temporary folder)")
    args = ap.parse_args()
    people = sorted(int(k) for k in args.people.split(","))
    if not 2 <= people[0] <= people[-1] <= 32:
        raise SystemExit("--people: each number of training people is 2-32 (people 32-39 are the unseen ones)")
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        work = args.dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        faces = work / "faces"
        aekit(["aekit", "data", "olivetti", "--size", "32x32", "--out", str(faces), "--overwrite"])
        unseen = person_links(faces, work / "unseen", UNSEEN)
        rows = []
        for k in people:
            run = work / f"run{k}"
            train = ["aekit", "train", "--model", "unet", "--noise", args.noise, "--data",
                     str(person_links(faces, work / f"train{k}", range(k))), "--test-fraction", "0",
                     "--max-time", f"{args.minutes:g}", "--out", str(run), "--overwrite"]
            evaluate = ["aekit", "evaluate", str(run), "--data", str(unseen), "--noise", args.noise,
                        "--baselines", ",".join(BASELINES)]
            aekit(train)
            report = evaluated(run, evaluate)
            metrics = json.loads((run / "metrics.json").read_text())
            psnr = {r["method"].split(" (")[0]: r["psnr"] for r in report["results"]}
            rows.append({"people": k, "faces_trained_on": metrics["train"]["images"],
                         "validation": metrics["selection"]["how"], "epochs": metrics["epochs"],
                         "chosen_epoch": metrics["selection"]["chosen_epoch"], "minutes": metrics["seconds"] / 60,
                         "psnr": {m: psnr[m] for m in ("aekit", *BASELINES)},
                         "commands": [shlex.join(train), shlex.join(evaluate)]})
            print(f"{k} people: {rows[-1]['psnr']}", flush=True)
    print("\n| people (faces trained on) | aekit (unet) | " + " | ".join(BASELINES) + " | margin over the best | epochs (chosen) |")
    print("| --- | ---: | " + " | ".join("---:" for _ in BASELINES) + " | ---: | ---: |")
    for r in rows:
        p = r["psnr"]
        best = max(p[m] for m in BASELINES)
        print(f"| {r['people']} ({r['faces_trained_on']}) | {p['aekit']:.2f} | "
              + " | ".join(f"{p[m]:.2f}" for m in BASELINES)
              + f" | {p['aekit'] - best:+.2f} | {r['epochs']} ({r['chosen_epoch']}) |")
    x = np.log2([r["faces_trained_on"] for r in rows])
    slopes = {m: float(np.polyfit(x, [r["psnr"][m] for r in rows], 1)[0]) if len(rows) > 1 else None
              for m in ("aekit", *BASELINES)}
    print("dB per doubling of the faces trained on: " + ", ".join(
        f"{m} {s:+.2f}" for m, s in slopes.items() if s is not None))
    save("faces_curve", settings={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
         rows={"rows": rows, "db_per_doubling": slopes})


if __name__ == "__main__":
    main()
