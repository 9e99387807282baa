"""The dflash_verify challenge: row (challenge.toml), prompt, suite, oracle, driver (challenges/__init__.py)."""
