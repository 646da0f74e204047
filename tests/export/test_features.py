"""Discriminator features: the DCGAN-paper protocol, batching, store reading and bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_png_folder

from gan_augment.config import FeatureProtocol, ModelConfig
from gan_augment.export.features import _window_max, discriminator_features, extract_features, feature_dim
from gan_augment.gan.checkpoint import load_model
from gan_augment.gan.pixels import to_model_range
from gan_augment.scan.cache import build_cache


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randint(0, 256, (10, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_default_protocol_pools_every_block_to_2x2(random_model_dir, images):
    model = load_model(random_model_dir)
    d = model.discriminator
    features = extract_features(model, images, batch_size=4)
    # 16x16 input, ndf=8: block 1 is (8, 8, 8), block 2 is (16, 4, 4); each max-pooled to 2x2.
    assert features.features.shape == (10, (8 + 16) * 4) == (10, feature_dim(d, FeatureProtocol()))
    with torch.no_grad():
        first, second = d.block_activations(to_model_range(images))
        expected = torch.cat([F.max_pool2d(first, 4).flatten(1), F.max_pool2d(second, 2).flatten(1)], 1)
    np.testing.assert_allclose(features.features, expected.numpy(), rtol=1e-5, atol=1e-6)
    # the DCGAN paper's protocol: 4x4
    paper = extract_features(model, images, protocol=FeatureProtocol(grid=4))
    expected = torch.cat([F.max_pool2d(first, 2).flatten(1), second.flatten(1)], 1)
    np.testing.assert_allclose(paper.features, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert features.uris == [str(k) for k in range(10)] and features.dataset == "random"


def test_chosen_blocks_and_pooling(random_model_dir, images):
    model = load_model(random_model_dir)
    only_last = extract_features(model, images, protocol=FeatureProtocol(blocks=(2,), grid=4))
    assert only_last.features.shape == (10, 16 * 16)
    everything = extract_features(model, images, protocol=FeatureProtocol(grid=4))
    np.testing.assert_array_equal(only_last.features, everything.features[:, 8 * 16:])
    avg = extract_features(model, images, protocol=FeatureProtocol(blocks=(1,), grid=2, pooling="avg"))
    with torch.no_grad():
        first = model.discriminator.block_activations(to_model_range(images))[0]  # (10, 8, 8, 8)
    np.testing.assert_allclose(avg.features, F.avg_pool2d(first, 4).flatten(1).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="block 3 does not exist"):
        extract_features(model, images, protocol=FeatureProtocol(blocks=(3,)))
    with pytest.raises(ValueError, match="smaller than the 8x8"):
        extract_features(model, images, protocol=FeatureProtocol(grid=8))
    assert FeatureProtocol.from_json(FeatureProtocol(blocks=(1, 2)).to_json()) == FeatureProtocol(blocks=(1, 2))


def test_features_do_not_depend_on_batching_or_input_kind(random_model_dir, images):
    model = load_model(random_model_dir)
    whole = extract_features(model, images, batch_size=10).features
    pieces = extract_features(model, images, batch_size=3)
    np.testing.assert_allclose(pieces.features, whole, rtol=1e-5, atol=1e-6)
    steps = []
    streamed = np.concatenate([batch for _, batch in pieces.batches(lambda done, total: steps.append((done, total)))])
    np.testing.assert_array_equal(streamed, pieces.features)
    assert steps == [(3, 10), (6, 10), (9, 10), (10, 10)]
    as_float = extract_features(model, to_model_range(images).numpy(), batch_size=10).features
    np.testing.assert_array_equal(as_float, whole)
    np.testing.assert_array_equal(extract_features(model, images, batch_size=10).features, whole)  # no dropout


def test_a_store_folder_with_bad_objects_is_read_and_counted(random_model_dir, tmp_path):
    folder = str(tmp_path / "store" / "scans")
    write_png_folder(folder, 6)
    open(os.path.join(folder, "empty.png"), "wb").close()
    with open(os.path.join(folder, "notes.png"), "w") as f:
        f.write("not an image")
    features = extract_features(random_model_dir, folder)
    assert len(features.uris) == 6 and features.features.shape == (6, 96)
    assert sorted(os.path.basename(uri) for uri in features.skipped) == ["empty.png", "notes.png"]
    assert features.dataset == "scans"
    cache = build_cache(folder, 16, 1)
    direct = extract_features(random_model_dir, cache.images).features
    np.testing.assert_array_equal(features.features, direct)


def test_a_list_of_ok_uris_restricts_the_rows(random_model_dir, tmp_path):
    folder = str(tmp_path / "store" / "scans")
    write_png_folder(folder, 5)
    everything = extract_features(random_model_dir, folder)
    wanted = [everything.uris[3], everything.uris[1], everything.uris[1] + ".gone"]
    chosen = extract_features(random_model_dir, folder, uris=wanted)
    assert chosen.uris == wanted[:2]
    np.testing.assert_array_equal(chosen.features, everything.features[[3, 1]])
    assert list(chosen.skipped) == [wanted[2]]


def test_bad_input_gives_one_clear_error(random_model_dir, tmp_path, images):
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="found no images"):
        extract_features(random_model_dir, str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="could be decoded"):
        extract_features(random_model_dir, str(bad))
    with pytest.raises(ValueError, match=r"\(N, 1, 16, 16\)"):
        extract_features(random_model_dir, torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="one per image"):
        extract_features(random_model_dir, images, uris=["a"])
    with pytest.raises(FileNotFoundError, match="no trained model"):
        extract_features(str(tmp_path / "none"), images)


def test_the_discriminator_runs_in_eval_mode(random_model_dir, images):
    model = load_model(random_model_dir)
    model.discriminator.train()  # a caller's model in training mode is copied, not changed
    a = extract_features(model, images).features
    b = extract_features(model, images).features
    np.testing.assert_array_equal(a, b)
    assert model.discriminator.training
    with torch.no_grad():
        model.discriminator.eval()
        direct = discriminator_features(model.discriminator, to_model_range(images), FeatureProtocol())
    np.testing.assert_array_equal(a, direct.numpy())


@pytest.mark.parametrize("k", [2, 4, 8])
def test_window_max_is_max_pool(k):
    x = torch.randn(3, 5, 16, 16, generator=torch.Generator().manual_seed(k))
    assert torch.equal(_window_max(x, k), F.max_pool2d(x, k))


def test_features_follow_the_manifest_beside_the_model(tmp_path, image_folder, tiny_model_config):
    import pyarrow as pa

    from gan_augment.cli import main
    from gan_augment.config import TrainConfig
    from gan_augment.io.parquet import read_table, write_table
    from gan_augment.scan.store import scan_store
    from gan_augment.training.trainer import train

    out = str(tmp_path / "out")
    scan_store(os.path.dirname(image_folder), out=out)
    train(image_folder, out, tiny_model_config, TrainConfig(steps=1, batch_size=8))
    # A verdict only the manifest knows: a readable image marked corrupt must not be featurised.
    manifest_url = f"{out}/blobs/manifest.parquet"
    manifest = read_table(manifest_url)
    statuses = manifest.column("status").to_pylist()
    rejected = manifest.column("uri")[0].as_py()
    statuses[0] = "corrupt"
    write_table(manifest_url, manifest.set_column(manifest.schema.get_field_index("status"), "status",
                                                  pa.array(statuses)))
    assert main(["features", f"{out}/blobs/model", image_folder, "--out", str(tmp_path / "f.parquet")]) == 0
    uris = read_table(str(tmp_path / "f.parquet")).column("uri").to_pylist()
    assert len(uris) == 23 and rejected not in uris


def test_an_ok_object_that_does_not_decode_is_written_back_by_the_features_export(random_model_dir, tmp_path):
    from gan_augment.io.tables import read_manifest
    from gan_augment.scan.images import probe_image
    from gan_augment.scan.store import scan_store
    from gan_augment.testing.fuzz import fuzz_corpus

    store = tmp_path / "store"
    write_png_folder(str(store / "ds"), 6)
    sneaky = next(case for case in fuzz_corpus(200, seed=3)
                  if probe_image(case.data, len(case.data)).status == "ok" and _fails(case.data))
    (store / "ds" / f"sneaky.{sneaky.name.rsplit('.', 1)[1]}").write_bytes(sneaky.data)
    manifest = scan_store(str(store), out=str(tmp_path / "out")).datasets["ds"].manifest_url
    features = extract_features(random_model_dir, str(store / "ds"), manifest=manifest)
    assert len(features) == 6 and len(features.skipped) == 1
    row = next(r for r in read_manifest(manifest).to_pylist() if "sneaky." in r["uri"])
    assert (row["status"], row["checked"], row["found_in"]) == ("corrupt", "decode", "features")


def _fails(data: bytes) -> bool:
    from gan_augment.scan.images import ImageRejected, decode_image

    try:
        decode_image(data, 16, 1)
    except ImageRejected:
        return True
    return False


def test_features_decode_a_store_as_the_model_was_trained(tmp_path):
    from conftest import TINY_MODEL, write_random_model
    from PIL import Image

    folder = tmp_path / "store" / "sprites"
    folder.mkdir(parents=True)
    for k in range(4):  # wide RGBA sprites: a coloured figure on a transparent field
        sprite = Image.new("RGBA", (24, 16), (0, 0, 0, 0))
        sprite.paste((40 * k, 200, 90, 255), (2 + k, 3, 20, 13))
        sprite.save(folder / f"{k}.png")
    config = ModelConfig(**{**TINY_MODEL, "channels": 3}, background="white", fit="pad")
    model_dir = write_random_model(str(tmp_path / "out" / "sprites" / "model"), config)
    assert load_model(model_dir).model_config.decode_options == {"background": "white", "fit": "pad"}
    features = extract_features(model_dir, str(folder)).features
    as_trained = build_cache(str(folder), 16, 3, background="white", fit="pad").images
    np.testing.assert_array_equal(features, extract_features(model_dir, as_trained).features)
    other = build_cache(str(folder), 16, 3, background="black", fit="crop").images
    assert not np.allclose(features, extract_features(model_dir, other).features)


def test_a_model_saved_before_the_decode_options_loads_with_black_and_crop(tmp_path):
    from conftest import TINY_MODEL, write_random_model

    from gan_augment.gan.checkpoint import load_state, save_state

    model_dir = write_random_model(str(tmp_path / "model"), ModelConfig(**TINY_MODEL))
    url = os.path.join(model_dir, "model.pt")
    state = load_state(url, "gan-augment/model")
    for key in ("background", "fit"):
        del state["model_config"][key]
    save_state(url, state)
    assert load_model(model_dir).model_config.decode_options == {"background": "black", "fit": "crop"}
