"""evaluate_model and `gan-augment evaluate`: distances next to their real-vs-real floor, the
probe from a labels file, the model card, and one clear error for bad input."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
import torch.nn.functional as F
from conftest import write_png_folder
from torch import nn

from gan_augment.cli import main
from gan_augment.evaluate.evaluation import evaluate_model, format_table
from gan_augment.gan.checkpoint import load_model, read_model_card


class Pooled(nn.Module):
    """A small fixed extractor for FID/KID: 4x4 average-pooled pixels."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images, 4).flatten(1)


@pytest.fixture
def model_dir(trained_model_dir, tmp_path) -> str:
    """A writable copy of the session's tiny trained model."""
    return shutil.copytree(trained_model_dir, str(tmp_path / "out" / "blobs" / "model"))


@pytest.fixture
def source(tmp_path) -> str:
    """40 blob images like the ones the model was trained on."""
    folder = str(tmp_path / "store" / "blobs")
    write_png_folder(folder, 40)
    return folder


def labels_by_name(count: int = 40) -> dict[str, int]:
    """Two classes by file name: even and odd image numbers."""
    return {f"img-{i:03d}.png": i % 2 for i in range(count)}


def test_distances_sit_next_to_their_floor_and_land_in_the_card(model_dir, source):
    card_before = read_model_card(model_dir)
    evaluation = evaluate_model(model_dir, source, extractor=Pooled())
    assert evaluation.num_images == 20 and evaluation.swd.resolutions == (16,)
    # A generator trained for 6 steps is far from the data; two halves of the data are close.
    assert evaluation.swd.mean > 5 * evaluation.swd_real.mean > 0
    assert evaluation.fid.fid > 5 * evaluation.fid_real.fid and evaluation.fid.extractor == "Pooled"
    assert evaluation.probes == {}
    card = read_model_card(model_dir)
    assert card["evaluation"] == json.loads(json.dumps(evaluation.to_dict()))
    assert {k: v for k, v in card.items() if k != "evaluation"} == card_before
    again = evaluate_model(model_dir, source, extractor=Pooled(), write_card=False)
    assert (again.swd, again.fid, again.swd_real) == (evaluation.swd, evaluation.fid, evaluation.swd_real)
    table = format_table(evaluation)
    # a Frechet distance in a feature space of one's own is FD, not FID
    assert "SWD 16x16 x1e3" in table and "few-label" not in table and evaluation.fid.metric == "FD"
    assert {line.split()[0] for line in table.splitlines()[3:]} >= {"FD", "KD"}
    assert not any(line.startswith(("FID", "KID")) for line in table.splitlines())
    assert "FD/KD in the features of Pooled (not comparable with published FID/KID)" in table


def test_the_probe_runs_on_labelled_images(model_dir, source):
    labels = labels_by_name()
    full_uri = {f"file://{os.path.join(source, name)}": label for name, label in labels.items()}
    local_path = {os.path.join(source, name): label for name, label in labels.items()}
    results = [evaluate_model(model_dir, source, labels=keys, labelled_per_class=(1, 4), draws=2, write_card=False)
               for keys in (labels, full_uri, local_path)]
    probes = results[0].probes
    assert list(probes) == ["pixels", "random D", "trained D"] and list(probes["pixels"]) == [1, 4]
    assert probes["trained D"][4].num_test == 20 and len(probes["trained D"][4].accuracies) == 2
    assert results[1].probes == probes and results[2].probes == probes  # three ways to name an image
    table = format_table(results[0])
    assert "trained D" in table and "4 / class" in table and "over 2 draws, 20 test images" in table


def test_an_in_memory_model_and_images(random_model_dir, source):
    from gan_augment.scan.cache import build_cache

    images = build_cache(source, 16, 1).images
    model = load_model(random_model_dir)
    before = read_model_card(random_model_dir)
    evaluation = evaluate_model(model, images, labels=[i % 2 for i in range(40)], labelled_per_class=(2,), draws=1)
    assert evaluation.source == "in-memory images" and evaluation.fid is None and 2 in evaluation.probes["pixels"]
    assert read_model_card(random_model_dir) == before  # a TrainedModel has no card to write


def test_bad_input_fails_before_any_work(model_dir, source):
    card_before = read_model_card(model_dir)
    with pytest.raises(ValueError, match="none of the 40 images .* has a label"):
        evaluate_model(model_dir, source, labels={"other.png": 1})
    with pytest.raises(ValueError, match="class [01] has 2 labelled images left .* lower labelled_per_class"):
        evaluate_model(model_dir, source, labels={f"img-{i:03d}.png": i % 2 for i in range(8)},
                       labelled_per_class=(3,))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        evaluate_model(model_dir, source, labels=labels_by_name(), test_fraction=1.0)
    with pytest.raises(ValueError, match="labelled_per_class values >= 1"):
        evaluate_model(model_dir, source, labels=labels_by_name(), labelled_per_class=(0, 5))
    with pytest.raises(ValueError, match="3 labels for 40 images"):
        evaluate_model(model_dir, torch.zeros(40, 1, 16, 16, dtype=torch.uint8), labels=[0, 1, 0])
    with pytest.raises(ValueError, match="evaluation needs at least 4"):
        evaluate_model(model_dir, torch.zeros(3, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05-6726825d.pth"):
        evaluate_model(model_dir, source, extractor=os.path.join(source, "missing.pth"))
    assert read_model_card(model_dir) == card_before


def test_without_labelled_per_class_the_probe_takes_what_the_labels_allow(model_dir, source):
    few = {f"img-{i:03d}.png": i % 2 for i in range(8)}  # 2 per class left for the pool after the split
    evaluation = evaluate_model(model_dir, source, labels=few, draws=1, write_card=False)
    assert list(evaluation.probes["trained D"]) == [1]
    many = evaluate_model(model_dir, source, labels=labels_by_name(), draws=1, write_card=False)
    assert list(many.probes["trained D"]) == [1, 5, 10]


def test_cli_prints_the_table_and_writes_the_card_when_asked(model_dir, source, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("uri,label\n" + "".join(f"{name},{label}\n" for name, label in labels_by_name().items()))
    card_before = read_model_card(model_dir)
    assert main(["evaluate", model_dir, source, "--seed", "2"]) == 0
    assert "SWD mean x1e3" in capsys.readouterr().out
    assert read_model_card(model_dir) == card_before  # the card changes only with --card
    assert main(["evaluate", model_dir, source, "--labels", str(labels), "--labelled-per-class", "1,3",
                 "--draws", "2", "--seed", "1", "--card"]) == 0
    out = capsys.readouterr().out
    assert "SWD mean x1e3" in out and "random D" in out and "3 / class" in out
    card = read_model_card(model_dir)
    assert card["evaluation"]["seed"] == 1 and set(card["evaluation"]["probes"]["trained D"]) == {"1", "3"}
    assert main(["evaluate", model_dir, source, "--seed", "3", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["seed"] == 3 and document["swd"] and read_model_card(model_dir)["evaluation"]["seed"] == 1


def test_cli_bad_input_is_one_line(model_dir, source, tmp_path, capsys):
    assert main(["evaluate", model_dir, source, "--inception-weights", str(tmp_path / "none.pth")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no Inception-v3 weights" in err[0] and "nothing is downloaded" in err[0]
    bad = tmp_path / "labels.csv"
    bad.write_text("name,label\na,1\n")
    assert main(["evaluate", model_dir, source, "--labels", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no column 'uri'" in err[0]
