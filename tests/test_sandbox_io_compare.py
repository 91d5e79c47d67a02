"""IO verdicts compare stdout as judges do (exact integers, tolerance only for decimals), and
tests that could skip their own asserts are rejected before anything runs."""

import pytest

from prm_jax.sandbox import Job, SandboxPool, outputs_match
from prm_jax.sandbox.pool import validate_job


@pytest.mark.parametrize("actual, expected, match", [
    ("1000013129", "1000014129", False),   # integers: exact, however large
    ("1000014129\n", "1000014129", True),
    ("3.0", "3", False),                    # an integer answer is not a float
    ("007", "7", True),
    ("-0", "0", True),
    ("2_000_000", "2000000", False),        # float() accepts underscores; judges do not
    ("2e6", "2000000", False),
    ("inf", "1e309", False),
    ("nan", "0.5", False),
    ("nan", "nan", True),                   # only itself
    ("infinity", "inf", False),
    ("0.5000001", "0.5", True),             # tolerance where the expected token is a decimal
    ("0.5001", "0.5", False),
    ("3", "3.0", True),
    ("1e-7", "0.0", True),
    ("1 2 3", "1 2 3", True),
    ("1 2", "1 2 3", False),
    ("a  b\r\n\n", "a b", True),
    ("YES", "yes", False),
])
def test_outputs_match(actual, expected, match):
    assert outputs_match(actual, expected) is match


def test_integer_output_off_by_a_thousand_fails_in_the_sandbox():
    with SandboxPool(workers=1) as pool:
        wrong = pool.run(Job(id="big", program="print(int(input()) - 1000)", io=(("1000014129", "1000014129"),)))
        right = pool.run(Job(id="ok", program="print(int(input()))", io=(("1000014129", "1000014129"),)))
    assert wrong.status == "failed" and right.passed


@pytest.mark.parametrize("test, what", [
    ("yield 1", "test 1"),
    ("return", "test 1"),
    ("break", "test 1"),
    ("continue", "test 1"),
    ("await f()", "test 1"),
    ("assert (", "test 1"),
    ("for x in []:\n    pass\nreturn", "test 1"),
])
def test_tests_that_skip_their_asserts_are_rejected(test, what):
    job = Job(id="row7", program="def f():\n    return 1\n", tests=("assert f() == 1", test))
    with pytest.raises(ValueError, match=f"job 'row7': {what} is not valid Python"):
        validate_job(job)


def test_setup_is_validated_too():
    with pytest.raises(ValueError, match="setup is not valid Python"):
        validate_job(Job(id="s", program="", setup="return 1", tests=("assert True",)))


def test_generators_and_returns_inside_functions_are_fine():
    validate_job(Job(id="ok", program="", tests=(
        "def gen():\n    yield 1\n    return\nassert list(gen()) == [1]",
        "for i in range(3):\n    if i:\n        break\nassert True")))
