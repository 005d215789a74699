"""Fine-tuning (--init-from): a face denoiser trained on the Olivetti faces, trained further on a few faces of
another collection, against the same command from scratch and against the Olivetti model as it is.

The other collection is scikit-image's LFW subset (100 faces, 25x25, built in): a random 70% to train on, the
other 30% held out, never seen by any of the three models. Only user commands (fixed epochs, so the result does
not depend on the machine's speed or load; model selection on a tenth of the training faces, as always):

    aekit data lfw-subset --out DIR/lfw
    aekit train --model unet --noise NOISE --size 32x32 --test-fraction 0 --epochs E --out DIR/faces
    aekit train --model unet --noise NOISE --data DIR/lfw --test-fraction 0.3 --epochs E --out DIR/scratch
    aekit train --init-from DIR/faces --noise NOISE --data DIR/lfw --test-fraction 0.3 --epochs E --out DIR/tuned
    DIR/heldout/: links to the 30 held-out faces (the runs' own split: aekit.load_data + aekit.split_indices)
    aekit evaluate RUN --data DIR/heldout --noise NOISE --baselines blur,tv,wavelet,nlmeans,bm3d   (each RUN)

Every evaluation draws the same seeded noise on the same 30 faces. Prints the table and writes
benchmarks/fine_tuning.json.

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/fine_tuning.py   # ~20 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from pathlib import Path

from common import machine_line, save
from denoising import aekit, evaluated

BASELINES = ("blur", "tv", "wavelet", "nlmeans", "bm3d")
HELD_OUT = 0.3


def held_out_links(lfw: Path, out: Path) -> int:
    """Links in ``out`` to the faces of ``lfw`` that the runs hold out (their own split, by the same seed)."""
    import aekit as api

    data = api.load_data(str(lfw), seed=api.Config().data.order_seed)
    _, test = api.split_indices(data, test_fraction=HELD_OUT)
    out.mkdir()
    for i in test:
        (out / Path(data.names[i]).name).symlink_to(lfw / data.names[i])
    return len(test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise", default="gaussian:0.2")
    ap.add_argument("--epochs", type=int, default=120, help="the most each training takes (model selection may stop "
                    "it earlier)")
    ap.add_argument("--dir", type=Path, default=None, help="where the faces and runs go (default: a temporary folder)")
    args = ap.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.dir or Path(tmp)).absolute()
        work.mkdir(parents=True, exist_ok=True)
        lfw, faces = work / "lfw", work / "faces"
        aekit(["aekit", "data", "lfw-subset", "--out", str(lfw), "--overwrite"])
        common = ["--noise", args.noise, "--epochs", str(args.epochs), "--no-progress", "--overwrite"]
        trainings = {
            "faces": ["aekit", "train", "--model", "unet", "--size", "32x32", "--test-fraction", "0", *common,
                      "--out", str(faces)],
            "scratch": ["aekit", "train", "--model", "unet", "--data", str(lfw), "--test-fraction", str(HELD_OUT),
                        *common, "--out", str(work / "scratch")],
            "tuned": ["aekit", "train", "--init-from", str(faces), "--data", str(lfw), "--test-fraction",
                      str(HELD_OUT), *common, "--out", str(work / "tuned")],
        }
        held = held_out_links(lfw, work / "heldout")
        rows = []
        for name, train in trainings.items():
            aekit(train)
            run = Path(train[train.index("--out") + 1])
            evaluate = ["aekit", "evaluate", str(run), "--data", str(work / "heldout"), "--noise", args.noise,
                        "--baselines", ",".join(BASELINES), "--no-progress"]
            report = evaluated(run, evaluate)
            metrics = json.loads((run / "metrics.json").read_text())
            psnr = {r["method"].split(" (")[0]: r["psnr"] for r in report["results"]}
            rows.append({"model": name, "trained_on": metrics["train"]["images"], "epochs": metrics["epochs"],
                         "chosen_epoch": metrics["selection"]["chosen_epoch"], "minutes": metrics["seconds"] / 60,
                         "psnr": psnr, "ssim": {r["method"].split(" (")[0]: r["ssim"] for r in report["results"]},
                         "commands": [shlex.join(train), shlex.join(evaluate)]})
            print(f"{name}: {psnr}", flush=True)
    best = max(BASELINES, key=lambda m: rows[1]["psnr"][m])  # set up on the LFW training faces (scratch's run)
    print(f"\n{held} held-out LFW faces at 25x25, noise {args.noise}; the best baseline set up on the LFW training "
          f"faces: {best} {rows[1]['psnr'][best]:.2f} dB\n")
    print("| model | trained on | epochs (chosen) | PSNR dB / SSIM | over the best baseline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['model']} | {r['trained_on']} | {r['epochs']} ({r['chosen_epoch']}) | "
              f"{r['psnr']['aekit']:.2f} / {r['ssim']['aekit']:.3f} | {r['psnr']['aekit'] - rows[1]['psnr'][best]:+.2f} |")
    save("fine_tuning", settings={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
         rows={"rows": rows, "heldout_images": held, "best_baseline": best})


if __name__ == "__main__":
    main()
