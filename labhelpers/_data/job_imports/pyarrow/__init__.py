"""Not pyarrow: the Flink job's processes only (flinkenv.JOB_IMPORTS puts this folder first on
their Python path). Apache Beam's type hints load pyarrow only if it is there, and the job's
function (a keyed process function in thread mode, rows through pemja) never uses Arrow:
without it each of the job's two Python interpreters is ~25 MB smaller.
LAB_JOB_IMPORTS=full loads the real one."""

raise ImportError(
    "pyarrow is not loaded in the lab's Flink job processes (labhelpers.flinkenv.JOB_IMPORTS); "
    "run the job with LAB_JOB_IMPORTS=full to load it")
