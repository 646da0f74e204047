"""What a trained model gives downstream teams: `SyntheticDataset` (generated samples as a
torch Dataset; `BatchedConcatDataset` keeps its batched fetching next to real data),
discriminator features of real images (`extract_features`), and both as Parquet tables
(`export_samples`, `export_features`).
"""

from gan_augment.export.concat import BatchedConcatDataset
from gan_augment.export.features import Features, extract_features
from gan_augment.export.synthetic import SyntheticDataset
from gan_augment.export.tables import ExportResult, export_features, export_samples

__all__ = ["BatchedConcatDataset", "ExportResult", "Features", "SyntheticDataset", "export_features", "export_samples",
           "extract_features"]
