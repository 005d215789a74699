"""One plain training loop, and evaluation on held-out images.

The loop follows the reference: each epoch shuffles the training set, takes batches in order,
and reports the *average loss per sample* = the epoch's summed per-sample losses / the number of
training images, plus the mean code activation. With ``reference_loop`` it reproduces the
reference's ``for i in range(0, N - batch, batch)``, which skips the last batch (7 batches of 50
on 400 images) yet still divides by N.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

from .config import TrainConfig
from .data import epoch_batches
from .errors import ConfigError
from .metrics import code_small, image_metrics


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, then Apple's MPS, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r}: not a device (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: MPS is not available on this machine")
    return dev


AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_for(amp: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the autocast context of ``train.amp`` on ``device`` (a no-op for 'off').

    Refuses, as a ConfigError, a precision that this torch cannot autocast on this device (rather than
    training in fp32 while claiming mixed precision)."""
    if amp not in AMP_DTYPES:
        raise ConfigError(f"train.amp {amp!r} is not one of {', '.join(map(repr, AMP_DTYPES))}")
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return contextlib.nullcontext
    if amp == "fp16" and not hasattr(torch.amp, "GradScaler"):
        raise ConfigError(f"train.amp fp16 needs torch >= 2.3 (torch.amp.GradScaler); this is {torch.__version__}")
    with warnings.catch_warnings(record=True) as caught:  # torch warns, and disables itself, when unsupported
        warnings.simplefilter("always")
        try:
            probe = torch.autocast(device_type=device.type, dtype=dtype)
        except RuntimeError as e:  # e.g. bf16 on a GPU older than Ampere
            raise ConfigError(f"train.amp {amp}: {str(e).strip().splitlines()[0]}") from None
    if not getattr(probe, "_enabled", True) or any("isabl" in str(w.message) for w in caught):
        raise ConfigError(
            f"train.amp {amp}: this torch ({torch.__version__}) cannot autocast to {amp} on {device.type}"
            + (" (use bf16)" if amp == "fp16" else "")
        )
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def batch_starts(n: int, batch_size: int, reference_loop: bool) -> range:
    """Start index of every batch of an epoch."""
    if reference_loop:
        return range(0, n - batch_size, batch_size)
    return range(0, n, batch_size)


# prepare(clean_batch, generator) -> (model input, loss target): where corruption (denoising) and
# resizing to the working size happen. The default feeds the clean batch as both.
Prepare = Callable[[torch.Tensor, torch.Generator], "tuple[torch.Tensor, torch.Tensor]"]

COLLAPSE_STD = 1e-4  # mean per-unit std of the code across a batch below which the code has collapsed
# (measured on the reference model: collapsed runs fall below 4e-6 by epoch 5, runs that recover stay above 8e-4)


def identity_prepare(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return x, x


@dataclass
class EpochStats:
    epoch: int
    loss_per_sample: float  # summed per-sample losses / number of training images
    code_mean: float  # mean over batches of the batch's mean code activation
    code_std: float  # mean over batches of the per-unit std of the code across the batch (~0: collapsed)
    seconds: float  # wall time of the epoch's training steps
    heldout: dict[str, float] = field(default_factory=dict)  # loss_per_sample, code_mean, mse, psnr, ssim
    code_small: float | None = None  # fraction of code values with |value| < metrics.SMALL_ACTIVATION (0.1)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    images: torch.Tensor | torch.utils.data.Dataset,
    *,
    prepare: Prepare | None = None,
    seed: int = 0,
    batch_size: int = 200,
) -> dict[str, float]:
    """Loss per sample, code mean, MSE, PSNR and SSIM of ``model`` on ``images``.

    With ``prepare`` (e.g. corruption then resizing) the model sees the prepared input and is scored
    against the prepared target; its generator is seeded with ``seed``, so every call sees the same
    inputs. ``images`` may be a Dataset (streaming); metrics are accumulated batch by batch.
    """
    corrupted = prepare is not None
    prepare = prepare or identity_prepare
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    total, code_sum, n_codes, sums, small = 0.0, 0.0, 0, {}, 0.0
    n = len(images)
    batches = [torch.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    for batch in epoch_batches(images, batches):
        x, target = prepare(batch.to(device), gen)
        out = model(x, target)
        total += float(out.per_sample.sum())
        code_sum += float(out.code.sum())
        small += float(code_small(out.code)) * out.code.numel()
        n_codes += out.code.numel()
        scored = {"": out.recon}
        if corrupted:  # the corrupted input itself, scored the same way: what the model improves on
            scored["input_"] = x
        for prefix, y in scored.items():
            for k, v in image_metrics(y.float().cpu(), target.float().cpu()).items():  # batch means
                sums[prefix + k] = sums.get(prefix + k, 0.0) + v * len(x)
    model.train(was_training)
    return {
        "loss_per_sample": total / n,
        "code_mean": code_sum / n_codes,
        "code_small": small / n_codes,
        **{k: v / n for k, v in sums.items()},
    }


class History(list):
    """The records of every epoch so far; ``stopped`` says why training ended early, if it did."""

    stopped: str | None = None


@dataclass
class Distributed:
    """This process's place in a torch.distributed job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> "Distributed":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    def sum(self, *values: torch.Tensor) -> list[torch.Tensor]:
        """All-reduce (sum) the values across processes; unchanged on one process."""
        if self.world == 1:
            return list(values)
        import torch.distributed as dist

        packed = torch.stack([v.reshape(()) for v in values])
        dist.all_reduce(packed)
        return list(packed.unbind())

    def agree(self, flag: bool, device: torch.device) -> bool:
        """True on every process when it is true on any (for decisions that depend on a clock)."""
        if self.world == 1:
            return bool(flag)
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


def make_adam(params, config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with the config's hyper-parameters (``params``: parameters, or parameter groups with
    their own "lr"), fused (one pass over each parameter per step) where
    this torch has the fused kernel for the device (CPU and MPS: torch >= 2.4), else the default."""
    params = list(params)
    kwargs = dict(lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)
    if device.type in ("cpu", "cuda", "mps"):
        try:
            return torch.optim.Adam(params, fused=True, **kwargs)
        except RuntimeError:  # older torch: no fused kernel for this device
            pass
    return torch.optim.Adam(params, **kwargs)


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rate at optimisation step ``step`` (0-based)."""
    warm = config.warmup_epochs * steps_per_epoch
    if warm and step < warm:
        return (step + 1) / warm
    if config.schedule == "cosine":
        total = max(config.epochs * steps_per_epoch - warm, 1)
        return 0.5 * (1 + math.cos(math.pi * min(step - warm, total) / total))
    return 1.0


def fit(
    model: torch.nn.Module,
    train_images: torch.Tensor | torch.utils.data.Dataset,
    config: TrainConfig,
    *,
    seed: int = 1000,
    test_images: torch.Tensor | torch.utils.data.Dataset | None = None,
    prepare: Prepare | None = None,
    on_epoch: Callable[[EpochStats, Callable[[], dict]], None] | Callable[[EpochStats], None] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    state: dict | None = None,
) -> History:
    """Train ``model`` on ``train_images`` (N, C, H, W) in [0, 1]; returns one record per epoch.

    ``prepare(batch, generator)`` turns each clean batch into (model input, loss target); the
    generator is seeded from ``seed``, like the shuffling, so corruption is reproducible.
    Held-out metrics on ``test_images`` are computed every ``config.eval_every`` epochs and
    after the last one. ``on_epoch`` is the one hook: it sees each epoch's record and, if it takes
    two arguments, a function returning the full training state (for checkpoints). ``state`` (such a
    dict) continues a run exactly where it stopped.

    Under torch.distributed (e.g. ``torchrun``) every process takes its share of each global batch
    (``batch_size / world size`` samples), gradients are averaged by DistributedDataParallel and
    rescaled so that a step equals the single-process step on the whole batch; losses and code
    statistics are summed across processes.

    Either set of images may be a Dataset of (C, H, W) items (streaming from disk): its
    DataLoader follows the same seeded order, so a run is the same either way.
    """
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    eval_prepare = prepare  # None: held-out images are scored as they are
    prepare = prepare or identity_prepare
    dist = Distributed.current()
    n = len(train_images)
    starts = batch_starts(n, config.batch_size, config.reference_loop)
    if config.batch_size > n or len(starts) == 0:
        raise ConfigError(
            f"train.batch_size {config.batch_size} is larger than the {n} training images"
            + (" (the reference loop needs more than one batch)" if config.reference_loop else "")
        )
    if config.batch_size < dist.world:
        raise ConfigError(
            f"train.batch_size {config.batch_size} is smaller than the {dist.world} processes: "
            "every process needs at least one sample of each batch"
        )
    if dist.world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # this process's GPU (LOCAL_RANK)
    autocast = autocast_for(config.amp, device)
    model.to(device).train()
    if wants_data_init(model, config) and state is None:  # before DDP wraps the model (it broadcasts rank 0's weights)
        data_init(model, train_images, prepare=prepare, seed=seed, device=device, hflip=config.hflip)
    net = model  # the module of the training forward; `model` itself is saved, evaluated and checkpointed
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:  # the DDP module itself, as PyTorch recommends (DDPOptimizer splits at its buckets)
        net = torch.compile(net)
    x_all = train_images.to(device) if isinstance(train_images, torch.Tensor) else train_images
    groups = model.param_groups(config.lr) if hasattr(model, "param_groups") else model.parameters()
    opt = make_adam(groups, config, device)
    steps_per_epoch = len(starts)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(config, step, steps_per_epoch))
    # fp16: scale the loss so small gradients survive, and skip steps whose gradients overflow
    scaler = torch.amp.GradScaler(device.type) if config.amp == "fp16" else None
    shuffle = torch.Generator().manual_seed(seed)  # the same order on every process
    noise = torch.Generator(device=device).manual_seed(seed + 1 + 7919 * dist.rank)  # differs per process
    sum_loss = getattr(model, "config", None) is not None and model.config.loss != "mse"
    history = History()
    best, since_best, first_epoch = math.inf, 0, 1
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):  # checkpoints without one start a fresh scaler
            scaler.load_state_dict(state["scaler"])
        shuffle.set_state(state["shuffle_rng"])
        if len(state["noise_rng"]) != dist.world:
            raise ConfigError(
                f"the checkpoint of epoch {state['epoch']} was written by {len(state['noise_rng'])} process(es); "
                f"resume it with as many (--nproc), not {dist.world}"
            )
        noise.set_state(state["noise_rng"][dist.rank].to(noise.get_state().device))
        torch.set_rng_state(state["torch_rng"])
        history.extend(EpochStats(**h) for h in state["history"])
        best, since_best = float(state["best"]), int(state["since_best"])
        first_epoch = int(state["epoch"]) + 1
    print_line = log or (lambda s: print(s, flush=True))
    if dist.rank != 0:
        print_line = lambda s: None  # noqa: E731 -- only rank 0 speaks
    warned_collapse = False

    def snapshot() -> dict:
        """Everything needed to continue exactly (tensors and plain values: loads with weights_only)."""
        noise_states = [noise.get_state().cpu()]
        if dist.world > 1:
            import torch.distributed as tdist

            mine = noise_states[0].to(device)  # NCCL gathers CUDA tensors only
            gathered = [torch.empty_like(mine) for _ in range(dist.world)]
            tdist.all_gather(gathered, mine)
            noise_states = [g.cpu() for g in gathered]
        return {
            "epoch": history[-1].epoch,
            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "shuffle_rng": shuffle.get_state(),
            "noise_rng": noise_states,
            "torch_rng": torch.get_rng_state(),
            "history": [vars(h) for h in history],
            "best": best,
            "since_best": since_best,
            **({"scaler": scaler.state_dict()} if scaler is not None else {}),
        }

    bar = None
    if progress and dist.rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=first_epoch - 1, unit="epoch", file=sys.stderr,
                   dynamic_ncols=True, leave=False)
        print_line = log or (lambda s: tqdm.write(s, file=sys.stdout))

    t_start = time.perf_counter()
    for epoch in range(first_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=shuffle).to(device)
        loss_sum = torch.zeros((), device=device)
        code_sum = torch.zeros((), device=device)
        std_sum = torch.zeros((), device=device)
        small_sum = torch.zeros((), device=device)
        batches = [order[start : start + config.batch_size] for start in starts]
        sizes = [len(b) for b in batches]  # of the whole batch, whatever share of it this process takes
        if dist.world > 1:
            batches = [b.tensor_split(dist.world)[dist.rank] for b in batches]
        for x, size in zip(epoch_batches(x_all, batches), sizes):
            x = x.to(device)
            if config.hflip:
                flip = torch.rand(len(x), generator=noise, device=noise.device).to(device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            if config.shift:
                x = random_shift(x, config.shift, noise)
            x, target = prepare(x, noise)
            with autocast():  # train.amp: forward and loss in bf16/fp16 where safe; a no-op when off
                out = net(x, target)
            opt.zero_grad(set_to_none=True)
            # DDP averages gradients over processes; a summed loss must be summed over them too
            loss = (out.loss * dist.world if sum_loss and dist.world > 1 else out.loss).float()
            if scaler is None:
                loss.backward()
                opt.step()
                sched.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)  # unscales; skips the step when a gradient is inf or nan
                scaler.update()
                # the schedule follows the step count, also when the scaler skipped a step (overflow)
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
                    sched.step()
            code = out.code.detach().float()  # accumulated in float32, whatever the autocast dtype
            share = len(code) / size  # 1 on one process: the shares' sum over processes is the batch mean
            loss_sum += out.per_sample.detach().float().sum()
            if len(code):
                code_sum += code.mean() * share
                small_sum += code_small(code) * share
            if len(code) > 1:
                std_sum += code.std(0).mean() * share
        loss_sum, code_sum, std_sum, small_sum = dist.sum(loss_sum, code_sum, std_sum, small_sum)
        stats = EpochStats(
            epoch=epoch,
            loss_per_sample=float(loss_sum) / n,  # one host sync per epoch
            code_mean=float(code_sum) / len(starts),
            code_std=float(std_sum) / len(starts),
            seconds=time.perf_counter() - t0,
            code_small=float(small_sum) / len(starts),
        )
        if not math.isfinite(stats.loss_per_sample):
            raise FloatingPointError(f"epoch {epoch}: the loss is {stats.loss_per_sample}; lower --lr")
        out_of_time = dist.agree(
            bool(config.max_minutes) and (time.perf_counter() - t_start) / 60 >= config.max_minutes, device
        )
        last = epoch == config.epochs or bool(out_of_time)
        if test_images is not None and len(test_images) and (
            last or (config.eval_every and epoch % config.eval_every == 0)
        ):
            stats.heldout = evaluate(model, test_images, prepare=eval_prepare, seed=seed + 2)
            if stats.heldout["loss_per_sample"] < best:
                best, since_best = stats.heldout["loss_per_sample"], 0
            else:
                since_best += 1
        history.append(stats)
        print_line(format_epoch(stats))
        if epoch >= 5 and stats.code_std < COLLAPSE_STD and not warned_collapse:
            warned_collapse = True
            print_line(
                f"warning: the code has collapsed (epoch {epoch}: every image gets almost the same code, "
                f"mean per-unit spread {stats.code_std:.1e}), so the decoder can only learn the mean image; "
                "this happens to the reference model in about 1 run in 5: try another --seed, or --data-init "
                "(calibrates the code layer on the images first)"
            )
        if out_of_time:
            history.stopped = f"time limit of {config.max_minutes:g} minutes reached after epoch {epoch}"
        elif config.early_stop and since_best >= config.early_stop:
            history.stopped = (
                f"early stop after epoch {epoch}: no better held-out loss in {since_best} evaluations"
            )
        if bar is not None:
            bar.set_postfix(loss=f"{stats.loss_per_sample:.4f}", refresh=False)
            bar.update(1)
        if on_epoch is not None:
            _call_hook(on_epoch, stats, snapshot, dist, device)
        if history.stopped:
            print_line(history.stopped)
            break
    if bar is not None:
        bar.close()
    return history


DATA_INIT_IMAGES = 256  # training images the data-dependent initialisation looks at


def random_shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Move each image of ``x`` (B, C, H, W) by its own random whole-pixel offset in [-pixels, pixels]
    along each axis (``train.shift``); the pixels that come in repeat the edge."""
    b, _, h, w = x.shape
    dy, dx = (torch.randint(-pixels, pixels + 1, (2, b), generator=generator, device=generator.device)
              .to(x.device))
    rows = (torch.arange(h, device=x.device) - dy[:, None]).clamp(0, h - 1)  # (B, H): source row of each row
    cols = (torch.arange(w, device=x.device) - dx[:, None]).clamp(0, w - 1)
    return x[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def wants_data_init(model: torch.nn.Module, config: TrainConfig) -> bool:
    """Whether fit() initialises ``model`` from the data: ``train.data_init``, or a model that
    always starts that way (``needs_data_init``, e.g. the PCA start of ``hybrid``)."""
    return bool(config.data_init or getattr(model, "needs_data_init", False))


@torch.no_grad()
def data_init(model: torch.nn.Module, images, *, prepare: "Prepare | None" = None, seed: int = 1000,
              device: torch.device | str = "cpu", hflip: bool = False) -> bool:
    """The data-dependent initialisation that fit() runs before its first epoch: ``model.data_init``
    on up to ``model.data_init_images`` (default DATA_INIT_IMAGES) training images, chosen and
    prepared (e.g. corrupted) with their own generator so that the run's shuffling and noise streams
    are unchanged; with ``hflip`` their mirror images join them (the distribution training sees).
    Public so that a caller can score the starting point; returns False for models without one."""
    init = getattr(model, "data_init", None)
    if init is None:
        return False
    device = torch.device(device)
    limit = getattr(model, "data_init_images", DATA_INIT_IMAGES)
    g = torch.Generator().manual_seed(seed + 3)
    pick = torch.randperm(len(images), generator=g)[:limit].sort().values
    x = next(iter(epoch_batches(images, [pick]))).to(device)
    x, target = (prepare or identity_prepare)(x, torch.Generator(device=device).manual_seed(seed + 3))
    if hflip:
        x, target = torch.cat([x, x.flip(-1)]), torch.cat([target, target.flip(-1)])
    was_training = model.training
    model.eval()
    try:
        return bool(init(x, target))
    finally:
        model.train(was_training)


def _call_hook(hook: Callable, stats: EpochStats, snapshot: Callable[[], dict], dist: "Distributed",
               device: torch.device) -> None:
    import inspect

    try:
        takes_two = len(inspect.signature(hook).parameters) >= 2
    except (TypeError, ValueError):
        takes_two = False
    if takes_two:
        snapshot.agree = lambda flag: dist.agree(flag, device)  # for clock-based checkpoint decisions
        hook(stats, snapshot)
    else:
        hook(stats)


def format_epoch(s: EpochStats) -> str:
    """The reference's line, plus held-out figures when they were computed."""
    line = f"Epoch {s.epoch}) Average loss per sample: {s.loss_per_sample:.4f} (Code mean: {s.code_mean:.4f})"
    if s.heldout:
        h = s.heldout
        line += (
            f"  [held-out: loss per sample {h['loss_per_sample']:.4f}, "
            f"PSNR {h['psnr']:.2f} dB, SSIM {h['ssim']:.4f}]"
        )
    return line
