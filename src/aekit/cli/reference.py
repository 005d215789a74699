"""docs/configuration.md, generated from the configuration's fields (a test keeps the file current).

    python -m aekit.cli.reference > docs/configuration.md
"""

from __future__ import annotations

import dataclasses

from ..config import Config, DataConfig, TrainConfig
from ..models import ModelConfig, config_class, list_models, model_class
from ..noise import KINDS, NoiseConfig
from ..typed import options

HEADER = """# Configuration reference

Generated from the configuration's fields (`python -m aekit.cli.reference > docs/configuration.md`;
a test checks that this file is current). A config file is TOML with the tables below; a value
given on the command line overrides the file, key by key ([command-line.md](command-line.md)). A
size is a list or the text its flag takes: `size = [64, 48]` or `size = "64x48"`. A Windows path goes
in single quotes, which keep its backslashes: `source = 'C:\\data\\faces'` (in double quotes a `\\`
starts an escape). "resume" marks the settings `aekit train --resume` may change; every other setting
of a resumed run stays as its `config.toml` says.
"""


def _value(v) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(map(str, v)) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return "-" if v is None else repr(v) if isinstance(v, str) else str(v)


def _table(cls, prefix: str, skip: set[str] = frozenset()) -> list[str]:
    rows = ["| key | flag | default | resume | meaning |", "| --- | --- | --- | --- | --- |"]
    shared = {o.key: o for o in options(ModelConfig, "model.")}  # an architecture's own default keeps the flag
    for o in options(cls, prefix):
        if o.key in skip or dataclasses.is_dataclass(o.type):
            continue
        flag = o.flag or (shared[o.key].flag if o.key in shared else None)
        rows.append(f"| `{o.key.split('.')[-1]}` | {f'`{flag}`' if flag else ''} | `{_value(o.default)}` | "
                    f"{'yes' if o.resume else ''} | {o.help.replace('|', '/')} |")
    return rows


def markdown() -> str:
    own = [f"`{name}`: " + ", ".join(f"`{k} = {_value(v)}`" for k, v in model_class(name).train_defaults.items())
           for name in list_models() if model_class(name).train_defaults]
    lines = [HEADER, "## Top level", "", *_table(Config, ""), "", "## [data]", "", *_table(DataConfig, "data."), "",
             "## [train]", "", "An architecture may declare training defaults of its own, used in place of those below "
             "unless the config or a flag sets them: " + "; ".join(own) + ".", "", *_table(TrainConfig, "train."),
             "", "## [model]", "", "Every architecture has these fields (`--model NAME` chooses one; `aekit models` "
             "lists them with their defaults):", "", *_table(ModelConfig, "model.")]
    common = {f"model.{o.key}" for o in options(ModelConfig)}
    for name in list_models():
        lines += ["", f"### `name = \"{name}\"`", "",
                  *_table(config_class(name), "model.", skip={k for k in common if k not in ("model.code_length",
                                                                                              "model.loss")})]
    lines += ["", "## [noise]", "", "On the command line one option, `--noise SPEC`:", "",
              "| SPEC | noise |", "| --- | --- |", *(f"| `{k.grammar}` | {k.describe} |" for k in KINDS.values()),
              "", *_table(NoiseConfig, "noise."), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
