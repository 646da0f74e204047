"""Labels of a class-conditional run: class names, matching labels to images, pseudo-labels, and
a conditional training run end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CONDITIONAL_LABELS, TINY_MODEL, TINY_TRAIN, write_png_folder

from gan_augment.config import ModelConfig, TrainConfig
from gan_augment.export.synthetic import SyntheticDataset
from gan_augment.gan.checkpoint import load_model
from gan_augment.scan.cache import ImageCache
from gan_augment.training.labels import cache_labels, class_names, pseudo_labels
from gan_augment.training.refresh import refresh_model
from gan_augment.training.trainer import Trainer, train


def test_class_names_are_strings_in_numeric_order_when_numeric():
    assert class_names({"a": 10, "b": 2, "c": 2}) == ["2", "10"]
    assert class_names({"a": "dog", "b": "cat"}) == ["cat", "dog"]


def test_cache_labels_matches_keys_and_marks_the_rest_unlabelled():
    cache = ImageCache(torch.zeros(3, 1, 16, 16, dtype=torch.uint8),
                       ["file:///s/a.png", "file:///s/b.png", "file:///s/c.png"], "fp", {})
    classes, labels = cache_labels(cache, {"/s/a.png": "dog", "c.png": "cat"}, "/s")
    assert classes == ["cat", "dog"] and labels.tolist() == [1, -1, 0]
    with pytest.raises(ValueError, match="two classes"):
        cache_labels(cache, {"a.png": "dog"}, "/s")


def test_pseudo_labels_take_only_confident_predictions():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    x = np.array([[6.0, 0.0], [-6.0, 0.0]])[y] + rng.normal(size=(40, 2))
    x[-1] = [0.0, 0.0]  # halfway between the classes: no confident prediction
    given = torch.full((40,), -1)
    labelled = [0, 1, 2, 3, 4, 20, 21, 22, 23, 24]
    given[labelled] = torch.as_tensor(y[labelled])
    out = pseudo_labels(x, given, threshold=0.9)
    assert out[labelled].tolist() == y[labelled].tolist()
    assert out[-1] == -1
    assigned = (out >= 0) & (given < 0)
    assert assigned.sum() >= 20 and (out[assigned] == torch.as_tensor(y)[assigned]).all()
    assert (pseudo_labels(x, given, threshold=1.0)[given < 0] == -1).all()


def test_conditional_run_records_classes_and_pseudo_labels(conditional_model_dir):
    model = load_model(conditional_model_dir)
    assert model.classes == ["flat", "round"] and model.model_config.num_classes == 2
    labels = model.card["labels"]
    assert labels["labelled"] == 8 and labels["pseudo_label_step"] == 3
    assert labels["pseudo_labelled"] + labels["unlabelled"] == 16
    assert model.card["model_config"]["num_classes"] == 2


def test_conditional_run_resumes_with_its_pseudo_labels(tmp_path):
    source = str(tmp_path / "store" / "blobs")
    write_png_folder(source, 24)
    config, short = ModelConfig(**TINY_MODEL), TrainConfig(**{**TINY_TRAIN, "steps": 4}, device="cpu",
                                                           pseudo_label_threshold=0.0)
    first = train(source, str(tmp_path / "out"), config, short, resume=False, labels=CONDITIONAL_LABELS)
    # threshold 0: every unlabelled image got a pseudo-label at step 2
    assert load_model(first.model_dir).card["labels"]["unlabelled"] == 0
    again = refresh_model(source, str(tmp_path / "out"), config, short, labels=CONDITIONAL_LABELS)
    assert again.status == "skipped"
    changed = {**CONDITIONAL_LABELS, "img-009.png": "round"}
    assert refresh_model(source, str(tmp_path / "out"), config, short, labels=changed).reason == "the labels changed"


def test_num_classes_without_labels_is_a_clear_error(tmp_path):
    cache = ImageCache(torch.zeros(4, 1, 16, 16, dtype=torch.uint8), [f"{i}.png" for i in range(4)], "fp", {})
    with pytest.raises(ValueError, match="needs labels"):
        Trainer(cache, str(tmp_path / "m"), ModelConfig(**TINY_MODEL, num_classes=2), TrainConfig(**TINY_TRAIN),
                dataset="d")


@pytest.mark.parametrize("critic", [False, True])
def test_a_conditional_generator_draws_the_class_it_is_asked_for(tmp_path, critic):
    """Two classes anyone tells apart, dark and bright images: after a short training on their
    labels, samples asked for "bright" are far brighter than samples asked for "dark". With a
    critic, which judges realism alone, the class reaches G through D's head."""
    rng = np.random.default_rng(0)
    pixels = np.concatenate([rng.integers(0, 60, (32, 1, 16, 16)), rng.integers(190, 256, (32, 1, 16, 16))])
    cache = ImageCache(torch.from_numpy(pixels.astype(np.uint8)), [f"{i}.png" for i in range(64)], "fp", {})
    classes, given = cache_labels(cache, {f"{i}.png": "dark" if i < 32 else "bright" for i in range(64)})
    trainer = Trainer(cache, str(tmp_path / "model"), ModelConfig(**TINY_MODEL, critic=critic),
                      TrainConfig(**{**TINY_TRAIN, "steps": 40}, device="cpu"), dataset="d", labels=given,
                      classes=classes)
    trainer.run(resume=False)
    samples = SyntheticDataset(load_model(trainer.model_dir), num_samples_per_class=16, seed=0, output="uint8")
    images = samples.images(range(len(samples))).float()  # (32, 1, 16, 16), class after class
    brightness = {label: images[[i for i, t in enumerate(samples.targets) if t == label]].mean().item()
                  for label in ("dark", "bright")}
    assert brightness["bright"] - brightness["dark"] > 60, brightness
