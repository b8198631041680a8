"""Teaching aids for the notebooks: concept figures, the original lab beside the new one,
and SQL exercises that run for real on Flink.

- ``concepts``: small matplotlib figures of the lab's ideas (windows, watermarks, keyed state,
  checkpoints, the Random Cut Forest and its score, alert episodes, the forest learning).
- ``original``: the original application's SQL beside ``sql/anomaly_detection.sql``, with the
  differences named, and the excerpt of the job that feeds each window to the forest.
- ``sql_exercises``: queries the student writes, run on Flink over a small generated file and
  checked by a function that says what is wrong in one sentence.
"""
