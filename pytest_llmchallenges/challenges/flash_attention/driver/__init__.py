"""Child-side code of the flash_attention challenge, the one part of this folder a sandboxed call may read.

Inside the child this folder itself is on sys.path: its modules are top-level there and this file never runs.
"""
