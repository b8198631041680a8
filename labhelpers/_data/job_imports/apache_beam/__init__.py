"""Apache Beam's package without its start-up imports, in the Flink job's processes only
(flinkenv.JOB_IMPORTS puts this folder first on their Python path).

PyFlink imports Beam's coders whenever a job has a Python function; Beam's own ``__init__``
then loads every I/O connector (MongoDB, Parquet, Avro, GCP...), ~80 MB per interpreter, and
the lab's job runs two (the driver and the one inside the JVM). In thread mode the job's
Python function exchanges rows with Java through pemja, not Beam's runners, so the package's
modules are found in the real folder but only the ones asked for are loaded.
LAB_JOB_IMPORTS=full loads the real package.
"""

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
for _entry in sys.path:
    _real = os.path.join(os.path.abspath(_entry or "."), "apache_beam")
    if _real != _here and os.path.isfile(os.path.join(_real, "__init__.py")):
        __path__ = [_real]
        break
else:
    raise ImportError("apache_beam is not installed (PyFlink needs it)")
