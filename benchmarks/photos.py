"""A denoiser on a folder of photos of different sizes: one centre window of each (``--fit window``) or
every window (``--fit tiles``), scored on photos it never saw, beside the classical denoisers.

The photos are scikit-image's bundled ones (public domain, no download), in gray: 12 to train on
(camera, astronaut, coffee, chelsea, rocket, brick, grass, gravel, moon, page, text,
immunohistochemistry: 172x448 to 512x600 pixels) and 4 held out (coins, clock, cell, and the left view of
the stereo motorcycle), written as PNG files. For each fit the command a user types trains a model,

    aekit train --model unet --noise NOISE --data train/ --size 64x64 --fit FIT --test-fraction 0 --max-time M

(model selection on a validation split of the training photos) and the same evaluation scores it,
`aekit evaluate RUN --data heldout/ --size 64x64 --fit tiles --noise NOISE --baselines ...`: every
64x64 window of the held-out photos, the same seeded noise for every method. Nothing is chosen here.

    python benchmarks/photos.py                          # two 10-minute trainings, ~25 minutes in all
    python benchmarks/photos.py --minutes 1 --fits tiles  # a quick look
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import numpy as np

from aekit.data import write_image
from aekit.evaluation import comparison
from common import machine_line, save
from denoising import CLASSICAL, ROOT, aekit, row_of

TRAIN = ("camera", "astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "moon", "page", "text",
         "immunohistochemistry")
HELD_OUT = ("coins", "clock", "cell", "stereo_motorcycle")


def write_photos(folder: Path, names: tuple[str, ...]) -> Path:
    """scikit-image's photos ``names`` as gray PNG files in ``folder``."""
    import skimage.data
    from skimage.color import rgb2gray

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        pixels = getattr(skimage.data, name)()
        pixels = pixels[0] if isinstance(pixels, tuple) else pixels  # the stereo pair: its left view
        gray = rgb2gray(pixels) if pixels.ndim == 3 else pixels / 255.0
        write_image(folder / f"{name}.png", np.asarray(gray, dtype=np.float32))
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fits", nargs="+", default=["window", "tiles"])
    ap.add_argument("--noise", default="gaussian:0.1")
    ap.add_argument("--size", default="64x64")
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per fit (--max-time)")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "benchmarks" / "photos")
    ap.add_argument("--name", default="photos", help="results file: benchmarks/NAME.json")
    args = ap.parse_args()
    train, held_out = write_photos(args.runs / "train", TRAIN), write_photos(args.runs / "heldout", HELD_OUT)
    rows = []
    for fit in args.fits:
        out = args.runs / f"unet-{fit}"
        cmd = ["aekit", "train", "--model", "unet", "--noise", args.noise, "--data", str(train), "--size", args.size,
               "--fit", fit, "--test-fraction", "0", "--max-time", f"{args.minutes:g}", "--out", str(out)]
        t0 = time.perf_counter()
        aekit(cmd + ["--overwrite", "--no-progress"])
        minutes = (time.perf_counter() - t0) / 60
        m = json.loads((out / "metrics.json").read_text())
        ev = ["aekit", "evaluate", str(out), "--data", str(held_out), "--size", args.size, "--fit", "tiles",
              "--noise", args.noise, "--baselines", ",".join(CLASSICAL)]
        aekit(ev)
        report = json.loads((out / "evaluation.json").read_text())
        rows.append(row_of(comparison(report), f"held-out photos, {args.size} tiles", args.noise,
                           f"{shlex.join(cmd)} && {shlex.join(ev)}", minutes,
                           {"fit": fit, "epochs": m["epochs"], "chosen_epoch": m["selection"]["chosen_epoch"],
                            "training_images": m["train"]["images"]}))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{machine_line('cpu')}; {args.minutes:g}-minute training budget per fit\n")
    print("| training fit | training images | aekit | best baseline | margin | epochs (chosen) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        b = r["best_baseline"]
        print(f"| `--fit {r['fit']}` | {r['training_images']} | {r['aekit']['psnr']:.2f} / {r['aekit']['ssim']:.3f} | "
              f"{b['method']} {b['psnr']:.2f} / {b['ssim']:.3f} | {r['margin_db']:+.2f} dB | "
              f"{r['epochs']} ({r['chosen_epoch']}) |")
    save(args.name, settings=vars(args), rows=rows)


if __name__ == "__main__":
    main()
