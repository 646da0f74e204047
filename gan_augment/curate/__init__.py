"""What is in the store: analyses over a dataset's discriminator features and manifest.

Each analysis is one module that reads what the earlier stages wrote under `<out>/<dataset>/`
(the features table, the manifest) and answers with columns keyed by `uri` plus a summary
(`to_table()` and `summary()` on its result), so that a report can loop over them.

    selection        which images to label first under a labelling budget (`select_for_labelling`)
    near_duplicates  near-copies: perceptual-hash candidates verified on pixels (`find_near_duplicates`)
    outliers         the images the discriminator finds most unusual (`rank_outliers`)
    report           `OUT/<dataset>/report.html` over all of them, and `OUT/index.html` (`write_reports`)

`neighbours` is the one neighbour search the analyses share; `embedding` the space of standardised
principal components that selection and the near-duplicate search measure features in; `copies`
tells a copy from a look-alike on pixels; `html` renders the report's pieces.
"""

from gan_augment.curate.near_duplicates import NearDuplicates, find_near_duplicates
from gan_augment.curate.outliers import Outliers, rank_outliers
from gan_augment.curate.report import write_reports
from gan_augment.curate.selection import METHODS, Selection, select_for_labelling

__all__ = ["METHODS", "NearDuplicates", "Outliers", "Selection", "find_near_duplicates", "rank_outliers",
           "select_for_labelling", "write_reports"]
