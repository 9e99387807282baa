"""``python -m pytest_llmchallenges scaffold -n NAME [--dest DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .scaffold import ScaffoldError, scaffold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_llmchallenges", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("scaffold", help="create a model folder with one PROMPT.md per challenge")
    cmd.add_argument("-n", "--name", required=True, help="the model's folder name")
    cmd.add_argument("--dest", type=Path, default=Path.cwd(), help="where to create it (default: here)")
    args = parser.parse_args(argv)
    try:
        lines = scaffold(args.name, args.dest)
    except (ScaffoldError, OSError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    print("Done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
