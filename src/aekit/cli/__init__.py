"""The ``aekit`` command: a thin typed layer over the library, one module per command group.

    train      aekit train (its options are generated from the configuration's fields)
    evaluate   aekit evaluate, aekit denoise
    artifacts  aekit export, aekit report, aekit models, aekit data
    latent     aekit encode, decode, sample, interpolate, map, score

:func:`main` is the one place that turns known errors into a one-line message and a non-zero exit
status (``--debug`` shows the traceback instead); it shows the parameters a library error names
(``train.batch_size``, ``tile``) as the flags that set them (``--batch-size``, ``--tile``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading

from ..errors import AekitError, did_you_mean
from ..training.distributed import joined, launched
from ..version import __version__
from . import artifacts, evaluate, latent, train
from .options import examples

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser whose mistakes are one line (not the usage, then the error), pointing to --help."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, with an unknown option's likely meaning, from the command it was given to."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = self._subparsers._group_actions[0].choices.get(getattr(parsed, "command", None), self)
            flag = next((a.split("=")[0] for a in extra if a.startswith("--")), "")
            known = [s for a in command._actions for s in a.option_strings if s.startswith("--")]
            command.error(f"unrecognized arguments: {' '.join(extra)}{did_you_mean(flag, known) if flag else ''}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="aekit",
        description="Image autoencoders: train, evaluate and reuse them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples(
            """
            aekit train --config reference                         # the reference experiment (600 epochs)
            aekit train --config reference --epochs 20 --out runs/ref20
            aekit export runs/ref20 --format onnx --out ref20.onnx # verified against PyTorch
            aekit report runs/ref20                                # rebuild runs/ref20/report.html
            aekit models                                           # registered architectures
            aekit train --help                                     # every training option
            """
        ),
    )
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (train, evaluate, artifacts, latent):
        group.add_commands(sub)
    return parser


def flag_message(e: AekitError, command: argparse.ArgumentParser | None) -> str:
    """The error's text with each parameter it names shown as the flag that sets it, where the
    command has one (a positional argument: its metavar, SOURCE): a dotted config key wherever it appears,
    a plain argument name at its first use."""
    text = str(e)
    if command is None:
        return text
    flags = {a.dest: a.option_strings[0] if a.option_strings else a.metavar for a in command._actions
             if a.option_strings or ("." in a.dest and a.metavar)}
    for key in e.keys:
        if key in flags:
            pattern = re.compile(rf"(?<![\w.\-/]){re.escape(key)}(?![\w-]|\.\w)")
            text = pattern.sub(flags[key], text, count=0 if "." in key else 1)
    return text


def _stderr_line(text: str) -> None:
    """One write for the whole line, so lines of several processes sharing stderr never interleave."""
    sys.stderr.write(" ".join(text.split("\n")) + "\n")
    sys.stderr.flush()


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a plain kill, a closed terminal): stopped as Ctrl-C stops a command, so that a training
    says what it keeps and an --overwrite that had not checkpointed gives the folder back to the run it replaced."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


@contextlib.contextmanager
def _stopped_by_signals():
    """SIGTERM and SIGHUP raise :class:`Stopped` while the command runs (one process alone: the processes of a
    launcher, aekit --nproc or torchrun, keep what it expects of them)."""
    signals = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    if launched() or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, _raise_stopped) for s in signals if signal.getsignal(s) is signal.SIG_DFL}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _escaping_stdout():
    """Characters stdout cannot encode (a file name outside cp1252, Windows' encoding for redirected output) written as
    escapes, ``\\u5199``, as Python writes them on stderr: not an error after the work is done."""
    errors = getattr(sys.stdout, "errors", None)
    if errors != "strict" or not hasattr(sys.stdout, "reconfigure"):
        yield
        return
    sys.stdout.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):  # (flushes: a reader gone, a closed stdout)
            sys.stdout.reconfigure(errors=errors)


def main(argv: list[str] | None = None) -> int:
    with _stopped_by_signals(), _escaping_stdout():
        code = _main(argv)
    if code and joined():  # one of several processes, failed (a peer lost?): leave now, as after Ctrl-C
        _leave_now(code)
    return code


def _leave_now(code: int) -> None:
    """Exit with ``code`` without tearing torch's threads down (one of several processes: they can race a peer's
    sockets, a native abort), the output flushed first."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for --nproc, which runs the command again
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return args.func(args)
    except AekitError as e:
        if args.debug:
            raise
        if e.quiet:  # one of several processes, and rank 0 says it for all (training.agreement)
            return EXIT_USER_ERROR
        command = parser._subparsers._group_actions[0].choices.get(args.command)
        _stderr_line(f"aekit: error: {flag_message(e, command)}")
        return EXIT_USER_ERROR
    except BrokenPipeError:  # the reader of its output went away (a pager closed, `| head`): stop quietly, as SIGPIPE
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 128 + getattr(signal, "SIGPIPE", 13)  # Windows has none: 141, as on Linux and macOS
    except Stopped as e:  # SIGTERM, SIGHUP (one process alone)
        _stderr_line(f"aekit: stopped by {signal.Signals(e.signum).name}")
        return 128 + e.signum
    except KeyboardInterrupt:
        if launched():  # one of several processes: the launcher (aekit --nproc, torchrun) says it once, and
            _leave_now(130)  # this process leaves its process group as it is (training.distributed)
        _stderr_line("aekit: interrupted")
        return 130
    except Exception as e:  # an unexpected failure: one line, the traceback with --debug
        if args.debug:
            raise
        _stderr_line(f"aekit: error: {type(e).__name__}: {e} (run with --debug for the traceback)")
        return EXIT_INTERNAL_ERROR
