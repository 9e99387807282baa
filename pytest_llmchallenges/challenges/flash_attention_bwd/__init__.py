"""The flash_attention_bwd challenge: row (challenge.toml), prompt, suite, oracle, driver (challenges/__init__.py)."""
