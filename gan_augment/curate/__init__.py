"""What is in the store: analyses over a dataset's discriminator features and manifest.

Each analysis is one module that reads what the earlier stages wrote under `<out>/<dataset>/`
(the features table, the manifest) and answers with columns keyed by `uri` plus a summary
(`to_table()` and `summary()` on its result), so that a report can loop over them.

    selection  which images to label first under a labelling budget (`select_for_labelling`)
"""

from gan_augment.curate.selection import METHODS, Selection, select_for_labelling

__all__ = ["METHODS", "Selection", "select_for_labelling"]
