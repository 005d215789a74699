"""The baseline for benchmarks/throughput.py: the reference model and loop as a careful PyTorch
user would port them from docs/reference-experiments.md without any tuning (kept here, outside the library, on purpose).

TF1 semantics are kept (they are what makes the port faithful): 'same' padding done by hand for the
stride-2 layers, Glorot-uniform weights with zero biases, Adam with TF1's defaults, loss =
``tf.nn.l2_loss`` summed over the batch, batches ``range(0, N - 50, 50)``. Everything else is the
plain way: NCHW, ``nn.ConvTranspose2d``, the default Adam implementation, and the running loss
read with ``.item()`` every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NaiveReference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, stride=2)  # padded by hand: TF pads 0 before, 1 after
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 128, 3, padding=1)
        self.code = nn.Linear(128 * 16 * 16, 256)
        self.tconv1 = nn.ConvTranspose2d(1, 128, 3, stride=2)  # 16 -> 33, TF keeps the first 32
        self.tconv2 = nn.ConvTranspose2d(128, 64, 3, padding=1)
        self.tconv3 = nn.ConvTranspose2d(64, 32, 3, padding=1)
        self.tconv4 = nn.ConvTranspose2d(32, 1, 3, padding=1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.conv1(F.pad(x, (0, 1, 0, 1))))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        h = F.relu(self.conv4(h))
        code = torch.sigmoid(self.code(h.flatten(1)))
        h = F.relu(self.tconv1(code.view(-1, 1, 16, 16))[..., :32, :32])
        h = F.relu(self.tconv2(h))
        h = F.relu(self.tconv3(h))
        return torch.sigmoid(self.tconv4(h)), code


def train_epochs(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, epochs: int,
                 batch_size: int = 50, generator: torch.Generator | None = None) -> list[float]:
    """The reference loop; returns each epoch's average loss per sample."""
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for i in range(0, len(x) - batch_size, batch_size):
            batch = x[order[i : i + batch_size]]
            recon, _ = model(batch)
            loss = 0.5 * ((recon - batch) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        losses.append(total / len(x))
    return losses


def make(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = NaiveReference()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
