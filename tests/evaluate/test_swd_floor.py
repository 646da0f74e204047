"""`compared_sets` and `swd_with_floor`: the SWD part of `evaluate_model`, callable on its own
(the few-label benchmark uses it), with the same numbers, and a floor that the order of the real
images cannot bias."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import blob_tensor, write_png_folder
from gan_augment.evaluate.evaluation import compared_sets, evaluate_model, swd_with_floor
from gan_augment.evaluate.metrics import sliced_wasserstein
from gan_augment.gan.checkpoint import load_model
from gan_augment.scan.cache import build_cache


@pytest.fixture
def source(tmp_path) -> str:
    """40 16x16 blob images like the ones the tiny model was trained on."""
    folder = str(tmp_path / "store" / "blobs")
    write_png_folder(folder, 40)
    return folder


@pytest.mark.parametrize("max_images, seed", [(10_000, 0), (24, 3), (7, 1)])
def test_swd_with_floor_gives_what_evaluate_reports(trained_model_dir, source, max_images, seed):
    evaluation = evaluate_model(trained_model_dir, source, max_images=max_images, seed=seed, write_card=False)
    images = build_cache(source, 16, 1).images  # what evaluate decodes from the folder
    sets = compared_sets(load_model(trained_model_dir), images, max_images=max_images, seed=seed)
    swd = swd_with_floor(sets, seed=seed)
    assert sets.num_images == evaluation.num_images == min(40, max_images) // 2
    assert (swd.samples, swd.floor) == (evaluation.swd, evaluation.swd_real)
    assert swd.ratio == evaluation.swd.mean / evaluation.swd_real.mean > 1


def test_the_halves_are_a_random_subset_whatever_the_order_of_the_images(random_model_dir):
    """Real images sorted by class (40 dark ones, then 40 bright ones): each half must hold both,
    so the floor stays small; the first rows, all of one class, measure the classes' gap."""
    images = torch.cat([blob_tensor(40, size=16, seed=0) // 4, blob_tensor(40, size=16, seed=1)])
    sets = compared_sets(load_model(random_model_dir), images, max_images=80, seed=0)
    assert sets.num_images == 40 and sets.generated.shape == sets.reference.shape == sets.holdout.shape
    assert sets.generated.dtype == torch.uint8
    for half in (sets.reference, sets.holdout):
        bright = int((half.flatten(1).float().mean(1) > images.float().mean()).sum())
        assert 10 < bright < 30
    first_rows = sliced_wasserstein(sets.reference, images[:40], seed=0)  # the floor measured the old way
    assert swd_with_floor(sets, seed=0).floor.mean < first_rows.mean / 5


def test_too_few_images_is_an_error(random_model_dir):
    with pytest.raises(ValueError, match="the two halves need at least 4"):
        compared_sets(load_model(random_model_dir), blob_tensor(10, size=16), max_images=3)


def test_the_few_label_benchmark_reports_what_evaluate_reports(trained_model_dir, source):
    """benchmarks/fewlabel.py's SWD (`sample_swd`, on the decoded pool) against `evaluate_model`
    on the pool's folder with `--max-images 2000`: the same samples, floor and table cells."""
    from benchmarks.fewlabel_swd import SWD_IMAGES, sample_swd, swd_table

    evaluation = evaluate_model(trained_model_dir, source, max_images=SWD_IMAGES, seed=0, write_card=False)
    result = sample_swd(load_model(trained_model_dir), build_cache(source, 16, 1))
    assert (result.samples, result.floor) == (evaluation.swd, evaluation.swd_real)
    table = swd_table({"ours": result})
    assert f"| ours | {1e3 * evaluation.swd.mean:.1f} | {1e3 * evaluation.swd.mean:.1f} | {result.ratio:.1f} |" in table
    assert f"(floor) | {1e3 * evaluation.swd_real.mean:.1f} |" in table
    other = swd_with_floor(compared_sets(load_model(trained_model_dir), build_cache(source, 16, 1).images,
                                         max_images=SWD_IMAGES, seed=1), seed=1)
    with pytest.raises(ValueError, match="floors differ"):
        swd_table({"ours": result, "measured on other halves": other})


def test_the_benchmarks_draws_are_evaluates_seeds(trained_model_dir, source):
    """`swd_draws`: `sample_swd` (what `evaluate --seed S` reports) for seeds 0, 1, ...; the
    table's last SWD column is the mean and spread of their ratios."""
    from benchmarks.fewlabel_swd import sample_swd, swd_draws, swd_table

    model, pool = load_model(trained_model_dir), build_cache(source, 16, 1)
    draws = swd_draws(model, pool, draws=3)
    assert [d.ratio for d in draws] == [sample_swd(model, pool, seed=seed).ratio for seed in range(3)]
    assert draws[0].ratio != draws[1].ratio  # each seed its own subset, samples and patches
    ratios = [d.ratio for d in draws]
    table = swd_table({"ours": draws[0]}, draws={"ours": draws})
    assert "| x floor, 3 draws |" in table
    assert f"| {draws[0].ratio:.1f} | {np.mean(ratios):.2f} ± {np.std(ratios, ddof=1):.2f} |" in table
