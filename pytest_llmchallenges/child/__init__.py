"""Code that runs inside the sandboxed child.

Every module here is importable two ways: as ``pytest_llmchallenges.child.<name>`` in the grading process,
and as the top-level ``<name>`` inside the child, where this folder is put on ``sys.path`` and the
``pytest_llmchallenges`` package itself cannot be imported. So modules here import each other by plain name
through :func:`_sibling`-style fallbacks and never import the grader's package.
"""
