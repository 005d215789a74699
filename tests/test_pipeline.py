"""What the model sees: augmentation, corruption at the native size, then the fit to the working size."""

import torch

from aekit.noise import make_corruption, parse_noise
from aekit.pipeline import Pipeline, random_shift


def test_noise_is_added_at_native_resolution_then_both_copies_resized():
    pipeline = Pipeline(make_corruption(parse_noise("gaussian:0.2")), (32, 32), "resize", "legacy-bicubic", native=True)
    x = torch.rand(3, 1, 64, 64)
    noisy, clean = pipeline.view(x, torch.Generator().manual_seed(0))
    assert noisy.shape == clean.shape == (3, 1, 32, 32)
    assert torch.allclose(clean, x[..., ::2, ::2], atol=1e-6)
    # the same draw at 64x64, subsampled like the legacy resize, is what the model sees
    expect = make_corruption(parse_noise("gaussian:0.2"))(x, torch.Generator().manual_seed(0))[..., ::2, ::2]
    assert torch.allclose(noisy, expect, atol=1e-6)


def test_without_corruption_the_view_is_the_fitted_image_for_both():
    x = torch.rand(2, 1, 64, 64)
    a, b = Pipeline(size=(32, 32), method="legacy-bicubic").view(x, torch.Generator())
    assert a is b and torch.allclose(a, x[..., ::2, ::2], atol=1e-6)
    same, _ = Pipeline().view(x, torch.Generator())
    assert same is x


def test_flips_and_shifts_are_training_only_and_seeded():
    x = torch.rand(64, 1, 8, 8)
    p = Pipeline(hflip=True, shift=1)
    a, _ = p.train_pair(x, torch.Generator().manual_seed(0))
    b, _ = p.train_pair(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.equal(a, x)
    flipped = sum(torch.equal(a[i], x[i].flip(-1)) for i in range(len(x)))
    assert flipped < len(x)  # shifts move the flipped images too; some are left as they were or only shifted
    v, _ = p.view(x, torch.Generator().manual_seed(0))
    assert torch.equal(v, x)  # evaluation never augments
    flips_only, _ = Pipeline(hflip=True).train_pair(x, torch.Generator().manual_seed(0))
    n = sum(torch.equal(flips_only[i], x[i].flip(-1)) for i in range(len(x)))
    assert 16 < n < 48 and n + sum(torch.equal(flips_only[i], x[i]) for i in range(len(x))) == len(x)


def test_random_shift_moves_each_image_by_whole_pixels_and_repeats_the_edges():
    x = torch.rand(64, 2, 6, 7)
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    seen = set()
    for a, b in zip(x, y):  # find each image's offset: b[r, c] = a[clamp(r - dy), clamp(c - dx)]
        match = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(b, a[:, (torch.arange(6) - dy).clamp(0, 5)][:, :, (torch.arange(7) - dx).clamp(0, 6)])]
        assert match, "not a whole-pixel shift of the image"
        seen.add(match[0])
    assert len(seen) > 10  # offsets drawn per image, over the whole range
    assert torch.equal(y, random_shift(x, 2, torch.Generator().manual_seed(0)))  # seeded
    assert not torch.equal(y, random_shift(x, 2, torch.Generator().manual_seed(1)))


def test_by_default_the_noise_is_added_at_the_working_size():
    """sigma is the noise of the images the model denoises (a resize after the noise would shrink it)."""
    pipeline = Pipeline(make_corruption(parse_noise("gaussian:0.2")), (32, 32), "resize", "bicubic")
    x = torch.full((8, 1, 64, 64), 0.5)
    noisy, clean = pipeline.view(x, torch.Generator().manual_seed(0))
    assert noisy.shape == (8, 1, 32, 32) and float((noisy - clean).std()) > 0.19
    shrunk, _ = Pipeline(pipeline.corrupt, (32, 32), "resize", "bicubic", native=True).view(x, torch.Generator())
    assert float((shrunk - clean).std()) < 0.1  # the book's order: noise at 64x64, then the antialiased resize
