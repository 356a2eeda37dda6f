"""The ``rlhf`` command line: the top layer over flows, tasks and the library."""
