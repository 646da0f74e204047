"""Probing and decoding image bytes: every kind of bad input gets its status, every odd mode
comes out right."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import bad_inputs, encode, exif_rotated_jpeg, noise_image, png_with_header
from PIL import Image

from gan_augment.scan.images import ImageRejected, decode_image, probe_image, sniff_format

INPUTS = bad_inputs()


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_probe_of_whole_object_gives_expected_status(name):
    data, expected = INPUTS[name]
    probe = probe_image(data, len(data))
    # A duplicate is an ok object until a scan sees its twin.
    assert probe.status == ("ok" if expected == "duplicate" else expected), probe.error
    assert (probe.error == "") == (probe.status == "ok")


@pytest.mark.parametrize("name", sorted(name for name, (data, _) in INPUTS.items() if len(data) > 600))
def test_probe_of_header_and_tail_agrees_with_whole_object(name):
    data, _ = INPUTS[name]
    whole = probe_image(data, len(data))
    head = 512
    while (partial := probe_image(data[:head], len(data), tail=data[-1024:])).incomplete:
        head *= 4
    assert (partial.status, partial.format) == (whole.status, whole.format)
    if partial.status == "ok":
        assert (partial.mode, partial.width, partial.height) == (whole.mode, whole.width, whole.height)


def test_probe_reads_format_mode_and_upright_size():
    probe = probe_image(exif_rotated_jpeg(), len(exif_rotated_jpeg()))
    assert (probe.format, probe.mode, probe.width, probe.height) == ("JPEG", "L", 16, 24)
    data = INPUTS["gray16.png"][0]
    assert probe_image(data, len(data)).mode.startswith("I;16")


def test_probe_limits_pixels_and_bytes():
    data = png_with_header(1000, 1000)
    assert probe_image(data, len(data)).status == "ok"
    limited = probe_image(data, len(data), max_pixels=999_999)
    assert limited.status == "too_large" and "1000x1000" in limited.error
    assert probe_image(data, len(data), max_bytes=len(data) - 1).status == "too_large"


def test_probe_asks_for_more_when_the_header_is_cut():
    jpeg = INPUTS["exif-rotated.jpg"][0]
    probe = probe_image(jpeg[:100], len(jpeg), tail=jpeg[-1024:])
    assert probe.incomplete and probe.format == "JPEG"
    # Unknown magic is final: no amount of reading turns text into an image.
    text = INPUTS["text.png"][0]
    assert not probe_image(text[:16], len(text), tail=text[-16:]).incomplete


def test_sniff_format():
    assert sniff_format(INPUTS["ok-gray.png"][0]) == "PNG"
    assert sniff_format(INPUTS["ok-rgb.jpg"][0]) == "JPEG"
    assert sniff_format(INPUTS["image.webp"][0]) == "WEBP"
    assert sniff_format(INPUTS["image.tiff"][0]) == "TIFF"
    assert sniff_format(INPUTS["animated.gif"][0]) == "GIF"
    assert sniff_format(INPUTS["image.bmp"][0]) == "BMP"
    assert sniff_format(b"P5\n16 16\n255\n") == "PPM"
    assert sniff_format(b"hello") is None


@pytest.mark.parametrize("name", sorted(name for name, (_, status) in INPUTS.items() if status != "ok"
                                        and status != "duplicate"))
def test_decode_refuses_what_the_scan_refuses(name):
    data, expected = INPUTS[name]
    with pytest.raises(ImageRejected) as info:
        decode_image(data, 16, 3)
    assert info.value.status == expected


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", sorted(name for name, (_, status) in INPUTS.items() if status in ("ok", "duplicate")))
def test_decode_gives_fixed_size_uint8(name, channels):
    pixels = decode_image(INPUTS[name][0], 16, channels)
    assert pixels.shape == (16, 16, channels) and pixels.dtype == np.uint8


def test_exif_rotated_jpeg_comes_out_upright():
    pixels = decode_image(exif_rotated_jpeg(), 16, 1, fit="crop")[..., 0]  # upright 16x24 -> centre 16x16 crop
    # Upright, the top half is white: rows 0-3 of the crop are white, the last rows black.
    assert pixels[:3].mean() > 230 and pixels[-3:].mean() < 25


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    pixels = decode_image(INPUTS["gray16.png"][0], 16, 1)[..., 0]
    expected = np.round(np.linspace(0, 65535, 256).reshape(16, 16) / 257)
    assert np.abs(pixels.astype(int) - expected).max() <= 1


def test_transparency_is_composited_onto_white_by_default_and_black_on_request():
    palette = decode_image(INPUTS["palette-transparent.png"][0], 16, 3)
    assert (palette[:, :8] == 255).all()  # transparent palette entry, on the default white
    assert (palette[:, 8:] == (255, 0, 0)).all()  # opaque red
    assert (decode_image(INPUTS["palette-transparent.png"][0], 16, 3, background="black")[:, :8] == 0).all()
    rgba = noise_image((16, 16), "RGBA", seed=7)
    source = np.asarray(rgba).astype(int)
    alpha = source[..., 3:]
    on_black = (source[..., :3] * alpha + 127) // 255
    on_white = (source[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
    assert np.abs(decode_image(INPUTS["rgba.png"][0], 16, 3).astype(int) - on_white).max() <= 1
    assert np.abs(decode_image(INPUTS["rgba.png"][0], 16, 3, background="black").astype(int) - on_black).max() <= 1


def test_cmyk_jpeg_converts_to_rgb():
    pixels = decode_image(INPUTS["cmyk.jpg"][0], 16, 3)
    # CMYK (0, 255, 255, 0) is pure red.
    assert np.abs(pixels.astype(int) - (255, 0, 0)).max() <= 8


def test_gif_gives_its_first_frame():
    pixels = decode_image(INPUTS["animated.gif"][0], 16, 3)
    assert np.abs(pixels.astype(int) - (255, 0, 0)).max() <= 8


def test_resize_and_centre_crop():
    image = Image.new("L", (64, 32), 0)
    image.paste(255, (16, 0, 48, 32))  # the centre square is white, the sides black
    pixels = decode_image(encode(image, "PNG"), 16, 1, fit="crop")[..., 0]
    assert pixels.min() == 255
    large = encode(noise_image((400, 300), seed=3), "JPEG", quality=90)  # decoded at a reduced DCT scale
    reference = np.asarray(Image.open(io.BytesIO(large)).convert("RGB").crop((50, 0, 350, 300))
                           .resize((16, 16), Image.Resampling.BILINEAR), dtype=float)
    assert np.abs(decode_image(large, 16, 3, fit="crop") - reference).mean() < 12


@pytest.mark.parametrize("background, rgb", [("black", (0, 0, 0)), ("white", (255, 255, 255)),
                                             ("#204080", (32, 64, 128))])
def test_transparency_is_composited_onto_the_background(background, rgb):
    sprite = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    sprite.paste((255, 0, 0, 255), (4, 4, 12, 12))  # an opaque red square on a transparent field
    pixels = decode_image(encode(sprite, "PNG"), 16, 3, background=background)
    assert (pixels[0, 0] == rgb).all() and (pixels[8, 8] == (255, 0, 0)).all()
    grey = decode_image(encode(sprite, "PNG"), 16, 1, background=background)[0, 0, 0]
    assert grey == Image.new("RGB", (1, 1), rgb).convert("L").getpixel((0, 0))  # Pillow's own grey of it


def test_pad_keeps_the_whole_image_on_the_background():
    image = Image.new("RGB", (64, 32), (0, 0, 255))  # a blue strip twice as wide as high
    cropped = decode_image(encode(image, "PNG"), 16, 3, fit="crop")
    padded = decode_image(encode(image, "PNG"), 16, 3, fit="pad", background="white")
    assert (cropped == (0, 0, 255)).all()  # the crop is all strip
    assert (padded[:3] == 255).all() and (padded[-3:] == 255).all()  # white bands above and below
    assert (padded[5:11] == (0, 0, 255)).all()  # the whole strip, squeezed to 16 wide, in the middle
    tall = decode_image(encode(Image.new("L", (8, 32), 200), "PNG"), 16, 1, fit="pad", background="black")[..., 0]
    assert (tall[:, :5] == 0).all() and (tall[:, 7:9] == 200).all() and (tall[:, -5:] == 0).all()
    default = decode_image(encode(Image.new("L", (8, 32), 200), "PNG"), 16, 1)[..., 0]
    assert (default == 200).all()  # the default fit crops: the centre square of the strip, no padding


def test_bad_decode_options_teach():
    data = encode(Image.new("L", (8, 8)), "PNG")
    with pytest.raises(ValueError, match="expected black, white or a colour #rrggbb"):
        decode_image(data, 16, 1, background="grey")
    with pytest.raises(ValueError, match="expected one of crop, pad"):
        decode_image(data, 16, 1, fit="stretch")
