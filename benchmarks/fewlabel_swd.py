"""Few-label benchmark, its SWD part: how close the samples of the default recipe and of the
recipe without ContraD's loss on fakes come to the digits, each next to the real-vs-real floor.

Both distances come from `compared_sets` and `swd_with_floor`, the functions behind
`gan-augment evaluate`, so the numbers here are the ones `gan-augment evaluate MODEL POOL
--max-images 2000` prints (x1e3) for the same model.
"""

from __future__ import annotations

import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import markdown_table  # noqa: E402
from fewlabel_data import MODEL, TEST, Digits  # noqa: E402
from fewlabel_training import run_pair, train_ours  # noqa: E402

from gan_augment.config import TrainConfig  # noqa: E402
from gan_augment.evaluate.evaluation import SwdWithFloor, compared_sets, swd_with_floor  # noqa: E402
from gan_augment.evaluate.metrics import SlicedWasserstein  # noqa: E402
from gan_augment.gan.checkpoint import TrainedModel, load_model  # noqa: E402
from gan_augment.scan.cache import ImageCache  # noqa: E402

SWD_IMAGES = 2 * TEST  # real digits drawn from the pool: 1,000 reference, 1,000 for the floor
RECIPES = {  # row title: the change to the default recipe
    "ours: default recipe": {},
    "recipe without ContraD's loss on fakes (`fake_contrastive_weight=0`)": {"fake_contrastive_weight": 0.0},
}
SWD_TEXT = (
    "SWD (Laplacian-pyramid patches, Karras et al. 2018; lower is closer), x1e3, computed by "
    "`compared_sets` and `swd_with_floor`, the path of `gan-augment evaluate MODEL POOL --max-images 2000`: "
    "a seeded random 2,000 of the pool images split into two disjoint halves; 1,000 samples "
    "(`SyntheticDataset(model, num_samples=1000, seed=0)`, uint8) and the other 1,000 real images (the "
    "floor: what samples as close to the data as real images would reach) are each compared with the same "
    "1,000 reference images. \"x floor\" is the mean over the floor's mean.")


def sample_swd(model: TrainedModel, pool: ImageCache, seed: int = 0) -> SwdWithFloor:
    """SWD of 1,000 samples of `model` and the real floor, against 1,000 pool digits.

    Args:
        model: the trained model.
        pool: the decoded pool (uint8), as `gan-augment evaluate` decodes the pool's folder.
        seed: seeds the subset, the halves, the samples and the metric, as `--seed` does.
    """
    return swd_with_floor(compared_sets(model, pool.images, max_images=SWD_IMAGES, seed=seed), seed=seed)


def _cells(swd: SlicedWasserstein) -> list[str]:
    return [*(f"{1e3 * value:.1f}" for value in swd.distances), f"{1e3 * swd.mean:.1f}"]


def swd_table(results: dict[str, SwdWithFloor]) -> str:
    """A floor row and one row per model, with its ratio to the floor.

    Raises:
        ValueError: models measured on different real halves (their floors differ), which one
            floor row would misreport.
    """
    floors = [result.floor for result in results.values()]
    if any(floor != floors[0] for floor in floors):
        raise ValueError("the models' floors differ; measure every model on the same pool and seed")
    header = ["vs 1,000 pool images (x1e3)", *(f"{r}x{r}" for r in floors[0].resolutions), "mean", "x floor"]
    rows = [["real: 1,000 other pool images (floor)", *_cells(floors[0]), "1.0"]]
    rows += [[name, *_cells(result.samples), f"{result.ratio:.1f}"] for name, result in results.items()]
    return markdown_table(header, rows)


def swd_of_recipes(digits: Digits, recipe: TrainConfig, threads: int) -> str:
    """Train the default recipe and the recipe without ContraD's loss on fakes (seed 0) side by
    side, and tabulate each one's SWD next to the floor."""
    names = list(RECIPES)
    jobs = {name: (train_ours, dict(root=digits.root, split="pool", out=digits.out, name=f"swd-{names.index(name)}",
                                    model=MODEL.to_dict(), train=dataclasses.replace(recipe, seed=0, **change).to_dict(),
                                    threads=threads)) for name, change in RECIPES.items()}
    timing = run_pair(jobs)
    results = {}
    for name in names:
        model = load_model(os.path.join(digits.out, f"swd-{names.index(name)}", "model"))
        title = f"{name}, seed 0 ({timing[name]['steps']} D steps, {timing[name]['seconds']:.0f} s)"
        results[title] = sample_swd(model, digits.pool)
    return swd_table(results)
