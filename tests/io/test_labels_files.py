"""Labels files as people write them: a spreadsheet's CSV reads like the file `select` wrote."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gan_augment.io.labels import read_labels, read_listed_labels

CLEAN = {"a.png": "cat", "b.png": "dog", "c.png": None}


@pytest.mark.parametrize("text", [
    "uri,label\na.png,cat\nb.png,dog\nc.png,\n",
    "\ufeffuri;label;rank\r\na.png;cat;1\r\nb.png;dog;2\r\nc.png;;3\r\n",  # a spreadsheet where 0,5 is a half
    "uri\tlabel\na.png\tcat\nb.png\tdog\nc.png\t\n",
    "uri,label\n a.png , cat\nb.png,dog \nc.png,  \n",  # spaces typed around cells
])
def test_a_spreadsheets_labels_file_reads_as_the_written_one(tmp_path, text):
    path = tmp_path / "picks.csv"
    path.write_bytes(text.encode("utf-8"))
    assert read_listed_labels(str(path)) == CLEAN
    assert read_labels(str(path)) == {"a.png": "cat", "b.png": "dog"}


def test_the_files_of_several_rounds_read_as_one(tmp_path):
    first, second = tmp_path / "picks.csv", tmp_path / "more.parquet"
    first.write_text("uri,label\na.png,cat\nb.png,\nc.png,dog\n")
    pq.write_table(pa.table({"uri": ["b.png", "d.png"], "label": ["dog", None]}), second)  # b labelled later
    rounds = [str(first), str(second)]
    assert read_listed_labels(rounds) == {"a.png": "cat", "b.png": "dog", "c.png": "dog", "d.png": None}
    assert read_labels(rounds) == {"a.png": "cat", "b.png": "dog", "c.png": "dog"}
    pq.write_table(pa.table({"uri": ["a.png"], "label": ["dog"]}), second)
    with pytest.raises(ValueError, match=r"more\.parquet gives 'a\.png' two labels \('cat' and 'dog'\)"):
        read_labels(rounds)


def test_a_comma_in_a_quoted_uri_keeps_the_comma_as_the_separator(tmp_path):
    path = tmp_path / "picks.csv"
    path.write_text('uri,label\n"s3://b/x;y.png",cat\n"/a, b.png",dog\n')
    assert read_labels(str(path)) == {"s3://b/x;y.png": "cat", "/a, b.png": "dog"}


def test_read_labels_leaves_out_rows_not_labelled_yet(tmp_path, caplog):
    csv = tmp_path / "picks.csv"
    csv.write_text("uri,label,rank,reason\na.png,3,1,x\nb.png,,2,y\nc.png,4,3,z\n")  # numbers with a gap
    with caplog.at_level("INFO", logger="gan_augment"):
        assert read_labels(str(csv)) == {"a.png": 3, "c.png": 4}
    assert "2 labelled images; 1 rows with an empty label left out" in caplog.text
    csv.write_text("uri,label\na.png,cat\nb.png, \n")
    assert read_labels(str(csv)) == {"a.png": "cat"}
    csv.write_text("uri,label,rank\na.png,,1\nb.png,,2\n")
    with pytest.raises(ValueError, match="no row of .* has a label yet .*fill in the label column"):
        read_labels(str(csv))


def test_read_labels_from_csv_and_parquet(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("uri,label\nimg-000.png,cat\nimg-001.png,dog\n")
    assert read_labels(str(csv)) == {"img-000.png": "cat", "img-001.png": "dog"}
    pq.write_table(pa.table({"uri": ["a.png", "b.png"], "label": [3, 4]}), tmp_path / "labels.parquet")
    assert read_labels(str(tmp_path / "labels.parquet")) == {"a.png": 3, "b.png": 4}
    csv.write_text("uri,label\na.png,cat\na.png,cat \nb.png,dog\n")  # padded once: the same label
    assert read_labels(str(csv)) == {"a.png": "cat", "b.png": "dog"}
    csv.write_text("uri,label\na.png,1\na.png,2\n")
    with pytest.raises(ValueError, match="two labels"):
        read_labels(str(csv))
    csv.write_text("path,label\na.png,1\n")
    with pytest.raises(ValueError, match="no column 'uri'"):
        read_labels(str(csv))
