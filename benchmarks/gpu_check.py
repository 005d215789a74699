"""One prepared check on a GPU (issue 19): the CUDA paths, throughput, the 600-epoch reference, many seeds.

Runs in about 10 minutes on one GPU and writes everything it measured to ``benchmarks/gpu_check.json``
(or ``$OUT/gpu_check.json`` when ``$OUT`` is set, as on a lent device machine). Each step has its own
time limit and records its own failure, so one broken path does not hide the others:

1. ``tests``: the CUDA-marked tests (exact resume with the CUDA random state) and, per precision
   (off, bf16, fp16) with and without torch.compile, a two-epoch run on the GPU (finite loss, seconds).
2. ``distributed``: two processes under torchrun on the one GPU. NCCL refuses two ranks on one GPU,
   so the check tries NCCL and then gloo and records which one ran.
3. ``reference``: the shipped config reference for all 600 epochs, timed end to end.
4. ``denoise``: the default denoiser on the GPU (``aekit train --model unet --noise gaussian:0.2 --size 32x32
   --split subject --max-time M``), epochs reached and its end-of-run comparison on unseen people.
5. ``seeds``: N seeds each of the shipped configs reference and reference-sparse for all their
   epochs, run concurrently on the one GPU (the models are tiny): epoch-1 and final loss, code mean.
6. ``throughput``: benchmarks/throughput.py on the GPU (float32 eager, bf16, compile) beside the
   naive PyTorch loop of the same run.

    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/gpu_check.py           # on a GPU
    SCIKIT_LEARN_DATA=../shared/data/scikit_learn_data python benchmarks/gpu_check.py --tiny    # CPU dry run

``--tiny`` runs every step on the CPU with a few epochs and two seeds: it proves the script end to
end before the GPU time is spent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from aekit.run_folder import RunFolder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_line, save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PY = sys.executable


def sh(cmd: list[str], timeout: float, env: dict | None = None) -> dict:
    """Run ``cmd``; its return code, seconds and the tail of its output (never raises)."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, **(env or {})})
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    except OSError as e:  # the program is missing
        rc, out = "not run", str(e)
    return {"cmd": " ".join(cmd), "rc": rc, "seconds": round(time.perf_counter() - t0, 1), "tail": out[-1500:]}


def aekit_cmd(*args: str) -> list[str]:
    return [PY, "-m", "aekit", *args]


def step_tests(a) -> dict:
    result = {"pytest_cuda": sh([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests"],
                                timeout=a.budget(120))}
    modes = []
    for amp in ("off",) if a.tiny else ("off", "bf16", "fp16"):  # the CPU dry run: one mode (bf16 is emulated there)
        for compile_ in (False,) if a.tiny else (False, True):
            out = a.work / f"mode-{amp}-{'compile' if compile_ else 'eager'}"
            r = sh(aekit_cmd("train", "--config", "fast", "--device", a.device, "--amp", amp,
                             "--compile" if compile_ else "--no-compile", "--epochs", str(a.short), "--no-progress",
                             "--no-compare", "--out", str(out), "--overwrite"), timeout=a.budget(90))
            metrics = RunFolder(out).metrics()
            modes.append({"amp": amp, "compile": compile_, "rc": r["rc"], "seconds": r["seconds"],
                          "final_loss": (metrics or {}).get("train", {}).get("loss_per_sample"),
                          "precision": (metrics or {}).get("precision"), **({"tail": r["tail"]} if r["rc"] else {})})
    result["modes"] = modes
    return result


def step_distributed(a) -> dict:
    tries = []
    for backend in ("nccl", "gloo"):
        out = a.work / f"ddp-{backend}"
        env = {"AEKIT_DIST_BACKEND": backend}
        r = sh([PY, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "aekit", "train", "--config",
                "fast", "--device", a.device, "--epochs", str(a.short), "--no-progress", "--no-compare",
                "--out", str(out), "--overwrite"], timeout=a.budget(120), env=env)
        tries.append({"backend": backend, **r})
        if r["rc"] == 0:
            break
    return {"tries": tries, "ran_with": next((t["backend"] for t in tries if t["rc"] == 0), None)}


def step_throughput(a) -> dict:
    rows = []
    for i, extra in enumerate(([],) if a.tiny else ([], ["--amp", "bf16"], ["--compile"])):
        r = sh([PY, "benchmarks/throughput.py", "--device", a.device, "--no-keras", "--rounds", str(a.rounds),
                "--json", str(a.work / f"throughput-{i}.json"),
                "--epochs", str(a.short), *(["--amp", "off"] if not extra else extra)], timeout=a.budget(150))
        rows.append({"mode": " ".join(extra) or "fp32 eager", **r})
    return {"rows": rows}


def step_reference(a) -> dict:
    out = a.work / "reference"
    r = sh(aekit_cmd("train", "--config", "reference", "--device", a.device, "--epochs",
                     str(a.reference_epochs), "--no-progress", "--out", str(out), "--overwrite"),
           timeout=a.budget(240))
    return {"epochs": a.reference_epochs, **r, **_losses(out)}


def step_denoise(a) -> dict:
    """The default denoiser trained for a wall-clock budget: how far more compute takes it on unseen people."""
    out = a.work / "denoise"
    minutes = 0.2 if a.tiny else a.denoise_minutes
    r = sh(aekit_cmd("train", "--model", "unet", "--noise", "gaussian:0.2", "--size", "32x32", "--split", "subject",
                     "--device", a.device, "--max-time", str(minutes), "--no-progress", "--out", str(out), "--overwrite"),
           timeout=a.budget(minutes * 60 + 90))
    folder = RunFolder(out)
    metrics, hist = folder.metrics() or {}, folder.history() or []
    return {"max_time_minutes": minutes, **r, "epochs": int(hist[-1]["epoch"]) if hist else None,
            "selection": metrics.get("selection"), "comparison": metrics.get("comparison")}


def step_seeds(a) -> dict:
    """All seeds of both references at once (one process each), then their losses and code means."""
    procs = []
    for config in ("reference", "reference-sparse"):
        for seed in range(a.seeds):
            out = a.work / f"seed-{config}-{seed}"
            cmd = aekit_cmd("train", "--config", config, "--device", a.device, "--seed",
                            str(1000 + seed), "--threads", "1", "--no-progress", "--out", str(out), "--overwrite",
                            *(["--epochs", str(a.seed_epochs)] if a.seed_epochs else []))
            procs.append((config, seed, out, subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                                              stderr=subprocess.PIPE, text=True)))
    deadline = time.monotonic() + a.budget(300)
    rows = []
    for config, seed, out, p in procs:
        try:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            rc = p.returncode
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            rc = "timeout"
        rows.append({"config": config, "seed": 1000 + seed, "rc": rc, **_losses(out),
                     **({"tail": (err or "")[-800:]} if rc else {})})
    return {"rows": rows}


def _losses(out: Path) -> dict:
    """Epoch-1 and final training loss and code mean of a finished run folder (empty when missing)."""
    hist = RunFolder(out).history()
    if not hist:
        return {}
    return {"epoch1_loss": hist[0]["loss_per_sample"], "epoch1_code_mean": hist[0]["code_mean"],
            "final_epoch": int(hist[-1]["epoch"]), "final_loss": hist[-1]["loss_per_sample"],
            "final_code_mean": hist[-1]["code_mean"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="CPU dry run: few epochs, two seeds")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=10.0, help="the whole check's budget")
    ap.add_argument("--denoise-minutes", type=float, default=1.5, help="the denoise step's training budget")
    ap.add_argument("--steps", default="tests,distributed,reference,denoise,seeds,throughput")
    a = ap.parse_args()
    a.device = "cpu" if a.tiny else "cuda"
    if not a.tiny and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); --tiny runs it on the CPU")
    a.reference_epochs, a.seed_epochs, a.rounds, a.short = (3, 3, 1, 1) if a.tiny else (600, None, 3, 2)
    if a.tiny:
        a.seeds = min(a.seeds, 2)
    out_root = Path(os.environ["OUT"]) if os.environ.get("OUT") else HERE
    out_root.mkdir(parents=True, exist_ok=True)
    a.work = Path(os.environ.get("AEKIT_GPU_CHECK_RUNS", ROOT / "runs" / "gpu-check"))
    a.work.mkdir(parents=True, exist_ok=True)
    end = time.monotonic() + a.minutes * 60
    a.budget = lambda cap: max(10.0, min(cap, end - time.monotonic()))  # noqa: E731

    print(machine_line(a.device), flush=True)
    results = {}
    for name in a.steps.split(","):
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        results[name] = globals()[f"step_{name}"](a)
        results[name]["step_seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(results[name], default=str)[:2000], flush=True)
        save("gpu_check", settings={k: v for k, v in vars(a).items() if k != "budget"}, rows=results,
             device=a.device, path=out_root / "gpu_check.json")  # after every step: a timeout keeps the rest


if __name__ == "__main__":
    main()
