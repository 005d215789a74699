"""The run folder as one type: its files, the is-a-run check, creating and replacing one, and its lock.

    config.toml          the fully resolved configuration (``aekit train --config`` it to re-run)
    data.json            the data trained on: its source, number of images, digests (:mod:`aekit.run_data`)
    model.json           architecture, constructor arguments, preprocessing, aekit version
    model.safetensors    the weights
    history.csv          one row per epoch: loss per sample, code mean, held-out metrics, seconds
    metrics.json         final training and held-out figures; written last, so its presence
                         (with "status": "complete") marks a finished run
    reconstructions.png  originals above reconstructions, at the data's resolution
    denoising.png        denoising runs: clean / noisy / denoised
    loss.png             the training (and held-out) loss curve
    code_histogram.png   histograms of the code's activations and of each unit's mean activation
    report.html          everything above on one self-contained page (``aekit report RUN`` rebuilds it)
    evaluation.json/png  after ``aekit evaluate``
    checkpoints/         last, best and every N epochs (:mod:`aekit.training.checkpoints`)
    tensorboard/         scalars and image grids for TensorBoard, with ``train.tensorboard``
    skipped.txt          only with data.skip_bad and unreadable files: one "path: reason" per line
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import torch

from .config import Config
from .config_file import dump_config, load_config
from .errors import AekitError
from .files import lock_file, read_json, user_path, write_json, write_text, writing
from .models.io import MODEL_JSON, MODEL_WEIGHTS, load as load_model_folder, older_model
from .pipeline import RunData, prepare_data
from .run_data import check_record, data_record, unchanged
from .run_tables import METRICS_FORM, read_table
from .training.checkpoints import FOLDER as CHECKPOINTS, POINTERS, named_folder, pointer
from .training.history import EpochStats, history_csv, read_history_csv
from .version import newer


class RunFolder:
    """A run folder (which need not exist yet); its files by name."""

    CONFIG = "config.toml"
    HISTORY = "history.csv"
    METRICS = "metrics.json"
    REPORT = "report.html"
    EVALUATION = "evaluation.json"
    SKIPPED = "skipped.txt"
    DATA = "data.json"  # what the run was trained on: the source and a digest of its image names
    TENSORBOARD = "tensorboard"
    PROBE = ".write-test"  # written and removed by create(), to check that the folder can be written
    OWN = (CONFIG, HISTORY, METRICS, REPORT, DATA, MODEL_JSON, MODEL_WEIGHTS)  # the files that make it a run

    def __init__(self, path: str | Path):
        self.path = Path(user_path(path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    # --- what is there ------------------------------------------------------------------------
    def is_run(self) -> bool:
        """A folder aekit wrote: it holds a config.toml (a run) or a model.json (a saved model)."""
        return (self / self.CONFIG).is_file() or (self / MODEL_JSON).is_file()

    def foreign(self) -> str | None:
        """The first entry of the folder that aekit does not write into a run folder (a user's file or folder, the
        data itself, the working directory), else None: overwrite deletes only what aekit wrote."""
        if Path.cwd().resolve().is_relative_to(self.path.resolve()):
            return "the current folder"
        ours = {*self.OWN, self.EVALUATION, self.SKIPPED, self.PROBE}
        for entry in sorted(self.path.iterdir()):
            name = entry.name
            if entry.is_dir() and not entry.is_symlink():
                if name not in (CHECKPOINTS, self.TENSORBOARD):
                    return f"the folder {name}/"
            elif not (name in ours or name.endswith((".png", ".json", ".onnx", ".pt2", ".pt", ".tmp"))):
                return name
        return None

    def _beside(self, what: str) -> Path:
        """The hidden file or folder ``.NAME.what`` beside the folder (``--out .``: beside the current folder)."""
        absolute = Path(os.path.abspath(self.path))
        return absolute.parent / f".{absolute.name}.{what}"

    @property
    def replaced(self) -> Path:
        """Where the run that overwrite replaces waits, beside the folder, until the new run is complete."""
        return self._beside("replaced")

    def lock(self, *, shared: bool = False):
        """The run's lock (a hidden file beside the folder, there while held): a training holds it alone, an
        evaluation shares it; another command's conflicting hold is one line."""
        return lock_file(self._beside("lock"), shared=shared,
                         busy=f"{self.path}: another aekit command is training or evaluating this run now; "
                              "run this one again when it has finished")

    def weights_stamp(self) -> tuple[int, int, int] | None:
        """Which model.safetensors is there (inode, time, size): another after a training replaced it."""
        with contextlib.suppress(OSError):
            st = (self / MODEL_WEIGHTS).stat()
            return st.st_ino, st.st_mtime_ns, st.st_size
        return None

    def check_not_own(self, path: Path, key: str = "out") -> None:
        """Refuse ``path`` (an output) when it is one of the files that make this folder a run (its model, config,
        metrics ...): even with overwrite, writing there would leave a run that no longer loads."""
        if path.name in self.OWN and path.resolve().parent == self.path.resolve():
            raise AekitError(f"{key} {path}: is the run's own {path.name}; give another file name", keys=key)

    def has_config(self) -> bool:
        return (self / self.CONFIG).is_file()

    def check(self) -> "RunFolder":
        """Itself, or an AekitError saying why this is not a run folder."""
        if not self.path.is_dir():
            raise AekitError(f"{self.path}: no such run folder")
        if not self.is_run():
            raise AekitError(f"{self.path}: not an aekit run folder (no {self.CONFIG} or {MODEL_JSON})")
        return self

    def config(self) -> Config:
        """The run's own configuration (config.toml): every table, each key one this aekit knows."""
        if not self.has_config():
            raise AekitError(f"{self.path}: no {self.CONFIG} (not an aekit run folder)")
        try:
            return load_config(self / self.CONFIG, run=True)
        except AekitError:
            if why := self.newer():
                raise AekitError(f"{self / self.CONFIG}: {why}") from None
            if older := older_model(self.path):  # lines an older aekit did not write, of a model this one cannot load
                raise older from None
            raise

    def newer(self) -> str | None:
        """Why a newer aekit wrote the run (its model.json or metrics.json says so), else None."""
        for name in (MODEL_JSON, self.METRICS):
            try:
                meta = read_json(self / name)
            except AekitError:
                continue
            if isinstance(meta, dict) and (why := newer(meta.get("aekit_version"))):
                return why
        return None

    def model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The run's model (or the saved model's, or with RUN/checkpoints/last or best the checkpoint that
        pointer names); a run that has not finished says what it has instead."""
        if self.path.parent.name == CHECKPOINTS and self.path.name in POINTERS and not self.path.exists():
            return self._pointed(device)
        unfinished = self.path.is_dir() and not (self / MODEL_JSON).is_file()
        if unfinished and pointer(self.path).is_file():
            best = " (the epoch model selection keeps so far)" if pointer(self.path, "best").is_file() else ""
            meanwhile = (f"{self.checkpoints / 'best'}{best} and {self.checkpoints / 'last'} (the newest checkpoint)"
                         if best else f"{self.checkpoints / 'last'} (its newest checkpoint)")
            raise AekitError(f"{self.path}: the run has not finished (no {MODEL_JSON}); aekit train --resume "
                             f"{self.path} finishes it; meanwhile {meanwhile} name models that denoise, encode, "
                             "export and aekit.load take")
        if unfinished and self.replaced.is_dir():
            raise AekitError(f"{self.path}: a training that was to replace the run here was killed before its first "
                             f"checkpoint; the run it replaces is in {self.replaced}: move it back in place of {self.path}")
        return load_model_folder(self.path, device=device)

    def _pointed(self, device) -> torch.nn.Module:
        """The model of the checkpoint that RUN/checkpoints/last.json (or best.json) names, read again when a
        training replaced it while it was read (it removes the checkpoints no pointer names)."""
        run, which = self.path.parent.parent, self.path.name
        while True:
            named = read_json(pointer(run, which))
            if (folder := named_folder(run, named)) is None:  # the same folders as a resume reads
                raise AekitError(f"{self.path}: no such checkpoint ({pointer(run, which)} is missing, damaged or names "
                                 "no checkpoint folder of the run)")
            try:
                return load_model_folder(folder, device=device)
            except AekitError:
                if read_json(pointer(run, which)) == named:  # not replaced meanwhile: the checkpoint is at fault
                    raise

    def metrics(self) -> dict | None:
        """metrics.json (None when there is none), its sections of the form the run writes them."""
        return read_table(self / self.METRICS, f"delete it, and aekit train --resume {self.path} writes it again",
                          METRICS_FORM)

    def evaluation(self) -> dict | None:
        return read_table(self / self.EVALUATION, f"delete it, or aekit evaluate {self.path} again")

    def history(self) -> list[dict[str, float | None]]:
        """history.csv as one dict per epoch: numbers, and None for empty cells ([] when missing)."""
        return read_history_csv(self / self.HISTORY)

    def pictures(self) -> list[Path]:
        return sorted(self.path.glob("*.png"))

    def weights(self) -> Path:
        return self / MODEL_WEIGHTS

    # --- writing ------------------------------------------------------------------------------
    def create(self, overwrite: bool = False) -> "RunFolder":
        """Make the folder, refusing an existing non-empty one unless ``overwrite`` (and then only an
        aekit run folder, which waits aside, at :attr:`replaced`, until the new run is complete or is put back
        when it stops before its first checkpoint); checks that it can be written."""
        out = self.path
        if out.exists():
            if not out.is_dir():
                raise AekitError(f"out {out}: exists and is not a folder", keys="out")
            if any(out.iterdir()):
                if not overwrite:
                    raise AekitError(f"out {out}: folder exists and is not empty (add overwrite to replace it)",
                                     keys=("out", "overwrite"))
                if not self.is_run():
                    raise AekitError(
                        f"out {out}: not an aekit run folder (no {self.CONFIG} or {MODEL_JSON}); "
                        "refusing to delete it, even with overwrite", keys=("out", "overwrite"),
                    )
                if foreign := self.foreign():
                    raise AekitError(f"out {out}: holds {foreign}, which no aekit run writes (your files, or the "
                                     "data?); refusing to delete it, even with overwrite", keys=("out", "overwrite"))
                if self.replaced.exists():  # an earlier overwrite's unfinished run: the run before it stays aside
                    shutil.rmtree(out)
                else:
                    with writing(out):
                        out.rename(self.replaced)
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / self.PROBE
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise AekitError(f"out {out}: cannot write there ({e.strerror})", keys="out") from None
        return self

    def put_back(self) -> bool:
        """The run overwrite set aside, back in its folder in place of the new one (which stopped before its first
        checkpoint); False when there is none."""
        if self.replaced.is_symlink() or not self.replaced.is_dir():  # a link is not a run this folder set aside
            return False
        shutil.rmtree(self.path, ignore_errors=True)
        self.replaced.rename(self.path)
        return True

    def drop_replaced(self) -> None:
        """The new run is complete: the run it replaces goes."""
        shutil.rmtree(self.replaced, ignore_errors=True)

    def write_config(self, cfg: Config) -> None:
        write_text(self / self.CONFIG, dump_config(cfg))

    def write_history(self, history: list[EpochStats]) -> None:
        write_text(self / self.HISTORY, history_csv(history))

    def write_skipped(self, lines: list[str]) -> None:
        write_text(self / self.SKIPPED, "".join(f"{line}\n" for line in lines))

    def write_data(self, data) -> None:
        """Record the images the run was given (``data.json``), for :meth:`check_data`."""
        write_json(self / self.DATA, data_record(data))

    def data_gone(self, e: AekitError, source: str, *, why: str | None = None, keys: tuple[str, ...] = ()) -> AekitError:
        """``e``, the run's own data source not found, as an error about the run rather than about --data, ending in
        ``why`` (what needs the data, or what to do without it; default: how to score other images; ``keys``: the
        options it names)."""
        if "data.source" not in e.keys:
            return e
        why = why or "to score other images: aekit evaluate RUN --data PATH"
        return AekitError(f"{self.path}: the data it was trained on, {source!r} ({self.CONFIG} [data] source), "
                          "is not there (a relative path is read from the current folder: run from the folder it "
                          f"was trained in, or restore the data); {why}", keys=keys)

    def check_data(self, data, doing: str) -> None:
        """The images ``doing`` (resume, evaluate) reads, ``data``, are those the run was trained on: else its splits
        would be others, and images it trained on could be scored as held out (:func:`aekit.run_data.check_record`)."""
        check_record(self / self.DATA, self.path, data, doing)

    def own_data(self, cfg: Config, doing: str) -> RunData:
        """The run's data as ``cfg`` reads and splits it, for ``doing`` (evaluate, score), checked against data.json:
        a folder's images are decoded only as they are asked for (the held-out ones), where data.json shows its
        files to be those the run was trained on (:func:`aekit.run_data.unchanged`); else every file, as in training."""
        data = prepare_data(cfg, decode=False)
        if not isinstance(data.data.images, torch.Tensor):  # a folder's files, none decoded
            if unchanged(self / self.DATA, data.data):
                return data
            data = prepare_data(cfg)
        self.check_data(data.data, doing)
        return data


def load(folder: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """``aekit.load``: the model of a folder written by :func:`aekit.save`, a finished run or a checkpoint,
    in eval mode; a run that has not finished says how to finish it and which checkpoint to load meanwhile."""
    return RunFolder(folder).model(device)
