"""Not pandas: the Flink job's processes only (flinkenv.JOB_IMPORTS puts this folder first on
their Python path). Apache Beam, which PyFlink imports, loads pandas only if it is there, and
the job does not use it: without it each of the job's two Python interpreters (the driver and
the one inside the JVM) is ~40 MB smaller. LAB_JOB_IMPORTS=full loads the real one."""

raise ImportError(
    "pandas is not loaded in the lab's Flink job processes (labhelpers.flinkenv.JOB_IMPORTS); "
    "run the job with LAB_JOB_IMPORTS=full to load it")
