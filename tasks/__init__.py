"""Pipeline stages: one module per DVC stage, ``run(params) -> metrics`` + ``python -m tasks.<stage>``.

Only the stages and what they share (:mod:`tasks.stage`). Stages import the ``rlhf`` library and
:mod:`rlhf_ops` (tracking, registry, plots), never Prefect.
"""
