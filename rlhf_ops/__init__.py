"""Operations around the stages: environment, MLflow tracking and registry, data lineage, comparisons, plots.

Imported by the stages (``tasks/``), the flows, the command line and the labelling app; imports the
``rlhf`` library, never ``tasks`` or ``flows``. :mod:`rlhf_ops.tracking` is the one module that
imports MLflow. Importing a module here changes nothing in the process environment: entry points
call :func:`rlhf_ops.environment.setup_environment` themselves.
"""
