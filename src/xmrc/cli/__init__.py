"""`xmrc`: the command line the workflow's rules call, one subcommand per step.

Every user-facing problem ends as one line `xmrc: error: ...` on stderr and exit status 2, a disk or quota
that is full included, wherever the write was (xmrc.io names the file and removes its partial output).
"""

from __future__ import annotations

import argparse
import sys

from xmrc import __version__
from xmrc.cli import cluster, data, errors, finetune, generate, intervals, layers, oracle, paper, protocol
from xmrc.exceptions import XmrcError
from xmrc.io import no_space_error, no_space_reason

# Each module adds its subcommands with `register(command)`, where `command(name, func)` returns an argparse
# subparser whose help is the docstring of func; in this order in `xmrc --help`.
STAGES = (data, generate, errors, finetune, oracle, layers, paper, intervals, protocol, cluster)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xmrc", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"xmrc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func):
        help_text = " ".join(func.__doc__.split())
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    for stage in STAGES:
        stage.register(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except XmrcError as error:
        print(f"xmrc: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xmrc: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a write outside xmrc.io (a library's own files) that ran out of space
        reason = no_space_reason(error)
        if reason is None:
            raise
        filename = no_space_error(error).filename
        where = f"{filename}: " if filename is not None else ""
        print(f"xmrc: error: {where}{reason}; free space and rerun", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
