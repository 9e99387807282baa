"""Stale draft: drops finished beams (kept to check that the driver prefers the current file)."""
from model import LanguageModel

MODEL = LanguageModel()


def batched_beam_search(prompts, beam_width, max_new_tokens, alpha, eos_token_id):
    raise RuntimeError("old draft")
