"""The run report: one self-contained HTML page per run folder (images embedded as data URIs).

    write_report("runs/reference")      # -> runs/reference/report.html (`aekit report RUN` does this)

The page shows what the folder holds and says what is missing: the configuration (config.toml,
model.json), the metrics (metrics.json, or the figures passed in while a run is finishing), the
results of ``aekit evaluate`` (evaluation.json, shown generically, whatever its keys), loss
curves and code statistics drawn from history.csv (so a report of an unfinished run is current),
and the run's pictures (reconstructions.png, denoising.png and any other PNG). Every text is
escaped; the page loads nothing from outside.
"""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from safetensors import safe_open

from ..errors import AekitError
from ..files import read_json, write_text
from ..metrics import collapse_warning, collapsed
from ..models.io import MODEL_JSON
from ..run_folder import RunFolder
from .notes import comparison_line, notes
from .pictures import code_figure, loss_figure, png_bytes
from .run_pictures import SAMPLES, STEPS

REPORT = RunFolder.REPORT
# Pictures with a known caption, shown first; any other PNG in the folder follows under its name.
CAPTIONS = {
    "reconstructions.png": "Reconstructions: {which} originals (top row) above the model's reconstructions",
    "denoising.png": "Denoising, {which} images: clean (top row), the noisy input, the model's output",
    "evaluation.png": "Evaluation ({what}): clean (top row), {rows}",
    "code_histogram.png": "The code of training images: every value (left) and each unit's mean (right), counts on a "
                          "log scale; dashed: the 'small activation' threshold",
    "samples.png": f"New images: {SAMPLES} codes drawn from the prior, decoded",
    "interpolation.png": f"A {{which}} face, {STEPS} decodings along the line between its code and another person's, "
                         "that face",
}
DRAWN_HERE = {"loss.png"}  # redrawn from history.csv rather than embedded
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PICTURE_BYTES = 50 << 20  # a picture larger than this is not one aekit wrote: left out of the page

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; } img { max-width: 100%; image-rendering: pixelated; }
img.plot { image-rendering: auto; } .note { color: #555; } .warn { color: #a40000; font-weight: bold; }
.lead { font-size: 1.15em; font-weight: bold; }
"""


def write_report(folder: str | Path | RunFolder, *, metrics: dict | None = None) -> Path:
    """Build ``folder/report.html`` from the run folder; ``metrics`` stands in for metrics.json."""
    run = folder if isinstance(folder, RunFolder) else RunFolder(folder)
    run.check()
    finished = metrics is not None or (run / run.METRICS).exists()
    page = build_report(run, metrics=metrics)
    if not finished and (run / run.METRICS).exists():  # the run finished (and wrote its report) meanwhile
        page = build_report(run)
    write_text(run / REPORT, page)
    return run / REPORT


def build_report(run: RunFolder, *, metrics: dict | None = None) -> str:
    """The report's HTML text."""
    if metrics is None:
        metrics = run.metrics()
    evaluation = run.evaluation()
    history = run.history()
    name = (metrics or {}).get("name") or run.path.name
    if metrics and metrics.get("status") == "complete":
        status = f"complete: {metrics.get('epochs', '?')} epochs in {_fmt(metrics.get('seconds'))} s"
        status += f" (stopped early: {metrics['stopped']})" if metrics.get("stopped") else ""
    else:
        status = f"not complete: no metrics.json yet ({len(history)} epochs in history.csv)"
    body = [
        f"<h1>{_esc(name)}</h1>",
        f"<p class=\"note\">aekit run folder {_esc(run.path.resolve())}; {_esc(status)}; "
        f"report built {_esc(datetime.now().strftime('%Y-%m-%d %H:%M'))}</p>",
        *([f"<p class=\"lead\">{_esc(comparison_line(metrics['comparison']))}</p>"]
          if metrics and metrics.get("comparison") else []),
        *[f"<p>{_esc(line)}</p>" for line in notes(metrics or {}, reference_loop=_reference_loop(run))],
        _section("Metrics", json_html(metrics) if metrics else _missing("metrics.json")),
    ]
    if evaluation is not None:
        body.append(_section("Evaluation (evaluation.json)", json_html(evaluation)))
    body += [
        _section("Loss curves", _plot(loss_figure(history, title=name, selection=(metrics or {}).get("selection")),
                                      "loss curves") if history else _missing("history.csv")),
        _section("Pictures", pictures_html(run, heldout=bool((metrics or {}).get("heldout")), evaluation=evaluation)),
        _section("Code statistics", code_html(history) if history else _missing("history.csv")),
        _section("Configuration", config_html(run)),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_esc(name)}: aekit run report</title>\n"
        "<link rel=\"icon\" href=\"data:,\">\n"  # no favicon request
        f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _reference_loop(run: RunFolder) -> bool:
    try:
        return bool(run.config().train.reference_loop)
    except AekitError:  # a model folder, or a config this version cannot read: nothing to say
        return False


def pictures_html(run: RunFolder, *, heldout: bool = True, evaluation: dict | None = None) -> str:
    folder = run.path
    names = [n for n in CAPTIONS if (folder / n).is_file()]
    names += sorted(p.name for p in run.pictures() if p.name not in CAPTIONS and p.name not in DRAWN_HERE)
    pngs = {n: png for n in names if (png := _own_png(folder / n))}
    if not pngs:
        return _missing("reconstructions.png")
    ev = evaluation or {}
    rows = ", ".join(["the noisy input"] * (ev.get("noise", "none") != "none") + ["aekit"]
                     + ([str(ev["best_baseline"])] if ev.get("best_baseline") else []))
    fill = {"which": "held-out" if heldout else "training", "rows": rows,
            "what": f"{ev.get('images', '?')} images of {ev.get('images_from', '?')}"}
    return "\n".join(
        f"<figure>{_img(png, n)}<figcaption>{_esc(CAPTIONS[n].format(**fill) if n in CAPTIONS else n)}"
        "</figcaption></figure>" for n, png in pngs.items()
    )


def _own_png(path: Path) -> bytes | None:
    """The picture's bytes, if it is one: a plain file (not a link: the page is shared, and a downloaded run folder
    could link ``x.png`` to any file of this machine) holding a PNG image of at most MAX_PICTURE_BYTES."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_PICTURE_BYTES:
        return None
    png = path.read_bytes()
    return png if png.startswith(PNG_SIGNATURE) else None


def code_html(history: list[dict]) -> str:
    """Code mean and spread at the first and last epoch, their curves, and a collapse warning."""
    first, last = history[0], history[-1]
    rows = [
        ["code mean (mean activation)", _fmt(first.get("code_mean")), _fmt(last.get("code_mean"))],
        ["code spread (per-unit std across images)", _fmt(first.get("code_std")), _fmt(last.get("code_std"))],
    ]
    held = [h for h in history if h.get("heldout_code_mean") is not None]
    if held:  # scored every eval_every epochs: each value says its epoch where it is not the column's
        rows.append(["held-out code mean"] + [
            _fmt(h["heldout_code_mean"]) + ("" if h["epoch"] == at["epoch"] else f" (epoch {int(h['epoch'])})")
            for h, at in ((held[0], first), (held[-1], last))])
    text = _table(["", f"epoch {int(first['epoch'])}", f"epoch {int(last['epoch'])}"], rows)
    if last.get("code_std") is not None and collapsed(int(last["epoch"]), last["code_std"]):
        message = collapse_warning(int(last["epoch"]), last["code_std"])
        text += f"<p class=\"warn\">{html.escape(message[0].upper() + message[1:])}.</p>"
    return text + _plot(code_figure(history), "code statistics by epoch")


def config_html(run: RunFolder) -> str:
    folder = run.path
    parts = []
    meta = read_json(folder / MODEL_JSON)
    if isinstance(meta, dict):
        rows = [["architecture", meta.get("architecture")], ["class", meta.get("class")],
                ["parameters", parameter_count(run.weights())],
                ["preprocessing", json.dumps(meta.get("preprocess", {}))],
                ["aekit version", meta.get("aekit_version")]]
        parts.append(_table(["model", ""], [[k, _fmt(v)] for k, v in rows]))
    config = folder / run.CONFIG
    if config.is_file():
        parts.append(f"<p>{run.CONFIG} (<code>aekit train --config</code> it to re-run):</p>"
                     f"<pre>{_esc(config.read_text(encoding='utf-8', errors='replace'))}</pre>")
    return "\n".join(parts) or _missing(run.CONFIG)


def parameter_count(weights: Path) -> int | None:
    """Number of values in a safetensors file, read from its header (None when unreadable)."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            total = 0
            for key in f.keys():
                n = 1
                for d in f.get_slice(key).get_shape():
                    n *= d
                total += n
            return total
    except Exception:  # a missing or damaged file only leaves the count out of the report
        return None


def json_html(obj: Any) -> str:
    """Any JSON value as tables: scalars as key/value rows; sibling tables of scalars side by side
    (one column each, e.g. training | held-out, or model | PCA); anything deeper under its key."""
    if isinstance(obj, dict):
        scalars = {k: v for k, v in obj.items() if _scalar(v)}
        flat = {k: v for k, v in obj.items() if isinstance(v, dict) and v and all(map(_scalar, v.values()))}
        parts = []
        if scalars:
            parts.append(_table(["", "value"], [[k, _fmt(v)] for k, v in scalars.items()]))
        if flat:
            keys = list(dict.fromkeys(k for table in flat.values() for k in table))
            parts.append(_table(["", *flat], [[k, *(_fmt(t.get(k)) for t in flat.values())] for k in keys]))
        for k, v in obj.items():
            if k not in scalars and k not in flat and v not in ([], {}):  # an empty list: nothing to show
                parts.append(f"<h3>{_esc(k)}</h3>\n{json_html(v)}")
        return "\n".join(parts)
    if isinstance(obj, list):
        if obj and all(isinstance(x, dict) and all(map(_scalar, x.values())) for x in obj):
            keys = list(dict.fromkeys(k for x in obj for k in x))
            return _table(keys, [[_fmt(x.get(k)) for k in keys] for x in obj], row_names=False)
        if all(map(_scalar, obj)):
            return f"<p>{_esc(', '.join(_fmt(x) for x in obj))}</p>"
        return "\n".join(json_html(x) for x in obj)
    return f"<p>{_esc(_fmt(obj))}</p>"


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.5g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _table(header: list, rows: list[list], *, row_names: bool = True) -> str:
    """An HTML table; with ``row_names`` the first cell of each row is a header cell."""

    def cell(i: int, c: str) -> str:
        if i == 0 and row_names:
            return f"<th>{_esc(c)}</th>"
        return f"<td class=\"num\">{_esc(c)}</td>" if _numeric(c) else f"<td>{_esc(c)}</td>"

    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>\n" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


def _numeric(text: Any) -> bool:
    try:
        float(str(text).replace(",", ""))
        return True
    except ValueError:
        return False


def _img(png: bytes, alt: str, cls: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    klass = f" class=\"{cls}\"" if cls else ""
    return f"<img{klass} alt=\"{_esc(alt)}\" src=\"data:image/png;base64,{data}\">"


def _plot(fig, alt: str) -> str:
    return _img(png_bytes(fig), alt, "plot")


def _section(title: str, body: str) -> str:
    return f"<section>\n<h2>{_esc(title)}</h2>\n{body}\n</section>"


def _missing(name: str) -> str:
    return f"<p class=\"note\">No {_esc(name)} in this run folder.</p>"
