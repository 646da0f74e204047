"""Prefect flows of the dark-data pipeline, each a thin layer over `gan_augment`."""

from pipelines.train_dataset import train_dataset

__all__ = ["train_dataset"]
