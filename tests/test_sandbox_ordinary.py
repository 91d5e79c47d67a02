"""Ordinary correct programs must pass: debug output on stderr, warnings, fast output written
to `sys.__stdout__`, `atexit` output, threads left running, multiprocessing pools, namedtuple
and dataclass returns, deep nesting, generators, program-defined classes and exceptions."""

import pytest

from prm_jax.sandbox import Job, Limits, SandboxPool

LIMITS = Limits(timeout_s=8.0, memory_mb=1024, max_processes=32)


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2, limits=LIMITS) as p:
        yield p


def _passes(pool, job):
    result = pool.run(job)
    assert result.status == "passed", (job.id, result.status, result.message, result.output_tail)
    return result


IO = [
    ("stderr_debug", "import sys\nn = int(input())\nprint('debug', n, file=sys.stderr)\n"
     "sys.stderr.write('more debug\\n')\nprint(n * 2)\n"),
    ("warnings", "import warnings\nwarnings.warn('deprecated thing')\nprint(int(input()) * 2)\n"),
    ("fast_io_dunder_stdout", "import sys\nsys.__stdout__.write(str(int(input()) * 2) + '\\n')\n"),
    ("fast_io_buffer", "import sys\nsys.stdout.buffer.write(b'%d\\n' % (int(sys.stdin.readline()) * 2))\n"),
    ("fast_io_os_write_fdopen", "import os, sys\nout = os.fdopen(1, 'w')\n"
     "out.write(str(int(sys.stdin.read()) * 2))\n"),
    ("atexit_output", "import atexit\nn = int(input())\natexit.register(lambda: print(n * 2))\n"),
    ("unjoined_thread", "import threading, time\nn = int(input())\n"
     "def late():\n    time.sleep(0.2)\n    print(n * 2)\nthreading.Thread(target=late).start()\n"),
    ("multiprocessing_pool", "from multiprocessing import Pool\n"
     "def double(x):\n    return x * 2\n"
     "if __name__ == '__main__':\n    n = int(input())\n    with Pool(2) as p:\n"
     "        print(sum(p.map(double, [n])))\n"),
    ("sys_exit_zero_after_output", "import sys\nprint(int(input()) * 2)\nsys.exit(0)\n"),
    ("print_float_for_float", "n = int(input())\nprint(n * 2)\n"),
]


@pytest.mark.parametrize("name, program", IO, ids=[c[0] for c in IO])
def test_ordinary_io_program_passes(pool, name, program):
    _passes(pool, Job(id=name, program=program, io=(("21\n", "42\n"), ("5", "10"))))


def test_stderr_is_kept_and_reported(pool):
    result = pool.run(Job(id="stderr", program="import sys\nprint('oops', file=sys.stderr)\nprint(1)\n",
                          io=(("", "2"),)))
    assert result.status == "failed"
    assert "oops" in result.tests[0].message and "oops" in result.output_tail


ASSERT = [
    ("stderr_debug_assert", "import sys\ndef f(x):\n    print('debug', x, file=sys.stderr)\n"
     "    print('stdout noise')\n    return x + 1\n", ("assert f(1) == 2",)),
    ("warnings_assert", "import warnings\ndef f(x):\n    warnings.warn('careful')\n    return x + 1\n",
     ("assert f(1) == 2",)),
    ("namedtuple", "from collections import namedtuple\nP = namedtuple('P', 'x y')\n"
     "def f():\n    return P(1, 2)\n", ("assert f() == (1, 2)", "assert f()[0] == 1")),
    ("dataclass", "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n"
     "def f(x):\n    return P(x + 1)\n", ("assert f(1) == P(2)", "assert f(1).x == 2",
                                        "assert f(1) != P(3)")),
    ("nesting_1000", "def f(n):\n    out = []\n    for _ in range(n):\n        out = [out]\n    return out\n",
     ("x = []\nfor _ in range(1000):\n    x = [x]\nassert f(1000) == x",)),
    ("nested_argument", "def depth(x):\n    d = 0\n    while x:\n        x = x[0]\n        d += 1\n    return d\n",
     ("x = []\nfor _ in range(1000):\n    x = [x]\nassert depth(x) == 1000",)),
    ("generator", "def gen(n):\n    for i in range(n):\n        yield i * i\n",
     ("assert list(gen(4)) == [0, 1, 4, 9]", "g = gen(3)\nassert next(g) == 0 and next(g) == 1",
      "assert sum(gen(3)) == 5")),
    ("program_exception", "class Bad(ValueError):\n    pass\ndef f(x):\n    if x < 0:\n"
     "        raise Bad('negative')\n    return x\n",
     ("try:\n    f(-1)\nexcept ValueError:\n    pass\nelse:\n    assert False",
      "try:\n    f(-1)\n    assert False\nexcept Exception as e:\n    assert 'negative' in str(e)")),
    ("builtin_exception", "def f(x):\n    return [1][x]\n",
     ("try:\n    f(5)\nexcept IndexError:\n    pass\nelse:\n    assert False",)),
    ("in_place_mutation", "def sort_it(xs):\n    xs.sort()\ndef put(d):\n    d['k'] = 1\n",
     ("x = [3, 1, 2]\nsort_it(x)\nassert x == [1, 2, 3]", "d = {}\nput(d)\nassert d == {'k': 1}")),
    ("constants_and_helpers", "MOD = 10 ** 9 + 7\nTABLE = {'a': [1, 2]}\n"
     "def helper(x):\n    return x % MOD\ndef f(x):\n    return helper(x) + 1\n",
     ("assert f(MOD) == 1", "assert TABLE['a'] == [1, 2]", "assert helper(MOD + 5) == 5")),
    ("class_with_methods", "class Stack:\n    def __init__(self):\n        self.items = []\n"
     "    def push(self, x):\n        self.items.append(x)\n    def pop(self):\n"
     "        return self.items.pop()\n    def size(self):\n        return len(self.items)\n",
     ("s = Stack()\ns.push(1)\ns.push(2)\nassert s.pop() == 2 and s.size() == 1",)),
    ("typing_and_imports", "from typing import List\nimport math\n"
     "def f(xs: List[int]) -> float:\n    return math.sqrt(sum(xs))\n",
     ("assert f([9, 16]) == 5.0", "assert isinstance(f([1]), float)", "x: List[int] = [1]")),
    ("multiprocessing_in_call", "from multiprocessing import Pool\n"
     "def sq(x):\n    return x * x\ndef f(xs):\n    with Pool(2) as p:\n        return p.map(sq, xs)\n",
     ("assert f([1, 2, 3]) == [1, 4, 9]",)),
    ("deep_recursion", "import sys\nsys.setrecursionlimit(20000)\n"
     "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n", ("assert depth(5000) == 5000",)),
    ("main_guard_not_run", "def f(x):\n    return x + 1\nif __name__ == '__main__':\n    input()\n",
     ("assert f(1) == 2",)),
    ("bytes_complex_sets", "def f():\n    return b'ab', 1 + 2j, {1, 2}, frozenset({3}), None, True\n",
     ("assert f() == (b'ab', 1 + 2j, {1, 2}, frozenset({3}), None, True)",)),
    ("big_int_and_float", "def f():\n    return 2 ** 200, 0.1 + 0.2\n",
     ("assert f()[0] == 2 ** 200 and abs(f()[1] - 0.3) < 1e-9",)),
    ("isinstance_of_program_class", "class P:\n    def __init__(self, x):\n        self.x = x\n"
     "def f():\n    return P(1)\n", ("assert isinstance(f(), P)", "assert not isinstance(1, P)")),
    ("stdlib_function_imported", "from math import gcd\n", ("assert gcd(12, 8) == 4",)),
    ("dict_views_and_iterators", "def keys(d):\n    return d.keys()\ndef pairs(d):\n    return d.items()\n"
     "def total(xs):\n    return sum(xs)\ndef evens(n):\n    return filter(lambda x: x % 2 == 0, range(n))\n",
     ("assert list(keys({'a': 1, 'b': 2})) == ['a', 'b']", "assert set(pairs({'a': 1})) == {('a', 1)}",
      "assert total(x * x for x in range(4)) == 14", "assert total({'a': 1}.values()) == 1",
      "assert sorted(evens(6)) == [0, 2, 4]")),
    ("private_state_compared", "class S:\n    def __init__(self, n):\n        self._n = n\n"
     "def f():\n    return S(1)\n", ("assert f() == S(1)", "assert f() != S(2)")),
    ("candidate_style", "def add(a, b):\n    return a + b\n",
     ("def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate.__name__ == 'add'\ncheck(add)",)),
]


@pytest.mark.parametrize("name, program, tests", ASSERT, ids=[c[0] for c in ASSERT])
def test_ordinary_assert_program_passes(pool, name, program, tests):
    _passes(pool, Job(id=name, program=program, tests=tests))


def test_program_defined_objects_are_marked(pool):
    program = ASSERT[3][1]
    result = _passes(pool, Job(id="dc", program=program, tests=("assert f(1) == P(2)",
                                                              "assert f(1).x == 2")))
    assert result.tests[0].program_defined
    plain = _passes(pool, Job(id="plain", program="def f():\n    return 1\n", tests=("assert f() == 1",)))
    assert not plain.tests[0].program_defined


def test_setup_is_seen_by_program_and_tests(pool):
    _passes(pool, Job(id="setup", program="def f(x):\n    return x + K\n", setup="K = 1\nimport math",
                      tests=("assert f(1) == 2", "assert math.floor(K + 0.5) == 1")))
