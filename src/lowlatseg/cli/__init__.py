"""The ``lowlatseg`` command: a thin layer that parses flags, builds configs and calls the library.

Heavy imports (torch, cv2, av) happen inside the command functions so ``--help`` is instant.
Every :class:`lowlatseg.errors.UserError` becomes one line on stderr and exit status 2.

The parsers and commands live by command family: :mod:`lowlatseg.cli.stream` (segment, view),
:mod:`~lowlatseg.cli.train` (train, export), :mod:`~lowlatseg.cli.evaluate` (eval),
:mod:`~lowlatseg.cli.bench` (bench); :mod:`~lowlatseg.cli.common` holds what they share.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from lowlatseg.cli.bench import add_bench_parsers
from lowlatseg.cli.common import Terminated
from lowlatseg.cli.evaluate import add_eval_parsers
from lowlatseg.cli.stream import add_segment_parser, add_view_parser
from lowlatseg.cli.train import add_export_parser, add_train_parsers
from lowlatseg.errors import ParameterError, UserError, WorkerError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from lowlatseg import __version__

    p = argparse.ArgumentParser(prog="lowlatseg", description="Low-latency semantic segmentation of video streams.")
    p.add_argument("--version", action="version", version=f"lowlatseg {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_segment_parser(sub)
    add_view_parser(sub)
    add_train_parsers(sub)
    add_eval_parsers(sub)
    add_export_parser(sub)
    add_bench_parsers(sub)
    return p


def flag_of(parameter: str) -> str:
    """The flag of a library parameter: ``max_gap`` -> ``--max-gap``."""
    return "--" + parameter.replace("_", "-")


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated("terminated (SIGTERM)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        return int(args.func(args))
    except ParameterError as e:  # the library names parameters; here they are flags
        print(f"lowlatseg: error: {e.naming(flag_of)}", file=sys.stderr)
        return 2
    except UserError as e:
        print(f"lowlatseg: error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print("lowlatseg: terminated (SIGTERM); outputs written so far are complete and valid", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("lowlatseg: interrupted; outputs written so far are complete and valid", file=sys.stderr)
        return 130
    except WorkerError as e:
        print(f"lowlatseg: error: {e}; outputs written so far are complete and valid (to run keyframes "
              "inline instead, use --mode adaptive or fixed)", file=sys.stderr)
        return 1
    finally:
        if in_main_thread and previous is not None:  # None: a handler not set from Python; leave ours
            signal.signal(signal.SIGTERM, previous)

