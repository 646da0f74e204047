"""Prefect flows of the dark-data pipeline, each a thin layer over `gan_augment`.

One module per flow, named like it: `pipelines.scan_store.scan_store`,
`pipelines.train_dataset.train_dataset`, `pipelines.export_dataset.export_dataset` and
`pipelines.dark_data.dark_data` (the entrypoints of deployments/prefect.yaml). They are not
re-exported here, where a flow would shadow the module of the same name.
"""

import logging

# The library's progress lines (training steps, skipped objects) are INFO; Prefect forwards
# them to the run logs when PREFECT_LOGGING_EXTRA_LOGGERS includes "gan_augment" (the demo
# and deployments/prefect.yaml set it), but only passes on what the logger's level lets through.
logging.getLogger("gan_augment").setLevel(logging.INFO)
