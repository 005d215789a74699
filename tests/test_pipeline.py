"""What the model sees: augmentation, corruption at the native size, then the fit to the working size."""

import torch

from aekit.noise import make_corruption, parse_noise
from aekit.pipeline import Pipeline, random_affine, random_intensity, random_shift


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


def test_rotations_zooms_and_intensity_are_training_only_seeded_and_stay_in_range():
    x = torch.rand(32, 1, 12, 12)
    p = Pipeline(rotate=10, zoom=0.15, intensity=0.3)
    a, target = p.train_pair(x, torch.Generator().manual_seed(0))
    b, _ = p.train_pair(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a is target and not torch.allclose(a, x, atol=1e-3)
    assert a.shape == x.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(p.view(x, torch.Generator().manual_seed(0))[0], x)  # evaluation never augments
    c, _ = p.train_pair(x, torch.Generator().manual_seed(1))
    assert not torch.equal(a, c)


def test_random_affine_without_angle_or_zoom_is_the_identity_and_zoom_scales_a_square():
    x = torch.rand(4, 2, 10, 9)
    assert torch.allclose(random_affine(x, 0.0, 0.0, torch.Generator().manual_seed(0)), x, atol=1e-5)
    square = torch.zeros(64, 1, 40, 40)
    square[..., 12:28, 12:28] = 1.0  # 256 bright pixels about the centre
    zoomed = random_affine(square, 0.0, 0.25, torch.Generator().manual_seed(0))
    area = (zoomed > 0.5).flatten(1).sum(1).float() / 256
    assert float(area.min()) >= 1 / 1.25**2 - 0.1 and float(area.max()) <= 1.25**2 + 0.1  # scaled by at most 1.25
    assert float(area.max()) > 1.2 and float(area.min()) < 0.8  # both ways, per image
    disk = ((torch.arange(40) - 19.5)[:, None] ** 2 + (torch.arange(40) - 19.5) ** 2 < 100).float()[None, None]
    rotated = random_affine(disk.expand(8, 1, 40, 40), 30.0, 0.0, torch.Generator().manual_seed(0))
    assert float((rotated - disk).abs().mean()) < 0.01  # a disk about the centre is unchanged by rotation
    bar = torch.zeros(8, 1, 40, 40)
    bar[..., 18:22, 4:36] = 1.0
    assert float((random_affine(bar, 30.0, 0.0, torch.Generator().manual_seed(0)) - bar).abs().mean()) > 0.02


def test_random_intensity_keeps_each_images_pixel_order():
    x = torch.rand(16, 1, 8, 8) * 0.5 + 0.25  # away from the clamps
    y = random_intensity(x, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(x.flatten(1).argsort(1), y.flatten(1).argsort(1))  # gamma and contrast are monotone
    assert not torch.allclose(x, y, atol=1e-3)
    assert torch.allclose(random_intensity(x, 0.0, torch.Generator().manual_seed(0)), x, atol=1e-6)


def test_crop_takes_the_same_seeded_window_of_input_and_target_after_the_noise():
    from aekit.pipeline import random_crop

    x = torch.rand(16, 1, 20, 24)
    p = Pipeline(make_corruption(parse_noise("gaussian:0.2")), crop=8)
    noisy, clean = p.train_pair(x, torch.Generator().manual_seed(0))
    assert noisy.shape == clean.shape == (16, 1, 8, 8)
    for n, c, full in zip(noisy, clean, x):  # each target is a window of its own image; the input, that window noisy
        hits = [(i, j) for i in range(13) for j in range(17) if torch.equal(c, full[:, i:i + 8, j:j + 8])]
        assert len(hits) == 1 and float((n - c).std()) > 0.1
    again, _ = p.train_pair(x, torch.Generator().manual_seed(0))
    assert torch.equal(again, noisy)
    assert p.view(x, torch.Generator())[0].shape == x.shape  # evaluation sees whole images
    a, b = random_crop((x, x), 32, torch.Generator())  # a window larger than the image keeps it whole
    assert torch.equal(a, x) and torch.equal(b, x)
