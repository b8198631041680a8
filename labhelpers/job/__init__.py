"""The analytics job: the code that runs inside Flink, locally and on the managed service.

    pipeline.py    the Flink job: sources and sinks, the lab's SQL, the scorer per site
    sqlfile.py     the strict loader of sql/anomaly_detection.sql
    params.py      the job's parameters (every default once), validated
    forest.py      the Random Cut Forest per site and the alert rule
    deviations.py  the run rule's arithmetic: skew-free deviations of counts from usual
    contracts.py   the record, window and score-row contracts
    errors.py      the base of the lab's exception family

It imports nothing of the rest of ``labhelpers`` (tests/test_package_shape.py keeps it so):
the managed application's zip carries this package whole (analytics/packaging.py).
"""
