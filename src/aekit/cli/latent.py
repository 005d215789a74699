"""Using a trained model's codes: ``aekit encode``, ``decode``, ``sample``, ``interpolate``, ``map``, ``score``."""

from __future__ import annotations

import argparse

from ..anomaly import DEFAULT_QUANTILE, score, write_scores
from ..latent import decode_files, encode_files, interpolate, sample, write_grid, write_map
from ..files import new_file, user_path
from .options import add_command, add_config_options, add_no_progress, default_of


def add_commands(sub) -> None:
    def command(name, help, examples, func):
        p = add_command(sub, name, help, examples, func)
        p.add_argument("run", type=user_path, metavar="RUN", help="run folder (or a folder saved by aekit.save)")
        return p

    p = command("encode", "encode images into codes: a .npy (N, code length) and the list of files in a .txt beside it",
                "aekit encode runs/ref faces/ --out codes.npy           # codes.npy + codes.txt\n"
                "aekit encode runs/ref a.png b.png --out ab.npy", cmd_encode)
    p.add_argument("inputs", type=user_path, nargs="+", metavar="INPUT",
                   help="image files or folders (searched recursively)")
    p.add_argument("--out", type=user_path, required=True, metavar="FILE.npy", help="codes file to write")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable files (listed) instead of stopping")
    add_no_progress(p, " over the files read")
    add_config_options(p, {"data.workers"})  # as training reads a folder
    p = command("decode", "decode codes (a .npy from aekit encode) into one PNG per code",
                "aekit decode runs/ref codes.npy --out decoded/", cmd_decode)
    p.add_argument("codes", type=user_path, metavar="CODES.npy", help="(N, code length) array")
    p.add_argument("--out", type=user_path, required=True, metavar="DIR", help="folder for the PNGs")
    p = command("sample", "draw new images from a VAE's prior N(0, I): a PNG grid and a .npy of the images",
                "aekit sample runs/vae -n 64 --out faces.png           # faces.png + faces.npy\n"
                "aekit sample runs/vae --temperature 0.8 --seed 3 --out typical.png", cmd_sample)
    n, seed, temperature = (default_of(sample, k) for k in ("n", "seed", "temperature"))
    p.add_argument("-n", type=int, default=n, metavar="N", help=f"images to draw (default {n})")
    p.add_argument("--seed", type=int, default=seed, metavar="N", help=f"seed of the drawn codes (default {seed})")
    p.add_argument("--temperature", type=float, default=temperature, metavar="T",
                   help=f"scale the prior's spread: below 1, more typical and less varied images (default {temperature:g})")
    p.add_argument("--out", type=user_path, required=True, metavar="FILE.png", help="grid to write")
    p = command("interpolate", "decode the straight line between the codes of two images: a strip "
                "A | STEPS decodings | B (and a .npy)",
                "aekit interpolate runs/vae a.png b.png --steps 10 --out strip.png", cmd_interpolate)
    p.add_argument("a", type=user_path, metavar="A", help="first image")
    p.add_argument("b", type=user_path, metavar="B", help="second image")
    steps = default_of(interpolate, "steps")
    p.add_argument("--steps", type=int, default=steps, metavar="N", help=f"decoded points from A to B (default {steps})")
    p.add_argument("--out", type=user_path, required=True, metavar="FILE.png", help="strip to write")
    p = command("map", "a 2-D map of the codes (PCA or t-SNE), coloured by label where there are labels",
                "aekit map runs/ref --out map.png                       # the run's own data\n"
                "aekit map runs/ref --data photos/ --method tsne --out photos-map.png", cmd_map)
    p.add_argument("--data", dest="data.source", metavar="SOURCE", help="images to map (default: the run's data source)")
    p.add_argument("--method", choices=["pca", "tsne"], default="pca", help="projection (default pca)")
    p.add_argument("--skip-bad", dest="data.skip_bad", action="store_true", help="with --data: skip unreadable "
                   "files (listed) instead of stopping")
    p.add_argument("--out", type=user_path, required=True, metavar="FILE.png", help="picture to write")
    p = command("score", "per-image reconstruction error for anomaly screening, flagged above a threshold "
                "taken from the run's held-out images",
                "aekit score runs/conv new/ --out scores.csv            # threshold: held-out 99% quantile\n"
                "aekit score runs/conv new/ --quantile 0.95 --out scores.csv\n"
                "aekit score runs/ref new/ --threshold 0.002 --out scores.csv  # a run with no held-out images",
                cmd_score)
    p.add_argument("inputs", type=user_path, nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--quantile", type=float, metavar="Q",
                   help=f"threshold = this quantile of the held-out errors (default {DEFAULT_QUANTILE})")
    p.add_argument("--threshold", type=float, metavar="MSE", help="a fixed threshold instead")
    p.add_argument("--out", type=user_path, required=True, metavar="FILE.csv", help="file,mse,threshold,flag per image")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable files (listed) instead of stopping")
    add_no_progress(p, " over the files read")
    add_config_options(p, {"data.workers"})  # as training reads a folder (and the held-out images)
    for name in ("encode", "decode", "sample", "interpolate", "map", "score"):
        sub.choices[name].add_argument("--device", default="cpu", metavar="DEV", help="device (default cpu)")
        sub.choices[name].add_argument("--overwrite", action="store_true", help="replace existing output files")


def cmd_encode(args: argparse.Namespace) -> int:
    out = new_file(args.out, overwrite=args.overwrite, suffix=".npy", beside=(".txt",))
    codes, names, skipped = encode_files(args.run, args.inputs, out, device=args.device, skip_bad=args.skip_bad,
                                         progress=False if args.no_progress else None,
                                         workers=getattr(args, "data.workers"))
    for line in skipped:
        print(f"skipped {line}")
    print(f"Wrote {codes} and {names}" + (f"; skipped {len(skipped)} unreadable files" if skipped else ""))
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    paths = decode_files(args.run, args.codes, args.out, device=args.device, overwrite=args.overwrite)
    print(f"Wrote {len(paths)} images to {args.out}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    out = new_file(args.out, overwrite=args.overwrite, suffix=".png", beside=(".npy",))
    out = write_grid(sample(args.run, args.n, seed=args.seed, temperature=args.temperature, device=args.device), out)
    print(f"Wrote {out} and {out.with_suffix('.npy')}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    out = new_file(args.out, overwrite=args.overwrite, suffix=".png", beside=(".npy",))
    images = interpolate(args.run, args.a, args.b, args.steps, device=args.device)
    out = write_grid(images, out, per_row=len(images))
    print(f"Wrote {out} and {out.with_suffix('.npy')}")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    out = new_file(args.out, overwrite=args.overwrite, suffix=".png")
    drawn = write_map(args.run, out, source=getattr(args, "data.source"), method=args.method, device=args.device,
                      skip_bad=getattr(args, "data.skip_bad"))
    for line in drawn["skipped"]:
        print(f"skipped {line}")
    print(f"Wrote {drawn['out']} ({drawn['images']} images" + (", coloured by label)" if drawn["labelled"] else ")"))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    new_file(args.out, overwrite=args.overwrite, suffix=".csv")
    s = score(args.run, args.inputs, quantile=args.quantile, threshold=args.threshold, device=args.device,
              skip_bad=args.skip_bad, progress=False if args.no_progress else None, workers=getattr(args, "data.workers"))
    write_scores(s, args.out)
    for line in s.skipped:
        print(f"skipped {line}")
    where = f"the {s.quantile:g} quantile of {s.heldout_images} held-out images" if s.quantile else "given"
    print(f"Threshold {s.threshold:.6g} (MSE, {where}); {int(s.flags.sum())} of {len(s.errors)} images flagged")
    print(f"Wrote {args.out}")
    return 0
