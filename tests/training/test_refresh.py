"""refresh_model: train when stale, skip when up to date, report progress fractions."""

from __future__ import annotations

import dataclasses
import os

from gan_augment.config import TrainConfig
from gan_augment.training.refresh import refresh_model, stale_reason


def test_skips_an_up_to_date_model_even_when_the_trainer_adjusted_its_config(
        image_folder, tmp_path, tiny_model_config):
    # wgan-gp swaps D's BatchNorm for LayerNorm, so the card records another model config than
    # the one asked for; the comparison must see through that or it would retrain forever.
    training = TrainConfig(steps=2, batch_size=8, log_every=1, loss="wgan-gp", seed=0, finish_steps=0)
    out = str(tmp_path / "out")
    fractions = []
    first = refresh_model(image_folder, out, tiny_model_config, training,
                          callback=lambda fraction, row: fractions.append((fraction, row["step"])))
    assert first.status == "trained" and first.reason == "no model yet"
    assert first.card["model_config"]["d_norm"] == "layer"
    assert fractions == [(0.5, 1), (1.0, 2)]

    second = refresh_model(image_folder, out, tiny_model_config, training)
    assert second.status == "skipped" and second.train_result is None
    assert second.card["created_at"] == first.card["created_at"]

    forced = refresh_model(image_folder, out, tiny_model_config, training, force=True)
    assert forced.status == "trained" and forced.reason == "forced"


def test_a_deleted_model_file_is_retrained(image_folder, tmp_path, tiny_model_config, tiny_train_config):
    out = str(tmp_path / "out")
    refresh_model(image_folder, out, tiny_model_config, tiny_train_config)
    os.remove(os.path.join(out, "blobs", "model", "model.pt"))
    again = refresh_model(image_folder, out, tiny_model_config, tiny_train_config)
    assert again.status == "trained" and again.reason == "no model yet"


def test_stale_reason_names_what_changed(tiny_model_config, tiny_train_config):
    card = {"data_fingerprint": "abc", "model_config": tiny_model_config.to_dict(),
            "train_config": tiny_train_config.to_dict()}
    assert stale_reason(card, "abc", tiny_model_config, tiny_train_config) is None
    assert stale_reason(None, "abc", tiny_model_config, tiny_train_config) == "no model yet"
    assert "data changed" in stale_reason(card, "abd", tiny_model_config, tiny_train_config)
    wider = dataclasses.replace(tiny_model_config, ngf=16)
    assert stale_reason(card, "abc", wider, tiny_train_config) == "the model config changed"
    longer = dataclasses.replace(tiny_train_config, steps=7)
    assert stale_reason(card, "abc", tiny_model_config, longer) == "the training config changed"


def test_the_model_card_records_the_source(image_folder, tmp_path, tiny_model_config, tiny_train_config):
    outcome = refresh_model(image_folder, str(tmp_path / "out"), tiny_model_config, tiny_train_config)
    assert outcome.card["source"] == image_folder
