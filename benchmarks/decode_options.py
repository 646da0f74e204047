"""Which transparency background and which fit (crop or pad to square) to decode colour sprites
with: Wesnoth's unit sprites (`apt-get install wesnoth-1.16-data`) decoded at 64x64x3 under each
choice, scored by the few-label probe on a random discriminator's features (and, with
`--raw-pixels`, on raw pixels).

No training is involved: what a decode choice gives every learner is the content that survives it,
and these two learners see nothing else. The pool and test split are `fewlabel.py --data wesnoth`'s.

    python benchmarks/decode_options.py [--draws 3] [--raw-pixels] [--no-write]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_line, markdown_table, write_section  # noqa: E402
from fewlabel_data import DATASETS, features_of, fmt, load_split, write_wesnoth  # noqa: E402

from gan_augment.config import FeatureProtocol  # noqa: E402
from gan_augment.evaluate.probe import few_label_probe, random_discriminator  # noqa: E402
from gan_augment.gan.pixels import to_model_range  # noqa: E402

SECTION = "Transparency and fit on colour sprites (Wesnoth, 64x64x3)"
CHOICES = [("black", "crop"), ("white", "crop"), ("black", "pad"), ("white", "pad")]
KS = (1, 10)  # labels per class; the probe's other counts fall between


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=3, help="label draws per k (default: 3)")
    parser.add_argument("--raw-pixels", action="store_true", help="also probe raw pixels (12,288-d: slow)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="decode-options-")
    write_wesnoth(root)
    rows = []
    for background, fit in CHOICES:
        model = dataclasses.replace(DATASETS["wesnoth"].model, background=background, fit=fit)
        (pool, y_pool), (test, y_test) = load_split(root, "pool", model), load_split(root, "test", model)
        pool_images, test_images = to_model_range(pool.images), to_model_range(test.images)
        spaces = {"random-init D": tuple(features_of(random_discriminator(model, seed=0), images, FeatureProtocol())
                                         for images in (pool_images, test_images))}
        if args.raw_pixels:
            spaces["raw pixels"] = (pool_images.flatten(1).numpy(), test_images.flatten(1).numpy())
        for name, (x_pool, x_test) in spaces.items():
            results = [few_label_probe(x_pool, y_pool, k, x_test, y_test, draws=args.draws) for k in KS]
            rows.append([f"background={background}, fit={fit}: {name}", *(fmt(r) for r in results)])
            print(rows[-1], file=sys.stderr)
    table = markdown_table(["decode: features", *(f"{k} label{'s' if k > 1 else ''}/class" for k in KS)], rows)
    print(table)
    if not args.no_write:
        write_section(SECTION, "\n\n".join([
            f"`python benchmarks/decode_options.py --draws {args.draws}" + (" --raw-pixels" if args.raw_pixels else "")
            + "`",
            f"{machine_line(1)}; load average {os.getloadavg()[0]:.1f} at the end. {DATASETS['wesnoth'].text}, "
            "decoded under each `ModelConfig(background=..., fit=...)`. Test accuracy (%) of the few-label probe "
            f"(`probe.few_label_probe`), mean ± standard deviation over {args.draws} label draws, on the features "
            "of a randomly initialised 64x64x3 discriminator (`extract_features`' default protocol)"
            + (" and on raw pixels" if args.raw_pixels else "") + ". About 15% of the sprites are not square "
            "(120x100, 72x102, ...).",
            table,
        ]))


if __name__ == "__main__":
    main()
