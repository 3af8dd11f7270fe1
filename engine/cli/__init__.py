"""The `xdepth` command: `main(argv) -> exit code`, its options, and the demo."""

from xdepth.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
