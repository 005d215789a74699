"""The VAE as a generative model: the default command against probabilistic PCA and pythae's VAE.

Runs the command a user types, ``aekit train --model vae --max-time 10`` (the Olivetti faces at 32x32,
the last 80 of the seeded order held out; model selection on people carved from the first 320), then
scores on the 80 held-out faces: -ELBO (summed BCE of the posterior mean's decoding + KL, nats and
bits/dim), active units, the reconstruction PSNR of the posterior mean, the median SSIM of 64 prior
samples to their closest training face (real unseen faces score about 0.76 this way), and
interpolations between pairs of held-out faces of different people (SSIM between consecutive frames).
Beside it: probabilistic PCA samples (16 components), and with ``--pythae`` (pythae 0.1.2 in the same
environment) pythae's VAE with its default MLP nets (latent 16) on the same split for as many
epochs (``--pythae-equal-time``: also for the same CPU time), and pythae's VAE with aekit's default
encoder and decoder (the same latent size) for as many epochs; and aekit's trainer on pythae's data
(``aekit train --model vae --no-select --epochs N``: all 320 faces, no validation carved out, as many
epochs), so the two trainers are compared on the same faces, nets and epochs (``--seeds 0 1 2``:
both once per seed, the seed-to-seed spread beside the difference). ``--beta B --epochs N`` compares a
beta-VAE the same way, and only that: ``aekit train --model vae --no-select --beta B`` against pythae's
``BetaVAE`` with aekit's nets, both N epochs on all 320 faces, once per seed.

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/vae.py [--pythae [--seeds 0 1 2]] [--minutes 10]
    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/vae.py --beta 4 --epochs 165 --seeds 0
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
import torch

import aekit
from aekit.codes import decode, encode
from aekit.metrics import psnr, ssim
from common import machine_line, save

ROOT = Path(__file__).resolve().parents[1]


def ssim_to_closest(images: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """For each image, the SSIM to its closest face (by SSIM)."""
    return torch.stack([ssim(img.expand_as(faces), faces).max() for img in images])


def faces_split():
    data = aekit.load_data("olivetti")
    x = aekit.resize(data.images, (32, 32), "bicubic")
    return x[:320], x[320:], data.labels[:320], data.labels[320:]


def generative_checks(sampler, encoder, decoder, train, test, test_labels, seed: int = 0) -> dict:
    """Sample quality and interpolations, the same for every system."""
    z = sampler(64, seed)
    samples = decoder(z)
    g = np.random.default_rng(seed)
    consecutive, pairs = [], 0
    while pairs < 10:
        i, j = g.choice(len(test), 2, replace=False)
        if test_labels[i] == test_labels[j]:
            continue
        pairs += 1
        za, zb = encoder(test[[i, j]])
        t = torch.linspace(0, 1, 8)[:, None]
        frames = decoder((1 - t) * za + t * zb)
        consecutive.append(float(ssim(frames[:-1], frames[1:]).mean()))
    return {"sample_ssim_to_closest_training_face": float(ssim_to_closest(samples, train).median()),
            "interpolation_consecutive_ssim": float(np.mean(consecutive))}, samples


def ppca(train: torch.Tensor, test, test_labels, k: int = 16) -> dict:
    from sklearn.decomposition import PCA

    flat = train.flatten(1).double().numpy()
    pca = PCA(n_components=k).fit(flat)
    noise = pca.noise_variance_
    std = np.sqrt(np.maximum(pca.explained_variance_ - noise, 1e-12))

    def sampler(n, seed):
        return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, k)) * std)

    def decoder(z):
        return torch.from_numpy(np.clip(pca.mean_ + z.numpy() @ pca.components_, 0, 1)).float().view(-1, 1, 32, 32)

    def encoder(x):
        return torch.from_numpy(pca.transform(x.flatten(1).double().numpy()))

    checks, _ = generative_checks(sampler, encoder, decoder, train, test, test_labels)
    recon = decoder(encoder(test))
    return {"system": f"probabilistic PCA, {k} components", **checks, "psnr": float(psnr(recon, test).mean())}


def aekit_nets(latent: int):
    """aekit's default VAE encoder and decoder (its initialisation) as pythae networks."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    net = aekit.create_model("vae", code_length=latent)

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.encoder, self.mu, self.log_var = net.encoder, net.mu, net.log_var

        def forward(self, x):
            h = self.encoder(x).flatten(1)
            return ModelOutput(embedding=self.mu(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.to_map, self.decoder = net.to_map, net.decoder

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.decoder(self.to_map(z))))

    return Encoder(), Decoder()


def pythae_rows(train, test, test_labels, epochs: int, seconds: float, latent: int, equal_time: bool,
                seeds: tuple[int, ...] = (8,), beta: float | None = None) -> list[dict]:
    """pythae's VAE (bce) on the same 320 faces with pythae's own trainer (Adam lr 1e-3, batch 64):
    its default MLP nets, latent 16, for as many epochs as aekit ran (and with ``equal_time`` for as
    many as fit aekit's CPU time); and aekit's own encoder and decoder (latent as aekit's) for as many
    epochs as aekit ran. With ``beta``: only pythae's ``BetaVAE`` with aekit's nets, once per seed."""
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, BetaVAE, BetaVAEConfig, VAEConfig
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    rows, per_epoch = [], None
    runs = [*([] if beta else [(epochs, "mlp", 8)]), *([(None, "mlp", 8)] if equal_time else []),
            *((epochs, "aekit", s) for s in seeds)]
    for n_epochs, nets, seed in runs:
        n_epochs = n_epochs or max(1, int(seconds / per_epoch))
        torch.manual_seed(seed)
        dim = 16 if nets == "mlp" else latent
        common = {"input_dim": (1, 32, 32), "latent_dim": dim, "reconstruction_loss": "bce"}
        kind, cfg = (BetaVAE, BetaVAEConfig(**common, beta=beta)) if beta else (VAE, VAEConfig(**common))
        if nets == "mlp":
            model = kind(cfg)
        else:
            encoder, decoder = aekit_nets(dim)
            model = kind(cfg, encoder=encoder, decoder=decoder)
        t0 = time.perf_counter()
        BaseTrainer(model=model, train_dataset=BaseDataset(train, torch.zeros(len(train))),
                    training_config=BaseTrainerConfig(output_dir="/tmp/aekit-pythae", num_epochs=n_epochs,
                                                      learning_rate=1e-3, per_device_train_batch_size=64,
                                                      no_cuda=True, steps_saving=None, seed=seed)).train()
        took = time.perf_counter() - t0
        per_epoch = per_epoch or took / n_epochs
        model.eval()
        with torch.no_grad():
            out = model.encoder(test)
            mu, log_var = out.embedding, out.log_covariance
            recon = model.decoder(mu).reconstruction.clamp(1e-7, 1 - 1e-7)
            bce = torch.nn.functional.binary_cross_entropy(recon, test, reduction="none").flatten(1).sum(1)
            kl = 0.5 * (mu.square() + log_var.exp() - log_var - 1).sum(1)
            checks, _ = generative_checks(lambda n, s: torch.randn(n, dim, generator=torch.Generator().manual_seed(s)),
                                          lambda x: model.encoder(x).embedding,
                                          lambda z: model.decoder(z).reconstruction.clamp(0, 1), train, test, test_labels)
        what = "its MLP nets" if nets == "mlp" else "aekit's default encoder and decoder"
        name = f"BetaVAE (beta {beta:g})" if beta else "VAE"
        rows.append({"system": f"pythae 0.1.2 {name}, {what}, latent {dim}, {n_epochs} epochs, seed {seed}",
                     "nelbo": float((bce + kl).mean()), "kl": float(kl.mean()), "active_units": int((mu.var(0) > 0.01).sum()),
                     "psnr": float(psnr(recon, test).mean()), "seconds": took, **checks})
    return rows


def aekit_row(cmd: list[str], out: Path, train, test, test_labels) -> tuple[dict, aekit.Autoencoder]:
    """Run an ``aekit train`` command (a fresh process) and score its model on the held-out faces:
    the row, and the model."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "aekit", *cmd[1:], "--overwrite", "--no-progress"], cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr)
    seconds = time.perf_counter() - t0
    metrics = json.loads((out / "metrics.json").read_text())
    model = aekit.load(out)
    h = metrics["heldout"] or aekit.evaluate(model, test)  # the book's trains on all 400: scored on the last 80
    sampler = lambda n, s: torch.randn(n, model.config.code_length, generator=torch.Generator().manual_seed(s))  # noqa: E731
    checks, _ = generative_checks(sampler, lambda x: torch.from_numpy(encode(model, x)),
                                  lambda z: decode(model, z), train, test, test_labels)
    return {"system": "aekit: " + shlex.join(cmd), "nelbo": h["nelbo"], "bits_per_dim": h["bits_per_dim"],
            "reconstruction": h["reconstruction"], "kl": h["kl"], "active_units": h["active_units"],
            "psnr": h["psnr"], "seconds": seconds, "epochs": metrics["epochs"],
            "precision": metrics.get("precision"),
            "chosen_epoch": (metrics.get("selection") or {}).get("chosen_epoch"), **checks}, model


def all_faces_command(epochs: int, seed: int | None, out: Path, *extra: str) -> list[str]:
    """aekit's trainer on pythae's data: all 320 faces (no validation carved out), ``epochs`` epochs."""
    return ["aekit", "train", "--model", "vae", "--no-select", "--epochs", str(epochs), *extra,
            *(["--seed", str(seed)] if seed is not None else []), "--out", str(out)]


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """A markdown table of ``rows``: the system, then each (header, key, format) column; "-" where a row lacks it."""
    print("| system | " + " | ".join(h for h, _, _ in columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for row in rows:
        print(f"| {row['system']} | " + " | ".join(format(row[k], f) if k in row else "-" for _, k, f in columns) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--pythae", action="store_true")
    ap.add_argument("--pythae-equal-time", action="store_true", help="with --pythae: also its MLP VAE for aekit's CPU time")
    ap.add_argument("--seeds", type=int, nargs="*", default=None,
                    help="with --pythae: the two trainers on the same faces, nets and epochs, once per seed")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "vae")
    ap.add_argument("--config", default=None, help="e.g. reference-vae (the book's, on all 400 faces)")
    ap.add_argument("--beta", type=float, default=None,
                    help="only a beta-VAE on the same faces, nets and epochs: aekit --beta B against pythae's BetaVAE")
    ap.add_argument("--epochs", type=int, default=165, help="with --beta: the epochs of both trainers")
    args = ap.parse_args()
    if args.beta is not None:
        return beta_vae(args)
    cmd = ["aekit", "train", "--model", "vae", "--max-time", f"{args.minutes:g}", "--out", str(args.out)]
    if args.config:
        cmd = ["aekit", "train", "--config", args.config, "--out", str(args.out)]
    train, test, _, test_labels = faces_split()
    row, model = aekit_row(cmd, args.out, train, test, test_labels)
    rows = [row]
    if args.pythae:  # aekit's trainer on pythae's data: all 320 faces (no validation carved), as many epochs
        for seed in args.seeds or [None]:
            out = args.out.with_name(args.out.name + "-all-320" + (f"-seed{seed}" if seed is not None else ""))
            rows.append(aekit_row(all_faces_command(row["epochs"], seed, out), out, train, test, test_labels)[0])
    rows.append(ppca(train, test, test_labels))
    real = float(ssim_to_closest(test, train).median())
    if args.pythae:
        rows += pythae_rows(train, test, test_labels, row["epochs"], row["seconds"], model.config.code_length,
                            args.pythae_equal_time, tuple(args.seeds or [8]))
    print(f"\n{machine_line('cpu')}; unseen real faces score {real:.3f} against their closest training face\n")
    print_table(rows, [("-ELBO (nats)", "nelbo", ".1f"), ("active units", "active_units", "d"), ("PSNR", "psnr", ".2f"),
                       ("samples: SSIM to closest training face", "sample_ssim_to_closest_training_face", ".3f"),
                       ("interpolation: consecutive-frame SSIM", "interpolation_consecutive_ssim", ".3f"),
                       ("seconds", "seconds", ".0f")])
    name = "vae" + ("-book" if args.config else "") + ("-seeds" if args.seeds else "")
    save(name, settings=vars(args), rows={"rows": rows, "real_faces": real})


def beta_vae(args) -> None:
    """aekit's trainer and pythae's on a beta-VAE, the same faces (all 320), nets and epochs, per seed."""
    train, test, _, test_labels = faces_split()
    rows = []
    for seed in args.seeds or [0]:
        out = args.out.with_name(f"{args.out.name}-beta{args.beta:g}-seed{seed}")
        cmd = all_faces_command(args.epochs, seed, out, "--beta", f"{args.beta:g}")
        row, model = aekit_row(cmd, out, train, test, test_labels)
        rows.append(row)
    rows += pythae_rows(train, test, test_labels, args.epochs, 0.0, model.config.code_length, False,
                        tuple(args.seeds or [0]), beta=args.beta)
    print(f"\n{machine_line('cpu')}\n")
    print_table(rows, [("-ELBO (nats)", "nelbo", ".1f"), ("KL", "kl", ".1f"), ("active units", "active_units", "d"),
                       ("PSNR", "psnr", ".2f"), ("samples", "sample_ssim_to_closest_training_face", ".3f"),
                       ("seconds", "seconds", ".0f")])
    save(f"vae-beta{args.beta:g}", settings=vars(args), rows={"rows": rows})


if __name__ == "__main__":
    main()
