"""How good a model is: sample quality against the real-vs-real floor (SWD in `metrics`; FID/KID
in `fid`, with the FID Inception of `inception`), the few-label linear probe on discriminator
features (`probe`; its classifier alone, without torch, in `linear`), and `evaluate_model`,
which runs them (`compared_sets` and `swd_with_floor` are its SWD part on their own) and can
record the result in the model card.

The names below are imported on first use (PEP 562, as the top package does), so that a caller of
`linear` alone, such as `curate.selection`, does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gan_augment.lazy import lazy_exports

# public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(["ComparedSets", "Evaluation", "SwdWithFloor", "compared_sets", "evaluate_model", "format_table",
                     "swd_with_floor"], "gan_augment.evaluate.evaluation"),
    **dict.fromkeys(["FidKid", "fid_kid"], "gan_augment.evaluate.fid"),
    "load_inception": "gan_augment.evaluate.inception",
    **dict.fromkeys(["SlicedWasserstein", "frechet_distance", "kernel_inception_distance", "sliced_wasserstein"],
                    "gan_augment.evaluate.metrics"),
    **dict.fromkeys(["ProbeResult", "compare_features", "few_label_probe"], "gan_augment.evaluate.probe"),
    "read_labels": "gan_augment.io.labels",
}

__all__ = ["ComparedSets", "Evaluation", "FidKid", "ProbeResult", "SlicedWasserstein", "SwdWithFloor",
           "compare_features", "compared_sets", "evaluate_model", "few_label_probe", "fid_kid", "format_table",
           "frechet_distance", "kernel_inception_distance", "load_inception", "read_labels", "sliced_wasserstein",
           "swd_with_floor"]
assert set(__all__) == set(_EXPORTS)

if TYPE_CHECKING:
    from gan_augment.evaluate.evaluation import (
        ComparedSets,
        Evaluation,
        SwdWithFloor,
        compared_sets,
        evaluate_model,
        format_table,
        swd_with_floor,
    )
    from gan_augment.evaluate.fid import FidKid, fid_kid
    from gan_augment.evaluate.inception import load_inception
    from gan_augment.evaluate.metrics import (
        SlicedWasserstein,
        frechet_distance,
        kernel_inception_distance,
        sliced_wasserstein,
    )
    from gan_augment.evaluate.probe import ProbeResult, compare_features, few_label_probe
    from gan_augment.io.labels import read_labels


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
