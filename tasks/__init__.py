"""Pipeline stages: one module per DVC stage, ``run(params) -> metrics`` + ``python -m tasks.<stage>``.

Stages import the ``rlhf`` library and MLflow (through :mod:`tasks.tracking`), never Prefect.
"""
