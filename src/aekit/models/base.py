"""What every autoencoder shares: its config fields, the output the trainer reads, and the contract.

A model computes its own loss: ``model(x, target)`` returns one :class:`AEOutput`. The trainer and
the tools read only what :class:`Autoencoder` declares here (every hook has a default), so an
architecture overrides just what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..data import MAX_SIDE
from ..typed import option
from .losses import LOSSES, LossName, add_sparsity, batch_loss, is_sum, reconstruction_loss


# Bounds far above any sensible model, so that a small hand-edited or downloaded file (model.json, a config) cannot
# make aekit build millions of layers or allocate more than any machine holds before its weights are compared
MAX_WIDTH = 65536  # channels of a layer, units of a hidden layer
MAX_LAYERS = 64  # layers in a list of widths, blocks or convolutions per stage, a kernel's side
MAX_CODE = 2**24  # values in a code


@dataclass
class ModelConfig:
    """Fields every architecture has; each architecture subclasses it with its own."""

    name: str = option("conv", "registered architecture (`aekit models` lists them)", flag="--model", metavar="NAME")
    in_channels: int = option(1, "image channels: 1 grayscale, 3 RGB (set from the data's channels)")
    input_size: tuple[int, int] = option((32, 32), "(height, width) the model works at (data.size sets it; at most "
                                         f"{MAX_SIDE} a side)")
    code_length: int = option(256, f"length of the code (latent vector; at most {MAX_CODE})", flag="--code-length",
                              metavar="N")
    loss: LossName = option("l2", "reconstruction loss: " + "; ".join(f"{k}: {v.describe}" for k, v in LOSSES.items()),
                            flag="--loss")
    sparsity: float = option(0.0, "sparse code: add SPARSITY x each sample's L1 norm of the code to its loss "
                             "(the book: 0.01)", flag="--sparsity", metavar="ALPHA")

    def check(self) -> str | None:
        """Why this configuration cannot build a model, or None (architectures add their rules)."""
        return None

    @classmethod
    def derived(cls, raw: dict) -> dict:
        """A [model] table with the values its other keys decide filled in where it is silent (none here)."""
        return raw

    def common_problems(self) -> list[tuple[str, str]]:
        """(key, why) for each broken rule that every model shares: config validation and create_model check
        them before :meth:`check`."""
        rules = [(self.in_channels in (1, 3), "model.in_channels", f"must be 1 or 3, got {self.in_channels}"),
                 (self.code_length >= 1, "model.code_length", f"must be at least 1, got {self.code_length}"),
                 (self.code_length <= MAX_CODE, "model.code_length", f"must be at most {MAX_CODE}, got {self.code_length}"),
                 (min(self.input_size) >= 1, "model.input_size", f"must be positive, got {self.input_size}"),
                 (max(self.input_size) <= MAX_SIDE, "model.input_size",
                  f"must be at most {MAX_SIDE} a side, got {self.input_size}"),
                 (self.sparsity >= 0, "model.sparsity", f"must be 0 or more, got {self.sparsity}")]
        return [(key, why) for ok, key, why in rules if not ok]


def first_broken(*rules: tuple[bool, str]) -> str | None:
    """The message of the first (ok, message) rule that is not ok, or None."""
    return next((why for ok, why in rules if not ok), None)


@dataclass
class AEOutput:
    loss: torch.Tensor  # scalar that the optimiser minimises (the batch loss in the config's unit)
    per_sample: torch.Tensor  # (B,) each sample's loss in the same unit; sum / N = "loss per sample"
    recon: torch.Tensor  # (B, C, H, W) reconstruction in [0, 1]
    code: torch.Tensor  # (B, code_length) the code
    parts: dict[str, torch.Tensor] = field(default_factory=dict)  # named (B,) loss terms


class Autoencoder(nn.Module):
    """Base class: subclasses define ``encode`` and ``decode`` (or ``forward``); the loss is computed here.

    The contract the trainer and the tools rely on, with its defaults:

    - ``decodes_codes``: ``decode(code)`` works on a code alone (False when the decoder also reads
      skip connections);
    - ``prior``: the distribution new codes are drawn from (``"normal"`` for the VAE), or None;
    - ``any_size``: the model runs at any image size (fully convolutional), so a run without a
      ``data.size`` works at the images' own size; such a model pads each side to a multiple of
      ``factor`` (its total down-sampling) and crops back, with no branch on the size, so an exported
      file keeps height and width dynamic (sides above ``factor``);
    - ``needs_data_init``: the trainer always runs :meth:`data_init` before the first step (else
      only with ``train.data_init``); ``data_init_images``: how many training images it looks at;
    - :meth:`param_groups`: the optimiser's parameter groups and their learning rates;
    - ``train_defaults``: training settings (``[train]`` fields) this architecture trains best with,
      used where a config or the command line does not set them;
    - ``preprocess``: how images reach the model's working size (``aekit.load`` sets it from model.json);
    - ``channels_last``: :func:`create_model` stores its convolution weights channels-last (NHWC), where
      that was measured faster (benchmarks/README.md#performance); the math is the same;
    - ``float32_because``: why ``train.amp = "auto"`` keeps this model in float32 (bf16 measured worse), or None.
    """

    registered_name: str = ""
    decodes_codes: bool = True
    prior: str | None = None
    any_size: bool = False
    factor: int = 1
    needs_data_init: bool = False
    data_init_images: int = 256
    train_defaults: dict = {}
    channels_last: bool = False
    float32_because: str | None = None

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.preprocess: dict = {}

    @property
    def loss_is_sum(self) -> bool:
        """Whether the batch loss is a sum over the batch (l2, bce) rather than a mean (mse, psnr)."""
        return is_sum(self.config.loss)

    def param_groups(self, lr: float) -> list[dict]:
        """The optimiser's parameter groups, each with its learning rate (default: one group at ``lr``)."""
        return [{"params": list(self.parameters()), "lr": lr}]

    def code_size(self, height: int, width: int) -> int:
        """Length of the code of one (C, height, width) image."""
        return self.config.code_length

    @torch.no_grad()
    def data_init(self, x: torch.Tensor, target: torch.Tensor | None = None) -> bool:
        """Data-dependent initialisation from a batch of model inputs ``x`` and their loss targets
        ``target``; returns False when the architecture has none."""
        return False

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, code_length)
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # (B, code_length) -> (B, C, H, W)
        raise NotImplementedError

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> AEOutput:
        """Reconstruct ``x``; the loss compares with ``target`` (default ``x``; clean images when denoising)."""
        target = x if target is None else target
        code = self.encode(x)
        recon = self.decode(code)
        rec = reconstruction_loss(recon, target, self.config.loss)
        return self.output(recon, code, rec, {"reconstruction": rec})

    def output(self, recon: torch.Tensor, code: torch.Tensor, per_sample: torch.Tensor,
               parts: dict[str, torch.Tensor]) -> AEOutput:
        """The AEOutput of a forward pass: ``per_sample`` (B,) plus the sparsity penalty on ``code``,
        and the batch loss in the loss's convention (a sum, or a mean for mse and psnr)."""
        per_sample = add_sparsity(per_sample, code, self.config.sparsity, parts)
        return AEOutput(
            loss=batch_loss(per_sample, self.config.loss),
            per_sample=per_sample,
            recon=recon,
            code=code.flatten(1),
            parts=parts,
        )
