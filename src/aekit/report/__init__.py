"""Reports: pictures, the run's HTML page, TensorBoard.

    pictures      image grids, loss and code figures (matplotlib's object API), PNG writing
    run_pictures  the pictures a finished run writes into its folder
    notes         what a run's metrics mean, in sentences (the report's lead line and notes)
    page          report.html: one self-contained page per run folder
    tensorboard   --tensorboard: scalars and reconstruction grids
"""

from .page import REPORT, build_report, write_report
from .pictures import code_figure, code_histogram_figure, figure, image_grid, loss_figure, png_bytes, save_png

__all__ = ["REPORT", "build_report", "code_figure", "code_histogram_figure", "figure", "image_grid", "loss_figure",
           "png_bytes", "save_png", "write_report"]
