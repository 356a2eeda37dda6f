"""Data: rank lists and their I/O, the input readers, cleaning, splits, and the ``prepare`` entry point.

The public pieces other stages reuse::

    from rlhf.data.ranklist import RankList, read_ranklists, write_ranklists, read_published_tsv
    from rlhf.data.errors import DataError, RejectCounter

The package re-exports nothing, so importing one module (the params loader imports the config)
does not import the others.
"""
