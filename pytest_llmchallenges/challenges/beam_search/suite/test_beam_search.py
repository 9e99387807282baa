"""Grading tests for the beam_search prompt: batched beam search with a length penalty and EOS retention.

The submission's search runs on the grader's model, installed wherever the search takes its model from (see
llmc_drive_beam_search): a ScriptedLM, whose next-token log-probs are prescribed per generated suffix, for
the EOS and ranking rules, and the grader's MinimalLM (vocab 1000, d_model 64, one block) for greedy and
batch behaviour. The installed model answers in the form the submission's own model used (logits, which
for a ScriptedLM are its log-probs shifted by a per-position constant, log-probs or probabilities), so a
search that forgets its log-softmax is exposed. Every expected answer comes from the float64 oracle in
oracles/beam_search.py or is derived by hand in the test.

Conventions the tests assume (the prompt implies them):
- a finished sequence includes the EOS token that ended it, and the EOS counts in its length (section 4
  freezes generated_length when the beam *produces* EOS; section 5 divides by len(seq)**alpha);
- score = accumulated log-prob / len**alpha, the accumulated log-prob is the raw sum with the EOS log-prob
  included, the prompt never counts; results are generated tokens only, best first.

Where the prompt misleads:
- Section 2 says to sort the pool "by total logprob"; sections 3 and 4 say selection uses the length-penalised
  score. The two differ only when a finished beam competes with longer candidates. Every script here makes
  both readings select the same beams (the oracle checks it), so neither reading is penalised; the final
  ranking (section 5) is the penalised score either way.
- "Take top-(2*K) candidates per beam (not just top-K)": under this prompt's own rules top-K per beam gives
  the same result (a candidate below rank K of its beam has K same-length siblings ahead of it and can never
  be selected), so no test tells them apart and none tries.
- Test 3's "continuing beam with logprob -4.0" and "-5.0" are totals (accumulated), not per-step log-probs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from pytest_llmchallenges.challenges.beam_search.driver import llmc_drive_beam_search as driver
from pytest_llmchallenges.challenges.beam_search.driver.llmc_scripted import MinimalTokenModel, ScriptedLM
from pytest_llmchallenges.challenges.beam_search.oracle import AmbiguousScript
from pytest_llmchallenges.challenges.beam_search.oracle import beam_search as oracle_search
from pytest_llmchallenges.grading import DesignError, GradingFailure, design, wrong

CHALLENGE = "beam_search"

VOCAB = 1000  # the prompt's vocabulary; every model the tests install has it
EOS, A, B, C, Z = 5, 17, 23, 31, 29  # scripted token ids; EOS is deliberately not 0
PROMPT = [101, 102, 103]  # scripted prompts use tokens that no script entry proposes
# Scores: the oracle is exact in float64; a float32 search drifts by ~1e-7 relative per step.
SCORE_RTOL, SCORE_ATOL = 1e-5, 1e-9
Beams = list[list[tuple[list[int], float]]]


@pytest.fixture
def scripted_lm() -> Callable[..., ScriptedLM]:
    """The "monkey-patched EOS model": ``scripted_lm(prompts, script, default=None, floor=None)``; script
    entries ``(suffix, {token: log-prob})`` key on the tokens generated after the prompt."""

    def make(prompts: Sequence[Sequence[int]], script: Any = (), **kw: Any) -> ScriptedLM:
        return ScriptedLM(prompts, VOCAB, script, **kw)

    return make


def job(model: Any, prompts: list[list[int]], k: int, steps: int, alpha: float, eos: int) -> dict:
    """One search for the driver: ``model`` is a ScriptedLM or the MinimalLM."""
    spec = model.to_spec() if isinstance(model, ScriptedLM) else {"kind": "minimal"}
    return dict(prompts=prompts, beam_width=k, max_new_tokens=steps, alpha=alpha, eos_token_id=eos, model=spec)


def run_searches(sandbox: Any, jobs: list[dict]) -> list[tuple[Beams, dict]]:
    """The submission's results for several searches, in one sandboxed call: (beams, driver info) each,
    beams as per-item lists of (tokens, score)."""
    results = []
    for out in sandbox.run(driver.searches, jobs).value:
        if out["rows_without_prompt"]:
            raise GradingFailure(
                "interface",
                f"{out['search']} called the model on {out['rows_without_prompt']} of {out['rows']} sequences "
                f"that contain no prompt (incremental/KV-cache calls cannot be served by the grader's model); "
                f"model installed as: {out['installed']}",
            )
        beams = [[([int(t) for t in toks], float(s)) for toks, s in item] for item in out["beams"]]
        results.append((beams, out))
    return results


def run_search(
    sandbox: Any, model: Any, prompts: list[list[int]], k: int, steps: int, alpha: float, eos: int
) -> tuple[Beams, dict]:
    """The submission's result for one search."""
    return run_searches(sandbox, [job(model, prompts, k, steps, alpha, eos)])[0]


def _fmt(beams: list[tuple[list[int], float]]) -> str:
    return "[" + ", ".join(f"({t}, {s:.6g})" for t, s in beams) + "]"


def assert_beams(got: Beams, expected: Beams, what: str, prompts: list[list[int]] | None = None) -> None:
    """Same items, same sequences in the same order, finite scores equal to the expected ones."""
    if len(got) != len(expected):
        wrong(f"{what}: {len(got)} batch items returned, expected {len(expected)}")
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        label = f"{what}, item {i}"
        bad = [s for _, s in g if not np.isfinite(s)]
        if bad:
            wrong(f"{label}: non-finite scores {bad} (underflow? keep everything in log space): {_fmt(g)}")
        if prompts and g and all(t[: len(prompts[i])] == prompts[i] for t, _ in g):
            wrong(f"{label}: the sequences start with the prompt {prompts[i]}; return generated tokens only")
        if [t for t, _ in g] != [t for t, _ in e]:
            wrong(f"{label}: got {_fmt(g)}, expected {_fmt(e)}")
        got_s, exp_s = np.array([s for _, s in g]), np.array([s for _, s in e])
        if not np.allclose(got_s, exp_s, rtol=SCORE_RTOL, atol=SCORE_ATOL):
            wrong(f"{label}: scores {got_s.tolist()}, expected {exp_s.tolist()} (score = accumulated / len**alpha)")


def minimal_prompts(rng: np.random.Generator, lengths: Sequence[int]) -> list[list[int]]:
    return [[int(t) for t in rng.choice(np.arange(1, VOCAB), size=n, replace=False)] for n in lengths]


# --- the prompt's three tests ------------------------------------------------------------------------------
def test_greedy_equivalence(sandbox, rng, minimal_lm):
    """Prompt's Test 1: K=1 and alpha=0 is greedy decoding on the MinimalLM: the argmax tokens and their
    summed log-probability; once with an EOS the greedy path never meets, once with EOS on the path, where
    both stop right after emitting it."""
    prompt, steps = minimal_prompts(rng, [4])[0], 10
    full = minimal_lm.greedy(prompt, steps)
    cut = next(i for i in range(3, steps) if full[i] not in full[:i])
    cases = {  # label -> (eos, expected tokens)
        "EOS absent": (next(t for t in range(1, VOCAB) if t not in full and t not in prompt), full),
        "EOS on the greedy path": (full[cut], full[: cut + 1]),
    }
    log_p = MinimalTokenModel(minimal_lm, [prompt]).log_probs(0, np.array(prompt + full))
    results = run_searches(sandbox, [job(minimal_lm, [prompt], 1, steps, 0.0, eos) for eos, _ in cases.values()])
    for (label, (_, path)), (got, _) in zip(cases.items(), results, strict=True):
        total = float(sum(log_p[len(prompt) - 1 + i, t] for i, t in enumerate(path)))
        assert_beams(got, [[(path, total)]], f"K=1, alpha=0 vs greedy decoding, {label}", [prompt])


def test_batch_independence(sandbox, rng, minimal_lm):
    """Prompt's Test 2: prompts of lengths 3 and 5, K=3, alpha=0.6: each item's beams batched equal its
    beams searched alone (tokens, and scores to 1e-9). EOS is the second-best first token of prompt 0, so
    finished and unfinished beams coexist in the batch."""
    prompts = minimal_prompts(rng, [3, 5])
    eos = int(np.argsort(-MinimalTokenModel(minimal_lm, prompts).next_log_probs(0, []))[1])
    jobs = [job(minimal_lm, ps, 3, 6, 0.6, eos) for ps in (prompts, prompts[:1], prompts[1:])]
    (batched, _), *alone_results = run_searches(sandbox, jobs)
    if len(batched) != 2:
        wrong(f"2 prompts gave {len(batched)} result lists")
    for i, (p, (alone, _)) in enumerate(zip(prompts, alone_results, strict=True)):
        if [t for t, _ in batched[i]] != [t for t, _ in alone[0]] or not np.allclose(
            [s for _, s in batched[i]], [s for _, s in alone[0]], rtol=0, atol=1e-9
        ):
            wrong(f"prompt {i} (length {len(p)}): batched {_fmt(batched[i])} but alone {_fmt(alone[0])}")


def test_eos_retention(sandbox, scripted_lm):
    """Prompt's Test 3, as stated: K=2; at step 1 one beam emits EOS with total -3.0 while another continues
    at -4.0; at step 2 the continuing beam reaches -5.0. The finished beam wins with score -3.0 (EOS log-prob
    included), the continuing one is the runner-up. Dropping finished beams from the pool makes -5.0 win."""
    model = scripted_lm([PROMPT], [([], {EOS: -3.0, A: -4.0}), ([A], {B: -1.0})])
    got, _ = run_search(sandbox, model, [PROMPT], 2, 2, 0.0, EOS)
    assert_beams(got, [[([EOS], -3.0), ([A, B], -5.0)]], "EOS retention (alpha=0)", [PROMPT])


# --- the length penalty ------------------------------------------------------------------------------------
LENGTH_SCRIPT = [([], {EOS: -1.2, A: -0.9, Z: -3.0}), ([A], {EOS: -0.8, B: -2.5}), ([A, B], {EOS: -0.1})]
LENGTH_EXPECTED = [([A, EOS], -1.7 / 2**0.6), ([EOS], -1.2), ([A, B, EOS], -3.5 / 3**0.6)]


def test_length_penalty_ranking(sandbox, scripted_lm):
    """alpha=0.6, K=3, three finished beams of lengths 1, 2, 3 (raw totals -1.2, -1.7, -3.5): ranked by
    accumulated / length**alpha, the length-2 beam (-1.12) beats the length-1 beam (-1.2). The scores use the
    raw accumulated log-prob with the EOS log-prob counted and EOS counted in the length; folding the penalty
    into the accumulated score, ranking by the raw total, or leaving EOS out all change the answer."""
    model = scripted_lm([PROMPT], LENGTH_SCRIPT)
    expected = [LENGTH_EXPECTED]
    ranked = [t for t, _ in oracle_search(model, [PROMPT], 3, 6, 0.6, EOS)[0]]
    design(ranked == [t for t, _ in expected[0]], "the oracle disagrees with the expected ranking")
    got, _ = run_search(sandbox, model, [PROMPT], 3, 6, 0.6, EOS)
    assert_beams(got, expected, "length-penalised ranking (alpha=0.6)", [PROMPT])


def test_prompt_not_counted_in_length(sandbox, scripted_lm):
    """The same script after prompts of lengths 2 and 7 gives identical results, those of the length test:
    generated_length excludes the prompt. Counting the prompt (7 + 1 vs 7 + 2) flips the top two."""
    prompts = ([201, 202], [301, 302, 303, 304, 305, 306, 307])
    results = run_searches(sandbox, [job(scripted_lm([p], LENGTH_SCRIPT), [p], 3, 6, 0.6, EOS) for p in prompts])
    for prompt, (got, _) in zip(prompts, results, strict=True):
        assert_beams(got, [LENGTH_EXPECTED], f"prompt of length {len(prompt)}", [prompt])


# --- what comes back ---------------------------------------------------------------------------------------
def _random_tree(rng: np.random.Generator, depth: int, eos: int, branching: int = 5) -> list:
    """Per prompt, a scripted tree: every node proposes `branching` tokens (EOS among them at some nodes)
    with Dirichlet probabilities carrying 90% of the mass."""
    script = []
    for index in range(2):
        frontier: list[tuple[int, ...]] = [()]
        for _ in range(depth):
            nxt = []
            for node in frontier:
                tokens = [int(t) for t in rng.choice(np.arange(10, 60), size=branching, replace=False)]
                if rng.random() < 0.4:
                    tokens[int(rng.integers(branching))] = eos
                probs = 0.9 * rng.dirichlet(np.ones(branching))
                script.append((index, list(node), {t: float(np.log(p)) for t, p in zip(tokens, probs, strict=True)}))
                nxt += [(*node, t) for t in tokens if t != eos]
            frontier = nxt
    return script


def test_returns_k_sorted(sandbox, rng, scripted_lm):
    """Two prompts, K=4, alpha=0.6, max_new_tokens=4 on a bushy scripted tree where max_new_tokens is reached
    with unfinished beams: each item returns exactly K distinct sequences of generated tokens only, sorted by
    penalised score (best first), finished and unfinished together, equal to the oracle's."""
    prompts = [[401, 402, 403], [501, 502, 503, 504]]
    for _ in range(100):  # the first tree (from the test's seed) on which both readings of the prompt agree
        model = scripted_lm(prompts, _random_tree(rng, 4, EOS))
        try:
            expected = oracle_search(model, prompts, 4, 4, 0.6, EOS)
            break
        except AmbiguousScript:
            continue
    else:
        raise DesignError("test design: no unambiguous scripted tree in 100 draws")
    design(all(any(t[-1] != EOS for t, _ in item) for item in expected), "all beams finished")
    design(any(t[-1] == EOS for item in expected for t, _ in item), "no finished beam")
    got, _ = run_search(sandbox, model, prompts, 4, 4, 0.6, EOS)
    for i, item in enumerate(got):
        if len(item) != 4:
            wrong(f"item {i}: {len(item)} sequences returned, expected K=4: {_fmt(item)}")
        if len({tuple(t) for t, _ in item}) < len(item):
            wrong(f"item {i}: the same sequence returned more than once: {_fmt(item)}")
        scores = [s for _, s in item]
        if any(b > a for a, b in itertools.pairwise(scores)):
            wrong(f"item {i}: not sorted by score, best first: {_fmt(item)}")
    assert_beams(got, expected, "K=4 best on a scripted tree", prompts)


def test_finished_beams_hold_slots(sandbox, scripted_lm):
    """K=2, alpha=0.6: after step 2 the two best beams ([EOS] at -0.9 and [A, EOS] at -1.06) are finished,
    so the item stops; [A, B] (-2.8) lost its slot and must never be expanded. A search that keeps K
    unfinished beams alive beside a separate finished list expands it into [A, B, C, ..., EOS], whose 20
    near-certain tokens give the penalised score -2.8 / 20**0.6 = -0.46, and wrongly returns it first."""
    script = [([], {EOS: -0.9, A: -1.2}), ([A], {EOS: -0.4, B: -1.6})]
    script += [([A, B] + [C] * j, {C: -1e-4}) for j in range(17)] + [([A, B] + [C] * 17, {EOS: -1e-4})]
    model = scripted_lm([PROMPT], script)
    expected = oracle_search(model, [PROMPT], 2, 20, 0.6, EOS)
    got, out = run_search(sandbox, model, [PROMPT], 2, 20, 0.6, EOS)
    expanded = [s for s in out["suffixes"] if s[:3] == [A, B, C]]
    try:
        assert_beams(got, expected, "finished beams keep their slots", [PROMPT])
    except AssertionError as exc:
        note = " (it expanded [A, B, C, ...], which had lost its slot to finished beams)" if expanded else ""
        wrong(f"{exc}{note}")


def test_log_space_no_underflow(sandbox, scripted_lm):
    """Every context has one likely token (log-prob 0) and all others at about -1000 (probability e**-1000,
    which underflows to 0 in float64): K=3 still returns K beams with finite scores near -1000 / len**alpha,
    ranked correctly. Multiplying probabilities gives 0, log(0) = -inf, and ties among all runners-up."""
    model = scripted_lm([PROMPT], default={7: 0.0}, floor=-1000.0)
    expected = oracle_search(model, [PROMPT], 3, 4, 0.6, 500)
    got, _ = run_search(sandbox, model, [PROMPT], 3, 4, 0.6, 500)
    if got and len(got[0]) != 3:
        wrong(f"{len(got[0])} beams returned, expected K=3 (beams at log-prob -1000 lost?): {_fmt(got[0])}")
    assert_beams(got, expected, "log-probs at -1000", [PROMPT])


def test_beam_wider_than_half_vocab(sandbox, scripted_lm):
    """2K > V (K=600 with V=1000, 2 steps) must not crash (top-2K of a 1000-token row is the whole row) and
    gives the oracle's K beams; K > V (1001, 1 step) returns the V one-token sequences there are, sorted."""
    model = scripted_lm([PROMPT])
    cases = [(600, 2), (1001, 1)]
    results = run_searches(sandbox, [job(model, [PROMPT], k, steps, 0.6, EOS) for k, steps in cases])
    for (k, steps), (got, _) in zip(cases, results, strict=True):
        expected = oracle_search(model, [PROMPT], k, steps, 0.6, EOS, both_rules=False)
        assert_beams(got, expected, f"K={k}, V={VOCAB}", [PROMPT])


def test_matches_spec_on_minimal_lm(sandbox, rng, minimal_lm):
    """Two prompts on the MinimalLM, K=4, alpha=0.6, 6 new tokens, EOS one of prompt 1's likely first tokens:
    the K best sequences and scores of each item equal the oracle's (duplicated start beams, a missing
    log-softmax of the model's logits and similar slips show up here)."""
    prompts = minimal_prompts(rng, [3, 6])
    model = MinimalTokenModel(minimal_lm, prompts)
    eos = int(np.argsort(-model.next_log_probs(1, []))[2])
    expected = oracle_search(model, prompts, 4, 6, 0.6, eos)
    got, _ = run_search(sandbox, minimal_lm, prompts, 4, 6, 0.6, eos)
    assert_beams(got, expected, "K=4 on the MinimalLM", prompts)
