"""Synthetic dead-leaves images (train.synthetic): shapes, range, seeding, discs, and the batch mix."""

import torch

from aekit.data import dead_leaves, mix_synthetic
from aekit.pipeline import Pipeline


def test_dead_leaves_are_seeded_images_in_range_of_any_size_and_channels():
    a = dead_leaves(6, 3, (20, 36), torch.Generator().manual_seed(0))
    assert a.shape == (6, 3, 20, 36) and a.dtype == torch.float32
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, dead_leaves(6, 3, (20, 36), torch.Generator().manual_seed(0)))
    assert not torch.equal(a, dead_leaves(6, 3, (20, 36), torch.Generator().manual_seed(1)))
    assert not torch.equal(a[:, 0], a[:, 1])  # colours, not grey on three channels
    assert not torch.equal(a[0], a[1])  # each image its own


def test_dead_leaves_are_flat_regions_between_edges_at_many_levels():
    x = dead_leaves(8, 1, (32, 32), torch.Generator().manual_seed(0))
    flat = (x[..., 1:, :] == x[..., :-1, :]).float().mean()  # vertical neighbours in the same leaf
    assert float(flat) > 0.25  # white noise: 0
    assert all(len(torch.unique(img)) >= 8 for img in x)  # many leaves show in every image


def test_one_disc_of_a_fixed_radius_is_a_disc_of_that_radius_with_soft_edges():
    r = 6.4  # pixels: 0.1 of the side
    x = dead_leaves(40, 1, (64, 64), torch.Generator().manual_seed(0), discs=1, smallest=r, largest=0.1)
    inner = 0
    for img in x[:, 0]:
        background = img.flatten().mode().values  # the disc covers about 3% of the picture
        disc = (img != background).nonzero().float()  # the disc and its anti-aliased edge
        assert float(torch.cdist(disc, disc).max()) <= 2 * r + 2  # no two of its pixels further apart than that
        top, left = disc.min(0).values
        bottom, right = disc.max(0).values
        if min(top, left) > 0 and max(bottom, right) < 63:  # wholly inside the picture
            inner += 1
            assert 3.1416 * (r - 1) ** 2 <= len(disc) <= 3.1416 * (r + 1) ** 2
            assert len(torch.unique(img)) > 3  # edge pixels between the disc's colour and the background's
    assert inner >= 20


def test_mix_synthetic_replaces_a_fraction_of_the_batch_and_keeps_the_rest():
    x = torch.rand(16, 1, 12, 12, dtype=torch.float64)
    y = mix_synthetic(x, 0.25, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(y[4:], x[4:]) and not any(torch.equal(y[i], x[i]) for i in range(4))
    assert mix_synthetic(x, 0.0, torch.Generator()) is x
    one = x[:1]
    assert mix_synthetic(one, 0.25, torch.Generator()) is one  # round(0.25 x 1) = 0: the batch as it is


def test_the_pipeline_mixes_synthetic_images_into_training_batches_only():
    x = torch.rand(8, 1, 16, 16)
    p = Pipeline(synthetic=0.5)
    a, _ = p.train_pair(x, torch.Generator().manual_seed(0))
    b, _ = p.train_pair(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(a[4:], x[4:]) and not torch.equal(a[:4], x[:4])
    assert torch.equal(p.view(x, torch.Generator().manual_seed(0))[0], x)  # evaluation never sees them
