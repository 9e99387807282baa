"""One ranking from runs made on different machines (a CPU runner, a GPU runner), merged test by test.

A test graded in one run and skipped for a capability in another takes the graded verdict; two different
verdicts for one test are a conflict, reported and never resolved here. Each merged verdict says which run it
came from, and ``runs`` says under which capabilities and isolation each run was made. Scores are then
recomputed with ``scoring.py`` from the merged verdicts, so a merged report reads like a single run's.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .challenges import CHALLENGE_NAMES, CHALLENGES
from .report_view import capability_label, category, is_perf
from .scoring import NOT_SCORED, challenge_score, counted, letter, overall_score, status, tally

SCHEMA = "pytest-llmchallenges/report/3"
GRADED = ("passed", "failed")


@dataclass(frozen=True)
class Conflict:
    submission: str
    challenge: str
    test: str
    verdicts: tuple[tuple[str, str], ...]  # (run, "failed (wrong)")

    def line(self) -> str:
        said = "; ".join(f"{v} in {run}" for run, v in self.verdicts)
        return f"conflict: {self.submission} / {self.challenge} / {self.test}: {said}"


def test_key(test: dict[str, Any]) -> str:
    """What identifies a test across machines: the node id without its path (rootdirs differ), else the name."""
    nodeid = str(test.get("nodeid") or "")
    return nodeid.split("::", 1)[1] if "::" in nodeid else str(test.get("test") or nodeid)


def is_graded(test: dict[str, Any]) -> bool:
    return test.get("outcome") in GRADED and category(test) != "grader"


def verdict_word(test: dict[str, Any]) -> str:
    """``passed``, ``failed (wrong)``, ``skipped (capability)``: what the run said, without its message."""
    outcome, cat = str(test.get("outcome") or "?"), category(test)
    return f"{outcome} ({cat})" if cat and outcome != "passed" else outcome


def _preference(test: dict[str, Any]) -> int:
    """Lower wins among verdicts that do not conflict: a grade, then a reason to skip, then lacking a machine."""
    cat = category(test)
    if is_graded(test):
        return 0
    return {"grader": 2, "capability": 3, "missing": 4}.get(cat, 1)


def _choose(found: list[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]] | list[tuple[str, str]]:
    """The verdict to keep, or the conflicting (run, verdict) pairs."""
    graded = [(run, t) for run, t in found if is_graded(t)]
    if len({verdict_word(t) for _, t in graded}) > 1:
        return [(run, verdict_word(t)) for run, t in graded]
    return min(found, key=lambda rt: _preference(rt[1]))


def _challenge_order(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for c in doc.get("challenges") or []:
            if isinstance(c, dict) and c.get("name") and c["name"] not in seen:
                seen[c["name"]] = {"name": c["name"], "difficulty": c.get("difficulty") or _difficulty(c["name"])}
        for s in doc.get("submissions") or []:
            for c in s.get("challenges") or []:
                name = c.get("name")
                if name and name not in seen:
                    seen[name] = {"name": name, "difficulty": c.get("difficulty") or _difficulty(name)}
    known = [seen[n] for n in CHALLENGE_NAMES if n in seen]
    return known + [v for k, v in seen.items() if k not in CHALLENGE_NAMES]


def _difficulty(name: str) -> str:
    spec = CHALLENGES.get(name)
    return spec.difficulty if spec else "medium"


def _run_entry(label: str, doc: dict[str, Any]) -> dict[str, Any]:
    found = doc.get("run")
    run: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "run": label,
        "schema": doc.get("schema"),
        "capabilities": dict(run.get("capabilities") or {}),
        "isolation": run.get("isolation"),
        "seed": run.get("seed"),
        "score_mode": run.get("score_mode"),
    }


def _merged_run(entries: list[dict[str, Any]], score_mode: str) -> dict[str, Any]:
    caps: dict[str, bool] = {}
    for e in entries:
        for k, v in e["capabilities"].items():
            caps[k] = bool(caps.get(k)) or bool(v)
    isolations = list(dict.fromkeys(str(e["isolation"]) for e in entries if e["isolation"]))
    return {
        "score_mode": score_mode,
        "capabilities": caps,
        "isolation": isolations[0] if len(isolations) == 1 else ("mixed: " + ", ".join(isolations) or "unknown"),
        "seed": next((e["seed"] for e in entries if e["seed"] is not None), None),
        "provisional": False,
        "missing_capabilities": sorted(k for k, v in caps.items() if not v),
    }


def merge(runs: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], list[Conflict]]:
    """Merge (label, report) pairs; the merged report is only to be written when there is no conflict."""
    docs = [doc for _, doc in runs]
    challenges = _challenge_order(docs)
    entries = [_run_entry(label, doc) for label, doc in runs]
    modes = [e["score_mode"] for e in entries if e["score_mode"]]
    merged: dict[str, Any] = {
        "schema": SCHEMA,
        "run": _merged_run(entries, modes[0] if modes else "all"),
        "runs": entries,
        "challenges": challenges,
        "submissions": [],
        "grader_faults": [],
    }
    conflicts: list[Conflict] = []
    # submission -> challenge -> test key -> [(run, test)]
    found: dict[str, dict[str, dict[str, list[tuple[str, dict[str, Any]]]]]] = {}
    meta: dict[str, dict[str, Any]] = {}
    chal_meta: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for label, doc in runs:
        for s in doc.get("submissions") or []:
            name = str(s.get("name"))
            meta.setdefault(name, {"name": name, "path": s.get("path"), "efficiency": {}})
            for c in s.get("challenges") or []:
                cname = str(c.get("name"))
                chal_meta.setdefault((name, cname), []).append((label, c))
                bucket = found.setdefault(name, {}).setdefault(cname, {})
                for t in c.get("tests") or []:
                    bucket.setdefault(test_key(t), []).append((label, t))
            _merge_efficiency(meta[name]["efficiency"], label, s.get("efficiency"), s)
    for name, by_challenge in found.items():
        sub = {"name": name, "path": meta[name]["path"], "challenges": []}
        for c in challenges:
            if c["name"] not in by_challenge:
                continue
            tests = []
            for key, verdicts in by_challenge[c["name"]].items():
                chosen = _choose(verdicts)
                if isinstance(chosen, list):
                    conflicts.append(Conflict(name, c["name"], key, tuple(chosen)))
                    continue
                run, t = chosen
                tests.append({**t, "run": run})
            tests.sort(key=lambda t: str(t.get("nodeid") or t.get("test")))
            caps = _missing_caps(chal_meta[(name, c["name"])], tests)
            sub["challenges"].append({"name": c["name"], "difficulty": c["difficulty"], "tests": tests, **caps})
        if meta[name]["efficiency"]:
            sub["efficiency"] = {k: v for k, (_, v) in meta[name]["efficiency"].items()}
        merged["submissions"].append(sub)
    seen_faults: set[str] = set()
    for label, doc in runs:
        for f in doc.get("grader_faults") or []:
            if isinstance(f, dict) and f.get("nodeid") not in seen_faults:
                seen_faults.add(str(f.get("nodeid")))
                merged["grader_faults"].append({**f, "run": label})
    return rescore(merged), conflicts


def _missing_caps(sources: list[tuple[str, dict[str, Any]]], tests: list[dict[str, Any]]) -> dict[str, Any]:
    kept_runs = {t["run"] for t in tests if category(t) == "capability"}
    caps = sorted({cap for run, c in sources if run in kept_runs for cap in c.get("missing_capabilities") or []})
    return {"missing_capabilities": caps}


def _merge_efficiency(into: dict[str, tuple[int, Any]], label: str, eff: Any, sub: dict[str, Any]) -> None:
    """Per challenge, the figures of the run that graded most of its tests (the machine that could run it)."""
    if not isinstance(eff, dict):
        return
    graded = {c.get("name"): sum(is_graded(t) for t in c.get("tests") or []) for c in sub.get("challenges") or []}
    for challenge, figures in eff.items():
        weight = graded.get(challenge, 0)
        if challenge not in into or weight > into[challenge][0]:
            value = {**figures, "run": label} if isinstance(figures, dict) else figures
            into[challenge] = (weight, value)


def _partial_reason(tests: list[dict[str, Any]], graded: int, total: int, labels: str) -> str | None:
    """ "3 of 12 graded: no CUDA GPU" where a capability left tests unrun, else None."""
    capability = [t for t in tests if t.get("outcome") == "skipped" and category(t) == "capability"]
    if not capability:
        return None
    reason = Counter(str(t.get("message") or "a capability") for t in capability).most_common(1)[0][0]
    return f"{graded} of {total} graded: {labels or reason}"


def rescore(doc: dict[str, Any]) -> dict[str, Any]:
    """Counts, statuses, scores, grades, coverage and ranks recomputed from each test's verdict (scoring.py)."""
    doc = copy.deepcopy(doc)
    mode = str((doc.get("run") or {}).get("score_mode") or "all")
    total = len(doc.get("challenges") or [])
    for sub in doc.get("submissions") or []:
        scored: list[tuple[str, float | None]] = []
        by_category: Counter[str] = Counter()
        sums = Counter[str]()
        for c in sub.get("challenges") or []:
            tests = [t for t in c.get("tests") or [] if not is_perf(t)]  # correctness only, as in reports.py
            counts = tally([(str(t.get("outcome")), category(t)) for t in tests])
            caps = [str(x) for x in c.get("missing_capabilities") or []]
            labels = ", ".join(capability_label(x) for x in caps)
            reason = _partial_reason(tests, counts["graded"], counts["total"], labels)
            state = status([category(t) for t in tests], counts["graded"], reason is not None)
            score = challenge_score(counts["passed"], counts["failed"])
            c.update(
                status=state,
                partial_reason=reason if state == "partial" else None,
                **counts,
                score=0.0 if score is None else round(score, 6),
                grade=NOT_SCORED if score is None or state in ("missing", "n/a") else letter(score),
            )
            c.setdefault("missing_capabilities", [])
            by_category.update(category(t) for t in tests if category(t))  # as reports.py counts them
            sums.update(passed=counts["passed"], failed=counts["failed"], skipped=counts["skipped"])
            scored.append((c["difficulty"], counted(state, score if state != "n/a" else None, mode)))
        overall = overall_score(scored)
        answered = sum(c["status"] != "missing" for c in sub.get("challenges") or [])
        sub.update(
            overall_score=0.0 if overall is None else round(overall, 6),
            overall_grade=NOT_SCORED if overall is None else letter(overall),
            provisional=any(c["status"] == "partial" for c in sub.get("challenges") or []),
            coverage={"answered": answered, "total": total or len(sub.get("challenges") or [])},
            counts={
                "passed": sums["passed"],
                "failed": sums["failed"],
                "skipped": sums["skipped"],
                "by_category": dict(sorted(by_category.items())),
            },
        )
    subs = sorted(doc.get("submissions") or [], key=lambda s: (-float(s["overall_score"]), str(s["name"])))
    for i, s in enumerate(subs):  # equal scores share a rank, as in a single run's report
        same = i and subs[i - 1]["overall_score"] == s["overall_score"]
        s["rank"] = subs[i - 1]["rank"] if same else i + 1
    doc["submissions"] = subs
    if isinstance(doc.get("run"), dict):
        doc["run"]["provisional"] = any(s["provisional"] for s in subs)
    return doc
