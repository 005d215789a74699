"""Training: the loop and what it stands on.

    loop          fit, in named steps (set up, restore, one epoch, after the epoch)
    history       EpochStats, History, EpochContext (what the hook sees), the epoch line, history.csv's columns
    averaging     weight averaging (train.ema)
    selection     model selection on a validation split (train.select)
    evaluate      held-out metrics of a model
    data_init     the data-dependent start before the first step
    devices       the device and mixed precision (autocast)
    optim         Adam, the learning-rate schedule, the batches of an epoch
    checkpoints   checkpoints that survive a kill, loaded without unpickling
    preflight     what fit() checks before the first step: the config, the images, the batch, the device
    distributed   several processes: the process group, the --nproc launcher
    agreement     what the processes must agree on (config, images, checkpoint), one line when they do not
"""

from .data_init import data_init, wants_data_init
from .devices import autocast_for, resolve_device
from .distributed import Distributed
from .evaluate import evaluate
from .history import HISTORY_COLUMNS, EpochContext, EpochStats, History, format_epoch, history_columns, history_row
from .loop import fit
from .preflight import preflight
from .optim import batch_starts, lr_factor, make_adam

__all__ = [
    "HISTORY_COLUMNS", "Distributed", "EpochContext", "EpochStats", "History", "autocast_for", "batch_starts", "data_init",
    "evaluate", "fit", "format_epoch", "history_columns", "history_row", "preflight", "lr_factor", "make_adam", "resolve_device", "wants_data_init",
]
