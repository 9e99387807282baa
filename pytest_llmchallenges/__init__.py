"""pytest-llmchallenges: grade LLM-written solutions to eight ML-systems challenges with plain pytest."""

__version__ = "0.1.0"
