"""The rank-list labelling app: people rank K sampled candidates for a prompt, best first, with ties.

Its own package next to ``rlhf/`` (DESIGN.md §2): a Starlette app (:mod:`labeler.app`) writes to
its own SQLite database (:mod:`labeler.store`); :func:`labeler.export.export_labels` turns the
accepted labels into the rank-list JSONL that the ``prepare`` stage reads from ``data/labels/``.

Importing this package is cheap (no torch, no web framework): the command line and the store's
writer processes import only what they use.
"""
