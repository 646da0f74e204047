"""What each sub-command of `gan-augment` does with its parsed arguments. Each returns the exit
code; heavy modules (torch) are imported inside, so `gan-augment --help` and a scan stay light."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from gan_augment.cli.flags import config_from_args, parse_storage_options
from gan_augment.cli.output import EXIT_OK, EXIT_REJECTED, emit
from gan_augment.config import FeatureProtocol, ModelConfig, TrainConfig
from gan_augment.io.fsio import redact_url
from gan_augment.io.progress import Progress
from gan_augment.layout import manifest_of_model

log = logging.getLogger("gan_augment")


def _time_limit(max_seconds: float | None) -> dict[str, float | None]:
    """--max-seconds as scan_store's keyword: absent keeps the default, 0 means no limit."""
    if max_seconds is None:
        return {}
    if max_seconds < 0:
        raise ValueError(f"--max-seconds {max_seconds:g} is invalid: give seconds > 0, or 0 for no limit")
    return {"max_seconds": max_seconds or None}


def run_scan(args: argparse.Namespace) -> int:
    from gan_augment.scan.store import scan_store

    result = scan_store(args.store, out=args.out, datasets=args.dataset or None, rescan=args.rescan,
                        storage_options=parse_storage_options(args.storage_options),
                        out_storage_options=parse_storage_options(args.out_storage_options),
                        hash_contents=args.hash, max_workers=args.workers, verify=args.verify, phash=args.phash,
                        **_time_limit(args.max_seconds))
    rejected = {name: {status: count for status, count in sorted(scan.status_counts.items())
                       if status in (args.fail_on or ())}
                for name, scan in sorted(result.datasets.items())}
    rejected = {name: counts for name, counts in rejected.items() if counts}
    text = result.summary_table()
    if args.out:
        text += f"\nmanifests: {result.out}/<dataset>/manifest.parquet"
    emit(args, {**result.to_dict(), "fail_on": list(args.fail_on or ()), "rejected": rejected}, text)
    if rejected:  # the manifests are written all the same: a pipeline can read why it stopped
        found = "; ".join(f"{name}: " + ", ".join(f"{status} {n}" for status, n in counts.items())
                          for name, counts in rejected.items())
        print(f"gan-augment scan: rejected (--fail-on {','.join(args.fail_on)}): {found}", file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_OK  # without --fail-on, bad objects are recorded in the manifests, not a failure


def run_train(args: argparse.Namespace) -> int:
    from gan_augment.io.labels import read_labels
    from gan_augment.training.distributed import init_distributed, shutdown_distributed
    from gan_augment.training.trainer import train

    seed = args.recipe == "seed-dcgan"
    model_config = config_from_args(ModelConfig, args, ModelConfig.seed_dcgan() if seed else None)
    train_config = config_from_args(TrainConfig, args, TrainConfig.seed_dcgan() if seed else None)
    # Under `torchrun --nproc-per-node G`, each process joins the group and trains one shard.
    options = parse_storage_options(args.storage_options)
    labels = read_labels(args.labels, options) if args.labels else None
    distributed = init_distributed(train_config.device)
    try:
        result = train(args.source, args.out, model_config, train_config, dataset=args.dataset,
                       storage_options=options, resume=args.resume, distributed=distributed, labels=labels)
    finally:
        shutdown_distributed()
    if not distributed.is_main:
        return EXIT_OK
    images_per_second = result.metrics.get("images_per_second", 0)
    document = {"files": {name: redact_url(url) for name, url in result.files.items()}, "steps": result.steps,
                "images": result.num_images, "images_per_second": images_per_second}
    text = "\n".join([f"model:       {result.files['model']}", f"model card:  {result.files['card']}",
                      f"samples:     {result.files['samples']}", f"loss curve:  {result.files['loss_curve']}",
                      f"steps: {result.steps}  images: {result.num_images}  {images_per_second:.0f} img/s"])
    emit(args, document, text)
    return EXIT_OK


def _export_with_progress(what: str, unit: str, export: Callable[[Progress], Any]) -> Any:
    progress = Progress(what, unit)
    try:
        return export(progress)
    finally:
        progress.close()


def run_sample(args: argparse.Namespace) -> int:
    from gan_augment.export.synthetic import SyntheticDataset
    from gan_augment.export.tables import export_samples
    from gan_augment.gan.checkpoint import as_trained_model
    from gan_augment.gan.devices import select_device
    from gan_augment.gan.pixels import to_model_range
    from gan_augment.gan.visualize import sample_grid_png
    from gan_augment.io.fsio import atomic_write_bytes

    options, device = parse_storage_options(args.storage_options), select_device(args.device)
    model = as_trained_model(args.model, device=device, storage_options=options)
    if args.out.lower().endswith(".png"):
        # A class-conditional model's grid: one row of N samples per class.
        request = dict(num_samples_per_class=args.n) if model.classes else dict(num_samples=args.n)
        samples = SyntheticDataset(model, seed=args.seed, device=device, image_size=args.image_size, **request)
        grid = sample_grid_png(to_model_range(samples.images(range(len(samples)))),
                               columns=args.n if model.classes else None)
        atomic_write_bytes(args.out, grid, options)
        emit(args, {"files": [redact_url(args.out)], "rows": len(samples), "seed": args.seed}, args.out)
        return EXIT_OK
    result = _export_with_progress("sample", "samples", lambda progress: export_samples(
        model, args.out, args.n, seed=args.seed, device=device, image_size=args.image_size,
        storage_options=options, progress=progress))
    emit(args, {"files": [redact_url(f) for f in result.files], "rows": result.rows, "seed": args.seed},
         "\n".join([*result.files, f"rows: {result.rows}"]))
    return EXIT_OK


def run_features(args: argparse.Namespace) -> int:
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
    document = {"files": [redact_url(f) for f in result.files], "rows": result.rows,
                "skipped": {redact_url(uri): reason for uri, reason in result.skipped.items()},
                "feature_dim": features.dim}
    emit(args, document, "\n".join([*result.files, f"rows: {result.rows}  skipped objects: {len(result.skipped)}  "
                                                   f"feature dim: {features.dim}"]))
    return EXIT_OK


def run_evaluate(args: argparse.Namespace) -> int:
    from gan_augment.evaluate.evaluation import evaluate_model, format_table
    from gan_augment.gan.devices import select_device
    from gan_augment.io.labels import read_labels

    options = parse_storage_options(args.storage_options)
    labels = read_labels(args.labels, options) if args.labels else None
    evaluation = evaluate_model(args.model, args.source, extractor=args.inception_weights, labels=labels,
                                labelled_per_class=args.labelled_per_class, draws=args.draws,
                                test_fraction=args.test_fraction, max_images=args.max_images, seed=args.seed,
                                device=select_device(args.device), write_card=args.card, storage_options=options)
    emit(args, evaluation.to_dict(), format_table(evaluation))
    return EXIT_OK


def run_select(args: argparse.Namespace) -> int:
    from gan_augment.curate.selection import select_for_labelling
    from gan_augment.io.labels import read_listed_labels

    options = parse_storage_options(args.storage_options)
    labelled = read_listed_labels(args.labelled, options) if args.labelled else {}
    selection = select_for_labelling(args.features, args.budget, args.method, manifest=args.manifest,
                                     labelled=labelled, seed=args.seed, storage_options=options)
    selection.write_csv(args.out, options)
    lines = [f"{rank:>5}  {redact_url(uri)}  {reason}"
             for rank, (uri, reason) in enumerate(zip(selection.uris[:args.show], selection.reasons), start=1)]
    if len(selection) > args.show:
        lines.append(f"  ... {len(selection) - args.show} more in {redact_url(args.out)}")
    skipped = ", ".join(f"{reason} {count}" for reason, count in selection.skipped.items()) or "none"
    lines.append(f"picked {len(selection)} of {selection.candidates} candidates by {selection.method} "
                 f"(skipped: {skipped})")
    if selection.unmatched:  # listed by --labelled under URIs the features do not hold: they may be picked again
        lines.append(f"{selection.unmatched} images the --labelled files list are not in the features")
    rounds = [redact_url(url) for url in [*(args.labelled or []), args.out]]  # every round so far, this one last
    evaluate_flags, select_flags = (" ".join(f"--{flag} {url}" for url in rounds) for flag in ("labels", "labelled"))
    lines.append(f"fill in the label column of {redact_url(args.out)}, then: gan-augment evaluate MODEL SOURCE "
                 f"{evaluate_flags}; or pick the next round with its labels: gan-augment select "
                 f"{redact_url(args.features)} --budget N {select_flags} --out NEXT.csv")
    picks = [{"uri": redact_url(uri), "rank": rank, "reason": reason, "score": score} for rank, (uri, reason, score)
             in enumerate(zip(selection.uris, selection.reasons, selection.scores), start=1)]
    emit(args, {**selection.summary(), "out": redact_url(args.out), "picks": picks}, "\n".join(lines))
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    from gan_augment.curate.report import write_reports

    files = write_reports(args.out, args.dataset or None, parse_storage_options(args.storage_options))
    lines = [f"{name}: {url}" for name, url in files.reports.items()] + [f"index: {files.index}"]
    emit(args, {"reports": {name: redact_url(url) for name, url in files.reports.items()},
                "index": redact_url(files.index), "datasets": files.summaries}, "\n".join(lines))
    return EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    from gan_augment.demo import run_demo as demo

    demo(args.out, minutes=args.minutes)
    return EXIT_OK
