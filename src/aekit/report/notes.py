"""What a run's metrics mean, in sentences: the comparison's lead line, model selection, notes (report.html, and
the end-of-training summary's comparison line)."""

from __future__ import annotations

from ..metrics import COLLAPSED_RECONSTRUCTIONS


def comparison_line(c: dict) -> str:
    """'Held-out (80 images): aekit (hybrid) 25.60 dB, SSIM 0.831; ... pca (64 components ...) 24.84 dB, SSIM 0.808:
    +0.76 dB' (the model as scored: 'aekit (unet, flip ensemble)' where it averages its mirror image's pass)."""
    a, b = c["aekit"], c["baseline"]
    of = f"the first {c['images']} of {c['heldout_images']}" if c.get("heldout_images") else c["images"]
    return (f"Held-out ({of} images): {a.get('method', 'aekit')} {a['psnr']:.2f} dB, SSIM {a['ssim']:.3f}; "
            f"the best of what a user would pick instead, {b['method']} ({b['setting']}), {b['psnr']:.2f} dB, "
            f"SSIM {b['ssim']:.3f}: {c['margin_db']:+.2f} dB")


def notes(m: dict, *, reference_loop: bool = False) -> list[str]:
    """What the metrics below mean for this run, in sentences: model selection, held-out images, the
    comparison's flip ensemble and noise, the reference loop's loss, reconstructions that are all one image."""
    lines = [selection_line(m["selection"])] if m.get("selection") else []
    if reference_loop and m.get("train"):
        lines.append("The reference loop skips the last batch of every epoch yet divides by every image, as the "
                     "book's does: loss_per_sample_last_epoch is that figure; loss_per_sample is the final model "
                     f"on all {m['train'].get('images', 'the')} training images.")
    if m.get("status") == "complete" and not m.get("selection"):
        lines.append("No model selection (train.select off): the model is the last epoch's weights.")
    if m.get("status") == "complete" and not m.get("heldout"):
        lines.append("No held-out images (test_fraction 0): every figure and picture below is of images the "
                     "model trained on.")
    if (m.get("comparison") or {}).get("aekit", {}).get("flip_ensemble"):
        lines.append("The comparison scores the model as its flip ensemble (the average of its passes on each "
                     "image and its mirror image); the held-out column of the metrics is the model's one pass.")
    if m.get("comparison") and m.get("noise", "none") != "none":
        lines.append("The comparison (and evaluation.json) draws its own seeded noise, the same for every method: its "
                     "noisy-input figures differ a little from the metrics' draw.")
    spread = (m.get("heldout") or m.get("train") or {}).get("recon_spread")
    if spread is not None and spread < COLLAPSED_RECONSTRUCTIONS:
        lines.append(f"Warning: every reconstruction is nearly the same image (they vary {spread:.1%} as much as the "
                     "originals): the code carries almost nothing, as on the plateau at the mean image or after a "
                     "collapse of the code. More epochs, another seed or train.data_init (--data-init).")
    return lines


def selection_line(s: dict) -> str:
    chosen = "the start (before any training step)" if s["chosen_epoch"] == 0 else f"epoch {s['chosen_epoch']}"
    return (f"Model selection on {s['validation_images']} validation images ({s.get('how', '')}): the weights of "
            f"{chosen} of {s['epochs_run']}, validation loss {s['validation_loss']:.5g}"
            + (f" (the start: {s['start']['loss_per_sample']:.5g}{', ' * bool(s.get('start_setup'))}"
               f"{s.get('start_setup', '')})" if s.get("start") else ""))
