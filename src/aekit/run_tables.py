"""A run's JSON tables read back (metrics.json, evaluation.json): the table aekit writes there, and of metrics.json
the sections its readers (the report) use, of the form the run writes them; else one line naming the file and the
fix. :class:`aekit.run_folder.RunFolder` reads them through :func:`read_table`."""

from __future__ import annotations

from numbers import Real
from pathlib import Path

from .errors import AekitError
from .files import read_json
from .typed import form_problem

# What readers of metrics.json take from it (aekit.run_record.final_metrics and aekit.run write it): a key ending in
# "?" may be absent or null (no held-out images, no model selection, no comparison); object: a value of any type
METRICS_FORM = {
    "name?": str,
    "train?": {"recon_spread?": Real},
    "heldout?": {"recon_spread?": Real},
    "selection?": {"chosen_epoch": Real, "epochs_run": object, "validation_loss": Real, "validation_images": object,
                   "start?": {"loss_per_sample": Real}},
    "comparison?": {"images": object, "margin_db": Real, "aekit": {"psnr": Real, "ssim": Real},
                    "baseline": {"method": object, "setting": object, "psnr": Real, "ssim": Real}},
}


def read_table(path: Path, fix: str, form: dict | None = None) -> dict | None:
    """The JSON file ``path``: the table aekit writes there, its sections of ``form`` (None when there is no file);
    else an AekitError naming the file, what is wrong and ``fix``."""
    found = read_json(path)
    if found is not None and not isinstance(found, dict):
        raise AekitError(f"{path}: damaged (a JSON {type(found).__name__}, not the table aekit writes); {fix}")
    if found is not None and form and (problem := form_problem(found, form)):
        raise AekitError(f"{path}: damaged ({problem}); {fix}")
    return found
