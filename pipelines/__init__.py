"""Prefect flows of the dark-data pipeline, each a thin layer over `gan_augment`.

One module per flow, named like it: `pipelines.scan_store.scan_store`,
`pipelines.train_dataset.train_dataset`, `pipelines.export_dataset.export_dataset` and
`pipelines.dark_data.dark_data` (the entrypoints of deployments/prefect.yaml). They are not
re-exported here, where a flow would shadow the module of the same name.
"""
