"""Problem sources: real formats load with every field; malformed rows name file, line, field."""

import json

import pytest

from prm_jax.data import Problem, ProblemError, load
from prm_jax.data.sources import load_humaneval, load_io, load_mbpp

FIXTURES = __file__.rsplit("/", 1)[0] + "/fixtures"


def test_humaneval_from_the_package():
    problems, report = load_humaneval()
    assert len(problems) == 164 and report.loaded == 164 and not report.skipped
    p = problems[0]
    assert p.task_id == "HumanEval/0" and p.entry_point == "has_close_elements"
    assert p.tests[0].rstrip().endswith("check(has_close_elements)")
    assert p.program("    pass\n") == p.prompt + "    pass\n"


def test_mbpp_original_format():
    problems, _ = load_mbpp(f"{FIXTURES}/mbpp_sample.jsonl")
    by_id = {p.task_id: p for p in problems}
    p = by_id["mbpp/11"]
    assert p.entry_point == "remove_Occ" and p.assembly == "program"
    assert len(p.tests) == 5 and p.meta["num_challenge_tests"] == 2  # challenge tests included
    assert p.prompt.startswith('"""\nWrite a python function') and 'remove_Occ("hello","l")' in p.prompt
    assert "\r" not in p.reference
    assert by_id["mbpp/17"].setup == "from math import isclose"
    assert by_id["mbpp/17"].entry_point == "circle_perimeter"  # not the isclose wrapper
    plain, _ = load_mbpp(f"{FIXTURES}/mbpp_sample.jsonl", include_challenge=False)
    assert len(plain[0].tests) == 3


def test_io_formats():
    problems, _ = load_io(f"{FIXTURES}/io_sample.jsonl")
    by_id = {p.task_id: p for p in problems}
    assert by_id["sum-two"].tests[1] == ("-5   7", "2")
    assert by_id["4051"].tests == (("ab\ncd\n", "ba\ndc\n"),)  # APPS input_output
    assert by_id["4051"].reference.startswith("import sys")
    assert all(p.entry_point is None and p.test_kind == "io" for p in problems)


@pytest.mark.parametrize("dataset, row, message", [
    ("mbpp", {"task_id": 1, "code": "", "test_list": ["assert 1"]}, "missing field 'text'"),
    ("mbpp", {"task_id": 1, "text": "x", "test_list": "assert 1"}, "field 'test_list' must be list"),
    ("mbpp", {"task_id": 1, "text": "x", "test_list": []}, "non-empty list of strings"),
    ("io", {"task_id": "a", "prompt": "p", "tests": [{"input": "1"}]}, "tests[0] must be"),
    ("io", {"task_id": "a", "tests": []}, "'prompt', 'question', 'statement'"),
    ("io", {"task_id": "a", "prompt": "p", "input_output": "{bad"}, "'input_output' is not valid JSON"),
    ("jsonl", {"task_id": "a", "prompt": "", "test_kind": "assert", "tests": ["assert 1"],
               "colour": 1}, "unknown fields ['colour']"),
    ("jsonl", {"task_id": "a", "prompt": "", "test_kind": "shell", "tests": ["x"]}, "test_kind='shell'"),
])
def test_malformed_rows_name_file_line_and_field(tmp_path, dataset, row, message):
    good = {"mbpp": {"task_id": 9, "text": "t", "code": "", "test_list": ["assert 1"]},
            "io": {"task_id": "g", "prompt": "p", "tests": [{"input": "", "output": ""}]},
            "jsonl": {"task_id": "g", "prompt": "", "test_kind": "assert", "tests": ["assert 1"]}}[dataset]
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(row) + "\n")
    with pytest.raises(ProblemError, match=f"p.jsonl:3: .*{__import__('re').escape(message)}"):
        load(dataset, str(path))
    problems, report = load(dataset, str(path), skip_invalid=True)
    assert len(problems) == 1 and len(report.skipped) == 1 and message in report.skipped[0]
    assert "1 skipped" in report.summary()


def test_duplicates_bad_json_and_missing_files(tmp_path):
    path = tmp_path / "p.jsonl"
    row = {"task_id": "a", "prompt": "", "test_kind": "assert", "tests": ["assert 1"]}
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n{oops\n")
    with pytest.raises(ProblemError, match="p.jsonl:2: duplicate task_id 'a'"):
        load("jsonl", str(path))
    _, report = load("jsonl", str(path), skip_invalid=True)
    assert any("p.jsonl:3: not valid JSON" in s for s in report.skipped)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load("mbpp", str(tmp_path / "nope.jsonl"))


def test_generic_jsonl_round_trip(tmp_path):
    from prm_jax.data.sources import write_jsonl

    problems = [Problem(task_id="x/1", prompt="def f():\n", entry_point="f", test_kind="assert",
                        tests=("assert f() == 1",), reference="    return 1\n", meta={"h": 3}),
                Problem(task_id="x/2", prompt="Print 1.", entry_point=None, test_kind="io",
                        tests=(("", "1\n"),), assembly="program")]
    write_jsonl(problems, str(tmp_path / "g.jsonl"))
    back, _ = load("jsonl", str(tmp_path / "g.jsonl"))
    assert back == problems
