"""`convdesigner`: opens the designer; `convdesigner train|eval|predict|export|bench|info` run the same work headless.

Every command prints a user's message and exits non-zero on a bad input; tracebacks are for bugs only.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__
from .graph import CATEGORIES, KINDS, TEMPLATES


class CommandError(Exception):
    """A problem the user can fix (bad path, bad option); printed without a traceback."""


def _count(n: int) -> str:
    return f"{n:,}"


def cmd_info(args: argparse.Namespace) -> int:
    """Without a file: the layer catalogue and the templates with their parameter counts."""
    print(f"ConvDesigner {__version__}\n\nLayer kinds:")
    for category in CATEGORIES:
        print(f"  {category}")
        for k in KINDS.values():
            if k.category == category:
                params = ", ".join(f"{p.name}={p.default}" for p in k.params)
                print(f"    {k.name:<20} {k.help}" + (f"  [{params}]" if params else ""))
    print("\nTemplates:")
    for t in TEMPLATES.values():
        info = t.build().infer()
        tag = "small" if t.small else "full"
        print(f"  {t.key:<20} {t.title:<22} {tag:<5} {_count(info.total_params):>13} parameters "
              f"{info.total_macs / 1e6:>10.1f} M mult-adds  {t.description}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convdesigner", description="Design, train and inspect convolutional networks.")
    p.add_argument("--version", action="version", version=f"ConvDesigner {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="list layer kinds and templates, or describe a model file")
    info.set_defaults(func=cmd_info)
    return p


def _gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convdesigner", description="Open the designer window "
                                "(commands: train, eval, predict, export, bench, info; see convdesigner COMMAND -h).")
    p.add_argument("--version", action="version", version=f"ConvDesigner {__version__}")
    p.add_argument("model", nargs="?", help="a model file (.h5) to open")
    p.add_argument("--template", help=f"open a template instead: {', '.join(TEMPLATES)}")
    p.add_argument("--screenshot", metavar="PNG", help="render the window offscreen to this PNG and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = _parser()
    known = set(commands._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    try:
        if argv and argv[0] in known:
            args = commands.parse_args(argv)
            return args.func(args)
        args = _gui_parser().parse_args(argv)
        from .gui.app import run_app
        return run_app(model=args.model, template=args.template, screenshot=args.screenshot)
    except CommandError as e:
        print(f"convdesigner: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("\nconvdesigner: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
