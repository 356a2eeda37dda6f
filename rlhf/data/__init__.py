"""Data: rank lists and their I/O, the input readers, cleaning, splits, and the ``prepare`` entry point.

The public pieces other stages reuse::

    from rlhf.data import RankList, read_ranklists, write_ranklists, read_published_tsv, DataError
"""
from rlhf.data.errors import DataError, RejectCounter
from rlhf.data.ranklist import RankList, read_published_tsv, read_ranklists, write_ranklists

__all__ = ["DataError", "RankList", "RejectCounter", "read_published_tsv", "read_ranklists", "write_ranklists"]
