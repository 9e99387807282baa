"""``llmchallenges`` (or ``python -m pytest_llmchallenges``): scaffold a model folder; merge, diff and render
grade reports.

    llmchallenges scaffold -n NAME [--dest DIR]
    llmchallenges merge cpu.json gpu.json -o all.json -o all.md -o all.html
    llmchallenges diff old.json new.json [--format md]
    llmchallenges render grades.json -o grades.html
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .scaffold import ScaffoldError, scaffold

OUTPUTS = (".json", ".md", ".html", ".htm")


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"ERROR: {path}: cannot read a report: {exc}") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("pytest-llmchallenges/report/"):
        raise SystemExit(f"ERROR: {path}: not a pytest-llmchallenges report (no 'schema' key)")
    return data


def _write(data: dict[str, Any], outputs: list[Path]) -> None:
    from .report_html import to_html
    from .report_markdown import to_markdown

    for out in outputs:
        suffix = out.suffix.lower()
        text = json.dumps(data, indent=2) + "\n" if suffix == ".json" else ""
        text = to_markdown(data) if suffix == ".md" else to_html(data) if suffix in (".html", ".htm") else text
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")


def _outputs(parser: argparse.ArgumentParser, outputs: list[Path]) -> list[Path]:
    bad = [str(o) for o in outputs if o.suffix.lower() not in OUTPUTS]
    if bad:
        parser.error(f"unknown report format for {', '.join(bad)}; use a .json, .md or .html file name")
    return outputs


def _labels(paths: list[Path]) -> list[str]:
    """A short, unique name for each run: the file name, or its path where two file names are the same."""
    names = [p.name for p in paths]
    return [p.name if names.count(p.name) == 1 else str(p) for p in paths]


def _merge(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .merge import merge

    outputs = _outputs(parser, args.output)
    runs = [(label, _load(p)) for label, p in zip(_labels(args.reports), args.reports, strict=True)]
    merged, conflicts = merge(runs)
    modes = {str(r["score_mode"]) for r in merged["runs"] if r["score_mode"]}
    if len(modes) > 1:
        print(f"note: the runs used score modes {sorted(modes)}; the merge scores with {merged['run']['score_mode']!r}")
    for c in conflicts:
        print(c.line(), file=sys.stderr)
    if conflicts:
        print(f"ERROR: {len(conflicts)} conflicting verdict(s); nothing written", file=sys.stderr)
        return 1
    _write(merged, outputs)
    for s in merged["submissions"]:
        cov = s["coverage"]
        line = f"{s['rank']:>3}  {s['name']}  {s['overall_score']:.3f} {s['overall_grade']}"
        print(f"{line}  ({cov['answered']}/{cov['total']} answered)")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from .diff import diff, score_lines, to_markdown, to_text

    old, new = _load(args.old), _load(args.new)
    changes = diff(old, new)
    scores = score_lines(old, new)
    print(to_markdown(changes, scores) if args.format == "md" else to_text(changes, scores), end="")
    return 1 if any(c.kind == "worse" for c in changes) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llmchallenges", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("scaffold", help="create a model folder with one PROMPT.md per challenge")
    cmd.add_argument("-n", "--name", required=True, help="the model's folder name")
    cmd.add_argument("--dest", type=Path, default=Path.cwd(), help="where to create it (default: here)")
    cmd = commands.add_parser("merge", help="one ranking from reports of runs on different machines")
    cmd.add_argument("reports", nargs="+", type=Path, help="JSON reports (--llm-report x.json) to merge")
    cmd.add_argument("-o", "--output", action="append", type=Path, required=True, help=".json, .md or .html")
    cmd = commands.add_parser("diff", help="the verdicts that changed between two reports; exit 1 if any got worse")
    cmd.add_argument("old", type=Path)
    cmd.add_argument("new", type=Path)
    cmd.add_argument("--format", choices=("text", "md"), default="text", help="md: for a pull-request comment")
    cmd = commands.add_parser("render", help="write a JSON report as Markdown or HTML")
    cmd.add_argument("report", type=Path)
    cmd.add_argument("-o", "--output", action="append", type=Path, required=True, help=".json, .md or .html")
    args = parser.parse_args(argv)
    if args.command == "merge":
        return _merge(args, parser)
    if args.command == "diff":
        return _diff(args)
    if args.command == "render":
        _write(_load(args.report), _outputs(parser, args.output))
        return 0
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
