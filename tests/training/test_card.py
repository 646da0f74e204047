import dataclasses
import os

import torch

from gan_augment.config import TrainConfig
from gan_augment.gan.models import build_models
from gan_augment.scan.cache import ImageCache
from gan_augment.training.card import model_card, model_id, output_files, write_samples


def test_the_model_id_names_the_dataset_and_hashes_data_and_configs(tiny_model_config):
    config = TrainConfig()
    first = model_id("blobs", "data-v1", tiny_model_config, config)
    assert first.startswith("blobs-") and len(first) == len("blobs-") + 12
    assert model_id("blobs", "data-v1", tiny_model_config, config) == first
    assert model_id("blobs", "data-v2", tiny_model_config, config) != first
    assert model_id("blobs", "data-v1", dataclasses.replace(tiny_model_config, ndf=12), config) != first
    assert model_id("blobs", "data-v1", tiny_model_config, dataclasses.replace(config, steps=5)) != first


def test_the_card_records_data_configs_and_outputs(tmp_path, tiny_model_config):
    cache = ImageCache(torch.zeros(8, 1, 16, 16, dtype=torch.uint8), [f"img-{i}" for i in range(8)], "data-v1",
                       {"bad.png": "corrupt: not an image"})
    config = TrainConfig(batch_size=4, d_steps=2)
    files = output_files(str(tmp_path / "model"))
    card = model_card(cache, tiny_model_config, config, model_id="blobs-0123456789ab", dataset="blobs",
                      source="s3://key:secret@bucket/blobs", steps=3, images_per_step=8, world_size=1,
                      resumed_from=None, nan_rollbacks=1, metrics={"loss_d": 0.5}, device=torch.device("cpu"),
                      amp=False, files=files)
    assert card["format"] == "gan-augment/model-card" and card["model_id"] == "blobs-0123456789ab"
    assert "secret" not in card["source"]
    assert (card["num_images"], card["skipped_images"], card["data_fingerprint"]) == (8, 1, "data-v1")
    assert card["epochs"] == 3 * 8 / 8 and card["nan_rollbacks"] == 1 and card["precision"] == "fp32"
    assert card["model_config"] == tiny_model_config.to_dict() and card["train_config"] == config.to_dict()
    assert card["files"] == {"samples": "samples/final.png", "loss_curve": "samples/loss_curve.png",
                             "model": "model.pt"}


def test_samples_and_loss_curve_are_written(tmp_path, tiny_model_config):
    generator, _ = build_models(tiny_model_config)
    history = {"step": [1, 2], "loss_d": [1.0, 0.9], "loss_g": [0.7, 0.8], "d_real": [0.5, 0.6],
               "d_fake": [0.5, 0.4], "images_per_second": [100.0, 110.0]}
    url = write_samples(str(tmp_path), "step-00000002", generator.eval(), torch.randn(4, tiny_model_config.latent_dim),
                        history, title="blobs")
    assert url == os.path.join(str(tmp_path), "samples", "step-00000002.png")
    for name in ("step-00000002.png", "loss_curve.png"):
        assert (tmp_path / "samples" / name).read_bytes().startswith(b"\x89PNG"), name
