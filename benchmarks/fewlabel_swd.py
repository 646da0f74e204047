"""Few-label benchmark, its SWD part: how close the samples of the default recipe, of the same
with ContraD's loss on fakes turned the other way and of the same with a critic for G come to the
data, each next to the real-vs-real floor, with each model's few-label probe.

Both distances come from `compared_sets` and `swd_with_floor`, the functions behind
`gan-augment evaluate`, so the numbers here are the ones `gan-augment evaluate MODEL POOL
--max-images 2000` prints (x1e3) for the same model.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import markdown_table  # noqa: E402
from fewlabel_data import HEADER, KS, TEST, Digits, fmt  # noqa: E402
from fewlabel_training import run_pair, train_ours  # noqa: E402

from gan_augment.config import TrainConfig  # noqa: E402
from gan_augment.evaluate.evaluation import SwdWithFloor, compared_sets, swd_with_floor  # noqa: E402
from gan_augment.evaluate.metrics import SlicedWasserstein  # noqa: E402
from gan_augment.gan.checkpoint import TrainedModel, load_model  # noqa: E402
from gan_augment.scan.cache import ImageCache  # noqa: E402

SWD_IMAGES = 2 * TEST  # real images drawn from the pool: 1,000 reference, 1,000 for the floor
# Evaluation seeds averaged in the tables' last SWD column: one draw of 1,000 images a side is noisy
# (MNIST-5k's finished samples, 1.36 ± 0.18x their floor over five seeds; BENCHMARKS.md, "..., finish_steps 1000").
SWD_DRAWS = 5


def other_weight(recipe: TrainConfig, channels: int) -> float:
    """The weight of ContraD's loss on fakes turned the other way from `recipe`'s choice for
    `channels`-channel images: 0 where the recipe has it on (greyscale), 1 where off (colour)."""
    return 0.0 if recipe.fake_contrastive_weight_for(channels) else 1.0


def critic_settings(changes: dict[str, int]) -> str:
    """`changes` to the critic's settings as keyword arguments, e.g. "critic_batch=32, critic_rounds=1"."""
    return ", ".join(f"{name}={value}" for name, value in changes.items())


def recipes(recipe: TrainConfig, channels: int, critic: dict[str, int] | None = None,
            finish: int | None = None) -> dict[str, tuple[dict, dict]]:
    """{row title: (the change to the default model config, the change to `recipe`)}: the recipe;
    the same with ContraD's loss on fakes turned the other way (`other_weight`); and the same with
    a critic for G. With `critic` (changes to the critic's settings, such as `{"critic_batch": 32}`),
    only the critic as it is and the critic with those changes; with `finish` (N >= 1), only the
    recipe without its finish and the same with `finish_steps=N`. A `recipe` that names its
    `finish_steps` says so in its row's title."""
    if finish:
        return {"recipe without the finish (`finish_steps=0`)": ({}, {"finish_steps": 0}),
                f"default recipe, `finish_steps={finish}`": ({}, {"finish_steps": finish})}
    ours = "ours: default recipe" + ("" if recipe.finish_steps is None else f", `finish_steps={recipe.finish_steps}`")
    title = "recipe with a critic for G (`ModelConfig(critic=True)`)"
    if critic:
        return {title: ({"critic": True}, {}), f"{title}, `{critic_settings(critic)}`": ({"critic": True}, critic)}
    weight = other_weight(recipe, channels)
    other = (f"recipe {'with' if weight else 'without'} ContraD's loss on fakes "
             f"(`fake_contrastive_weight={weight:g}`)")
    return {ours: ({}, {}), other: ({}, {"fake_contrastive_weight": weight}),
            title: ({"critic": True}, {})}


SWD_TEXT = (
    "SWD (Laplacian-pyramid patches, Karras et al. 2018; lower is closer), x1e3, computed by "
    "`compared_sets` and `swd_with_floor`, the path of `gan-augment evaluate MODEL POOL --max-images 2000`: "
    "a seeded random 2,000 of the pool images split into two disjoint halves; 1,000 samples "
    "(`SyntheticDataset(model, num_samples=1000, seed=0)`, uint8) and the other 1,000 real images (the "
    "floor: what samples as close to the data as real images would reach) are each compared with the same "
    "1,000 reference images. \"x floor\" is the mean over the floor's mean. \"x floor, "
    f"{SWD_DRAWS} draws\" repeats the measurement with `--seed` 0 to {SWD_DRAWS - 1} (each seed its own subset, "
    "halves, samples and patches) and gives the mean of the ratios ± their standard deviation; the "
    "other columns are seed 0's.")


def sample_swd(model: TrainedModel, pool: ImageCache, seed: int = 0) -> SwdWithFloor:
    """SWD of 1,000 samples of `model` and the real floor, against 1,000 pool digits.

    Args:
        model: the trained model.
        pool: the decoded pool (uint8), as `gan-augment evaluate` decodes the pool's folder.
        seed: seeds the subset, the halves, the samples and the metric, as `--seed` does.
    """
    return swd_with_floor(compared_sets(model, pool.images, max_images=SWD_IMAGES, seed=seed), seed=seed)


def swd_draws(model: TrainedModel, pool: ImageCache, draws: int = SWD_DRAWS) -> list[SwdWithFloor]:
    """`sample_swd` with seeds 0 to `draws` - 1: the measurement's own spread."""
    return [sample_swd(model, pool, seed=seed) for seed in range(draws)]


def _cells(swd: SlicedWasserstein) -> list[str]:
    return [*(f"{1e3 * value:.1f}" for value in swd.distances), f"{1e3 * swd.mean:.1f}"]


def swd_table(results: dict[str, SwdWithFloor], probes: dict[str, dict[int, Any]] | None = None,
              draws: dict[str, list[SwdWithFloor]] | None = None) -> str:
    """A floor row and one row per model: its SWD, its ratio to the floor, with `draws` (each
    model's `swd_draws`) the mean and spread of the ratio over them and, when `probes` are given,
    its few-label probe.

    Raises:
        ValueError: models measured on different real halves (their floors differ), which one
            floor row would misreport.
    """
    floors = [result.floor for result in results.values()]
    if any(floor != floors[0] for floor in floors):
        raise ValueError("the models' floors differ; measure every model on the same pool and seed")
    ks = KS if probes else ()
    spread = [f"x floor, {len(next(iter(draws.values())))} draws"] if draws else []
    header = ["vs 1,000 pool images (x1e3)", *(f"{r}x{r}" for r in floors[0].resolutions), "mean", "x floor",
              *spread, *HEADER[1:1 + len(ks)]]
    rows = [["real: 1,000 other pool images (floor)", *_cells(floors[0]), "1.0", *["1.0"] * len(spread),
             *[""] * len(ks)]]
    rows += [[name, *_cells(result.samples), f"{result.ratio:.1f}",
              *([_mean([d.ratio for d in draws[name]], digits=2)] if draws else []),
              *(fmt(probes[name][k]) for k in ks)]
             for name, result in results.items()]
    return markdown_table(header, rows)


def mean_table(draws: dict[str, list[SwdWithFloor]], probes: dict[str, dict[int, Any]], names: list[str]) -> str:
    """Per recipe of `names`, the mean over seeds (± their standard deviation) of the ratio to
    the floor (seed 0's measurement, and the mean of each model's `draws`) and of each seed's mean
    probe accuracy."""
    header = ["recipe, mean of seeds", "x floor", f"x floor, {len(next(iter(draws.values())))} draws", *HEADER[1:]]
    rows = []
    for recipe in names:
        runs = [title for title in draws if title.startswith(recipe + ", seed")]
        rows.append([recipe, _mean([draws[title][0].ratio for title in runs]),
                     _mean([float(np.mean([d.ratio for d in draws[title]])) for title in runs], digits=2),
                     *(_mean([100 * probes[title][k].mean for title in runs]) for k in KS)])
    return markdown_table(header, rows)


def _mean(values: list[float], digits: int = 1) -> str:
    """The mean of the unrounded values, ± their standard deviation."""
    spread = f" ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else ""
    return f"{np.mean(values):.{digits}f}{spread}"


def swd_of_recipes(digits: Digits, recipe: TrainConfig, threads: int, seeds: int,
                   critic: dict[str, int] | None = None, finish: int | None = None) -> tuple[str, str]:
    """Train every recipe of `recipes` (with `critic` or `finish`, its two) for each seed, two side by
    side, and tabulate each model's SWD next to the floor, with its few-label probe; returns (the
    table, the means over seeds)."""
    jobs, runs = {}, {}  # both keyed by the run's folder under digits.out
    compared = recipes(recipe, digits.model.channels, critic, finish)
    for seed in range(seeds):
        for index, (name, (model_change, train_change)) in enumerate(compared.items()):
            folder = f"swd-{index}-{seed}"
            runs[folder] = (name, seed)
            jobs[folder] = (train_ours, dict(
                root=digits.root, split="pool", out=digits.out, name=folder,
                model=dataclasses.replace(digits.model, **model_change).to_dict(),
                train=dataclasses.replace(recipe, seed=seed, **train_change).to_dict(), threads=threads))
    folders, timing = list(jobs), {}
    for i in range(0, len(folders), 2):
        timing.update(run_pair({folder: jobs[folder] for folder in folders[i:i + 2]}))
    results, probes, draws = {}, {}, {}
    for folder, (name, seed) in runs.items():
        model = load_model(os.path.join(digits.out, folder, "model"))
        run = timing[folder]
        title = f"{name}, seed {seed} ({run['steps']} D steps, {run['seconds']:.0f} s)"
        draws[title] = swd_draws(model, digits.pool)
        results[title] = draws[title][0]
        probes[title] = digits.probe(*digits.ours_features(model))
    return swd_table(results, probes, draws), mean_table(draws, probes, list(compared))
