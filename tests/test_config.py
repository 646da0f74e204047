import pytest

from gan_augment.config import ModelConfig, TrainConfig


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig])
def test_json_round_trip(cls):
    config = cls()
    assert cls.from_json(config.to_json()) == config


def test_round_trip_keeps_non_defaults():
    config = TrainConfig(steps=10, epochs=None, diffaugment="color,cutout", flip=True, lr=1e-3)
    assert TrainConfig.from_json(config.to_json()) == config


def test_the_critics_head_weight_leaves_the_dict_of_runs_at_its_default():
    assert "critic_head_weight" not in TrainConfig().to_dict()  # model ids of existing runs stand
    assert TrainConfig.from_json(TrainConfig(critic_head_weight=0.0).to_json()).critic_head_weight == 0.0


def test_unknown_key_names_it():
    with pytest.raises(ValueError, match="unknown field.*'image_sise'"):
        ModelConfig.from_dict({"image_sise": 32})


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (ModelConfig, {"image_size": 48}, "image_size"),
        (ModelConfig, {"image_size": 8}, "image_size"),
        (ModelConfig, {"image_size": 512}, "image_size"),
        (ModelConfig, {"channels": 2}, "channels"),
        (ModelConfig, {"upsample": "bicubic"}, "upsample"),
        (ModelConfig, {"ngf": 0}, "ngf"),
        (ModelConfig, {"d_dropout": 1.5}, "d_dropout"),
        (ModelConfig, {"background": "grey"}, "background"),
        (ModelConfig, {"background": "#12345"}, "background"),
        (ModelConfig, {"fit": "stretch"}, "fit"),
        (TrainConfig, {"lr": -1e-4}, "lr"),
        (TrainConfig, {"lr": float("nan")}, "lr"),
        (TrainConfig, {"batch_size": 0}, "batch_size"),
        (TrainConfig, {"steps": 0}, "steps"),
        (TrainConfig, {"loss": "mse"}, "loss"),
        (TrainConfig, {"diffaugment": "color,zoom"}, "diffaugment"),
        (TrainConfig, {"device": "tpu"}, "device"),
        (TrainConfig, {"flip": "yes"}, "flip"),
        (TrainConfig, {"view_flip": 1}, "view_flip"),
        (TrainConfig, {"d_lr": 0.0}, "d_lr"),
        (TrainConfig, {"fake_batch_size": 0}, "fake_batch_size"),
        (TrainConfig, {"fake_negatives": 1}, "fake_negatives"),
        (TrainConfig, {"fake_batch_size": 1}, "fake_batch_size"),  # ContraD's loss on fakes needs two
        (TrainConfig, {"fake_contrastive_weight": -1.0}, "fake_contrastive_weight"),
        (TrainConfig, {"critic_head_weight": -0.5}, "critic_head_weight"),
    ],
)
def test_impossible_values_name_the_field(cls, kwargs, field):
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.{field}="):
        cls(**kwargs)


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        ModelConfig().image_size = 64  # type: ignore[misc]


def test_num_blocks_follows_image_size():
    assert [ModelConfig(image_size=s).num_blocks for s in (16, 32, 64, 128, 256)] == [2, 3, 4, 5, 6]


def test_augment_policies_parse():
    assert TrainConfig(diffaugment=" color, translation ").augment_policies == ("color", "translation")
    assert TrainConfig().augment_policies == ()


def test_defaults_are_the_contrastive_recipe_and_the_seed_is_one_call_away():
    recipe, seed = TrainConfig(), TrainConfig.seed_dcgan(epochs=8)
    assert recipe.contrastive_weight > 0 and recipe.fake_negatives and recipe.detach_gan_head
    assert seed.contrastive_weight == 0 and (seed.lr, seed.d_lr, seed.beta1, seed.d_beta1) == (2e-4, 2e-4, 0.5, 0.5)
    assert seed.batch_size == seed.fakes_per_step == 64 and seed.epochs == 8
    assert ModelConfig().projection_dim > 0
    assert ModelConfig.seed_dcgan() == ModelConfig(ngf=64, ndf=64, d_dropout=0.25, projection_dim=0)
    assert TrainConfig.from_json(seed.to_json()) == seed


def test_the_loss_on_fakes_is_automatic_by_channel_count_unless_given():
    auto = TrainConfig()
    assert auto.fake_contrastive_weight is None and TrainConfig.from_json(auto.to_json()) == auto
    assert auto.fake_contrastive_weight_for(1) == 1.0 and auto.fake_contrastive_weight_for(3) == 0.0
    given = TrainConfig(fake_contrastive_weight=0.5)
    assert given.fake_contrastive_weight_for(1) == given.fake_contrastive_weight_for(3) == 0.5
    with pytest.raises(ValueError, match="fake_batch_size"):  # automatic may mean 1.0: it needs two fakes
        TrainConfig(fake_batch_size=1)
    assert TrainConfig(fake_batch_size=1, fake_contrastive_weight=0.0).fakes_per_step == 1


def test_decode_options_are_what_build_cache_takes():
    config = ModelConfig(background="#FF8000", fit="crop")
    assert config.decode_options == {"background": "#FF8000", "fit": "crop"}
    assert ModelConfig.from_json(config.to_json()) == config
