"""The perceptual hash: stable under resizing, re-encoding and brightness, far apart for
different images, computed by the scan's verify and the training cache's decode."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance

from gan_augment.scan.images import decode_hashed, verify_image
from gan_augment.scan.phash import hamming, perceptual_hash


def scene(seed: int) -> Image.Image:
    """A smooth random grayscale scene: a few blobs of random place, size and brightness."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:64, 0:64]
    pixels = np.zeros((64, 64))
    for _ in range(4):
        cy, cx, r, a = rng.uniform(8, 56), rng.uniform(8, 56), rng.uniform(4, 14), rng.uniform(60, 200)
        pixels += a * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def test_near_copies_hash_close_and_different_images_far():
    image = scene(0)
    original = perceptual_hash(image)
    copies = [image.resize((32, 32)), image.resize((128, 128)), ImageEnhance.Brightness(image).enhance(1.1),
              Image.open(io.BytesIO(jpeg(image, 35)))]
    assert max(hamming(original, perceptual_hash(copy)) for copy in copies) <= 6
    others = [hamming(original, perceptual_hash(scene(seed))) for seed in range(1, 21)]
    assert min(others) > 10, others


def test_the_hash_is_a_signed_64_bit_integer_and_ignores_the_colour_mode():
    image = scene(3)
    value = perceptual_hash(image)
    assert -(2**63) <= value < 2**63 and value == perceptual_hash(image.convert("RGB"))
    assert hamming(value, value) == 0 and hamming(0, -1) == 64


def test_verify_and_the_cache_decode_give_the_same_hash_of_the_whole_image():
    data = jpeg(scene(5).resize((96, 64)), 90)  # not square: the cache crops, the hash must not
    probe = verify_image(data)
    pixels, phash = decode_hashed(data, 16, 1)
    assert pixels.shape == (16, 16, 1) and probe.status == "ok"
    assert probe.phash is not None and hamming(probe.phash, phash) <= 2
    assert decode_hashed(data, 16, 1, phash=False)[1] is None


def test_a_verifying_scan_records_the_hash_unless_told_not_to(tmp_path):
    from gan_augment.scan.store import scan_store

    folder = tmp_path / "store" / "scenes"
    folder.mkdir(parents=True)
    for seed in range(3):
        (folder / f"{seed}.jpg").write_bytes(jpeg(scene(seed), 90))
    for phash, out in ((True, "hashed"), (False, "plain")):
        manifest = scan_store(str(tmp_path / "store"), out=str(tmp_path / out), verify=True, phash=phash,
                              max_seconds=None).datasets["scenes"].manifest
        assert manifest.column("status").to_pylist() == ["ok"] * 3
        assert manifest.column("phash").null_count == (0 if phash else 3)
        assert manifest.column("phash_canonical").null_count == (0 if phash else 3)


def test_the_canonical_hash_follows_a_crop_that_moves_the_perceptual_hash():
    from gan_augment.curate.near_duplicates import CANONICAL_HAMMING, MAX_HAMMING
    from gan_augment.scan.phash import canonical_hash

    moved = {"whole": 0, "canonical": 0}
    for seed in range(6):
        image = scene(seed)
        crop = image.crop((5, 2, 63, 60)).resize((64, 64))  # 9% of each side cut, unevenly
        whole = hamming(perceptual_hash(image), perceptual_hash(crop))
        canonical = hamming(canonical_hash(image), canonical_hash(crop))
        assert whole <= MAX_HAMMING or canonical <= CANONICAL_HAMMING, (seed, whole, canonical)
        moved["whole"] += whole
        moved["canonical"] += canonical
    assert moved["canonical"] < moved["whole"] / 1.5, moved
    probe = verify_image(jpeg(scene(2), 90))
    assert probe.phash_canonical == canonical_hash(Image.open(io.BytesIO(jpeg(scene(2), 90))))
    assert verify_image(jpeg(scene(2), 90), phash=False).phash_canonical is None
