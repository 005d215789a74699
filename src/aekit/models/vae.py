"""A convolutional variational autoencoder (docs/reference-experiments.md, section 4, the book's VAE).

Default configuration, grayscale 32 x 32 input, a Gaussian latent of 16 values:

    encoder  conv 32 s2 -> conv 64 s2 -> conv 128           (3x3, 'same', ReLU)   (B, 128, 8, 8)
             flatten -> dense 16 (mu), dense 16 (log variance)
    sample   z = mu + exp(log_var / 2) * eps, eps ~ N(0, I)  (training only; eval mode uses mu)
    decoder  dense 16 -> 16x8x8 -> tconv 128 s2 -> tconv 128 s2 -> tconv 32 (ReLU) -> tconv 1 (sigmoid)

The book's VAE (the shipped config reference-vae) has a latent of 1024 values reshaped to 16x8x8 directly
(``decoder_input = "reshape"``). That latent is a map of independent local features: samples from the
prior decode to textured noise, not faces, and a run escapes the all-prior start (no active unit)
only after tens of epochs. A small latent projected by a dense layer is global: its samples are faces
(benchmarks/README.md#the-vae).

The loss of one sample is its reconstruction loss (``bce``: the summed sigmoid cross-entropy,
computed from the logits; or ``l2`` / ``mse``) plus ``beta`` x KL(q(z|x) || N(0, I)); in training the
KL's weight rises linearly from 0 over the first ``kl_warmup`` steps (a counter saved with the weights),
against a slow start; evaluation always uses the whole ``beta``, so held-out losses are -ELBO.
``AEOutput.code`` is the mean mu; the noise eps comes from torch's global generator, which
``aekit.train`` seeds (and checkpoints), so training is reproducible from the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..typed import option
from .base import MAX_LAYERS, MAX_WIDTH, AEOutput, Autoencoder, ModelConfig
from .conv import check_conv
from .layers import CodeToMap, DecoderInput, Linear, SameConv2d, SameConvTranspose2d, init_tf_defaults
from .losses import LossName, reconstruction_loss
from .registry import register


@dataclass
class VAEConfig(ModelConfig):
    name: str = option("vae", "registered architecture")
    code_length: int = option(16, "latent values (the book: 1024 = 32 x 32)")
    loss: LossName = option("bce", "reconstruction: bce (summed sigmoid cross-entropy, the book's)")
    beta: float = option(1.0, "vae: weight of the KL divergence (1: the plain VAE; > 1: a beta-VAE)",
                         flag="--beta", metavar="B")
    encoder_channels: tuple[int, ...] = option((32, 64, 128), "conv filters, one per encoder layer (at most "
                                               f"{MAX_LAYERS} layers of {MAX_WIDTH})")
    encoder_strides: tuple[int, ...] = option((2, 2, 1), "stride of each encoder conv")
    decoder_channels: tuple[int, ...] = option((128, 128, 32), "transposed-conv filters before the output layer "
                                               f"(at most {MAX_LAYERS} layers of {MAX_WIDTH})")
    decoder_strides: tuple[int, ...] = option((2, 2, 1), "stride of each of those (the output layer has stride 1)")
    decoder_input: DecoderInput = option("auto", "how the latent becomes the decoder's first feature map: reshape "
                                         "(the book's), dense (a linear layer), auto: reshape when it fits, else dense",
                                         legacy="auto", since="2026-12-01T22:54")
    start_channels: int = option(16, "channels of the decoder's first feature map when the latent is projected to it "
                                 f"(at most {MAX_WIDTH})")
    kl_warmup: int = option(300, "training steps over which the KL weight rises linearly from 0 to beta (against a "
                            "slow start); 0: the whole beta from the first step (the book)")

    def check(self) -> str | None:
        """Why this configuration cannot build a model, or None."""
        if self.beta < 0:
            return f"model.beta must be 0 or more, got {self.beta}"
        if self.kl_warmup < 0:
            return f"model.kl_warmup must be 0 or more (training steps; 0: off), got {self.kl_warmup}"
        if not 1 <= self.start_channels <= MAX_WIDTH:
            return f"model.start_channels must be between 1 and {MAX_WIDTH}, got {self.start_channels}"
        return check_conv(self)  # the conv model's rules: strides divide the size, a reshaped code fits


@register("vae", VAEConfig)
class VAE(Autoencoder):
    """Convolutional variational autoencoder: Gaussian latent, reparameterisation, reconstruction + beta x KL."""

    prior = "normal"  # codes drawn from N(0, I) decode to new images (aekit sample)
    # about 10 minutes on a 2-core CPU; the validation -ELBO still creeps down after 150 epochs, by less
    # than its epoch-to-epoch noise, so a patience of 20 stopped it early. No flips: a 16-value latent
    # underfits the faces, and mirror images spend its capacity on faces the test set does not hold
    # (held-out: 665.9 nats and 23.00 dB without flips, 666.4 and 22.54 with them; benchmarks/README.md#the-vae)
    train_defaults = {"epochs": 200, "early_stop": 50, "hflip": False}

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        c = config
        h, w = c.input_size
        layers: list[nn.Module] = []
        cin = c.in_channels
        for cout, s in zip(c.encoder_channels, c.encoder_strides):
            layers += [SameConv2d(cin, cout, 3, s), nn.ReLU()]
            cin = cout
        self.encoder = nn.Sequential(*layers)  # (B, C, 32, 32) -> (B, 128, 8, 8) with the default layers
        down = math.prod(c.encoder_strides)
        features = cin * (h // down) * (w // down)
        self.mu = Linear(features, c.code_length)  # (B, 8192) -> (B, code_length), 16 by default
        self.log_var = Linear(features, c.code_length)  # (B, 8192) -> (B, code_length)

        self.to_map = CodeToMap(c.code_length, (h, w), c.decoder_strides, c.decoder_input,
                                channels=c.start_channels)  # (B, 16) -> (B, 16, 8, 8)
        self.start_shape = self.to_map.shape
        layers = []
        cin = self.start_shape[0]
        for cout, s in zip(c.decoder_channels, c.decoder_strides):
            layers += [SameConvTranspose2d(cin, cout, 3, s), nn.ReLU()]
            cin = cout
        layers.append(SameConvTranspose2d(cin, c.in_channels, 3, 1))  # logits
        self.decoder = nn.Sequential(*layers)  # (B, 16, 8, 8) -> (B, C, 32, 32)
        init_tf_defaults(self)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # training steps taken (the KL warm-up)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log variance of q(z | x), each (B, code_length)."""
        h = self.encoder(x).flatten(1)  # (B, 128 * 8 * 8)
        return self.mu(h), self.log_var(h)

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, code_length): the mean
        return self.posterior(x)[0]

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.to_map(z))  # (B, 16, 8, 8) -> (B, C, 32, 32)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> AEOutput:
        target = x if target is None else target
        mu, log_var = self.posterior(x)
        z = mu
        if self.training:  # reparameterisation: the noise comes from torch's (seeded) global generator
            z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        logits = self.logits(z)
        recon = torch.sigmoid(logits)
        if self.config.loss == "bce":  # from the logits: tf.nn.sigmoid_cross_entropy_with_logits
            rec = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)
        else:
            rec = reconstruction_loss(recon, target, self.config.loss)
        kl = 0.5 * (mu.square() + log_var.exp() - log_var - 1).sum(1)  # KL(N(mu, var) || N(0, I)), (B,)
        return self.output(recon, mu, rec + self.kl_weight() * kl, {"reconstruction": rec, "kl": kl})

    def kl_weight(self) -> float | torch.Tensor:
        """beta, ramped over the first kl_warmup training steps (each training forward counts one)."""
        beta, warm = self.config.beta, self.config.kl_warmup
        if not self.training or not warm:
            return beta
        self.steps += 1
        return beta * torch.clamp(self.steps.float() / warm, max=1.0)
