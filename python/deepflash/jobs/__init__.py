"""The configured jobs behind ``deepflash <job>`` and the repository's spark-submit scripts in ``jobs/``.

Modules:
    main      the argument parser, ``JOBS`` (the registry) and ``main(argv)``
    base      ``Job`` (how a subcommand is called), ``Invocation`` (what it is called with)
    sources   the Spark session from the ``spark`` section, the ``data`` section's DataFrames or series
    outputs   the atomic output directory, JSON files, MLflow set-up, evaluation metrics and plots
    config    loading a YAML or JSON config, ``--set`` overrides and the schema every job is checked against
    console   the log lines on stderr (``setup_console``), one per phase with its seconds (``phase``), and the
              driver JVM's log at WARN (``log4j2.properties``, ``driver_console_conf``)
    train, tune, predict, study, sample, evolve   one job each; ``run(...)`` is its Python API

Every job validates its whole config before Spark starts, writes its output into a temporary
sibling directory that is renamed into place at the end, and refuses to replace an existing
output unless ``--overwrite`` is given.

Adding a job (say ``sample``):
    1. ``deepflash/jobs/sample.py`` with ``run(config, output, overwrite=False)`` that opens its
       output with ``outputs.open_output`` and reads rows with ``sources.load_data``, and
       ``JOB = Job("sample", "one line of help", lambda call: run(call.config, call.output,
       overwrite=call.overwrite))`` (``arguments=`` adds options of its own; see ``predict``).
    2. One line in ``deepflash/jobs/main.py``: import the module and add ``sample.JOB`` to ``JOBS``.
    3. A thin spark-submit script ``jobs/sample.py`` calling ``main(["sample"] + sys.argv[1:])``.
    New config sections or keys go in ``deepflash/jobs/config.py`` (``SECTIONS`` and ``SCHEMA``).

Example:
    from deepflash.jobs.config import load_config
    from deepflash.jobs import train

    metrics = train.run(load_config("conf/default.yaml", ["model.epochs=5"]), "/tmp/digits")
"""
