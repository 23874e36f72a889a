import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.errors import BenchError
from bench.results.store import consolidate, ensure_writable_dir, load_results, read_runs, write_run, write_table_atomic
from bench.results.schema import SCHEMA_VERSION, RunRecord, arrow_schema, records_to_table, table_to_records


def _record(run_id="r1", **values):
    record = RunRecord(run_id=run_id, config_hash="abc", strategy="hybrid", n_languages=2)
    record.update(**values)
    return record


def test_schema_round_trip_keeps_types_and_lists():
    record = _record(step_times_s=[0.1, 0.2], peak_tensor_bytes=123, predicted=False, samples_per_s=4.5)
    table = records_to_table([record])
    assert table.schema.equals(arrow_schema(), check_metadata=False)
    assert table_to_records(table)[0] == record


def test_unit_suffixes_are_used_for_measurements():
    names = arrow_schema().names
    for name in names:
        if name.startswith(("peak_", "cuda_peak")):
            assert name.endswith("_bytes"), name
        if name.endswith("_time") or name.startswith("wall"):
            assert name.endswith("_s"), name


def test_unknown_fields_and_statuses_are_refused():
    with pytest.raises(KeyError):
        _record().update(not_a_column=1)
    with pytest.raises(ValueError):
        RunRecord(run_id="x", config_hash="y", status="great")


def test_rows_are_rebuilt_from_per_run_files_and_replaced_not_duplicated(tmp_path):
    write_run(tmp_path, _record("a", status="failed"))
    write_run(tmp_path, _record("b"))
    write_run(tmp_path, _record("a"))  # a re-run replaces its file
    table = consolidate(tmp_path)
    assert sorted(table["run_id"]) == ["a", "b"] and set(table["status"]) == {"ok"}
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "x.parquet"
    write_table_atomic(records_to_table([_record("old")]), path)
    bad = pa.table({"a": [1]})
    with pytest.raises(Exception):
        write_table_atomic(bad, path / "impossible")  # cannot write inside a file
    assert pq.read_table(path).column("run_id").to_pylist() == ["old"]


def test_other_schema_version_is_a_one_line_error(tmp_path):
    table = records_to_table([_record()]).replace_schema_metadata({"schema_version": str(SCHEMA_VERSION + 1)})
    write_table_atomic(table, tmp_path / "runs" / "r1.parquet")
    with pytest.raises(BenchError, match="schema version"):
        read_runs(tmp_path)


def test_unwritable_results_dir_and_missing_results_are_bench_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BenchError, match="not writable"):
        ensure_writable_dir(blocker / "sub")
    with pytest.raises(BenchError, match="no results.parquet"):
        load_results(tmp_path)
