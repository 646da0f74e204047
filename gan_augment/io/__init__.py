"""Storage plumbing every stage shares: fsspec URLs with retried reads and atomic writes
(`fsio`; its URL helpers in `urls`, its retries in `retries`), the Parquet schemas, writers and
readers of every table the project writes (`parquet`), and progress reporting (`progress`). No
torch here.
"""

from gan_augment.io.fsio import atomic_write_bytes, get_fs, join_url, read_bytes, redact_url, retry
from gan_augment.io.progress import Progress
from gan_augment.io.tables import read_features, read_manifest, read_synthetic

__all__ = ["Progress", "atomic_write_bytes", "get_fs", "join_url", "read_bytes", "read_features", "read_manifest",
           "read_synthetic", "redact_url", "retry"]
