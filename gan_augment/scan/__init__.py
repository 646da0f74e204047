"""What is in a store, read without torch: list its datasets and objects (`listing`), probe
each object's header or decode it (`objects`, on top of the byte-level `images`), decide what a
scan must re-read and which objects are duplicates (`manifest`), write one manifest per dataset
(`store.scan_store`), and decode a dataset once into the uint8 cache training reads (`cache`).

An image's way: `list_store` finds it -> `probe_object` gives it a status and a reason in the
manifest -> `build_cache` decodes the `ok` ones into (N, C, S, S) uint8 for training.
"""

from gan_augment.scan.cache import ImageCache, build_cache
from gan_augment.scan.listing import IMG_EXTENSIONS, ImageObject, list_datasets, list_images, list_store
from gan_augment.scan.manifest import DatasetScan, ScanResult
from gan_augment.scan.store import scan_store

__all__ = ["IMG_EXTENSIONS", "DatasetScan", "ImageCache", "ImageObject", "ScanResult", "build_cache", "list_datasets",
           "list_images", "list_store", "scan_store"]
