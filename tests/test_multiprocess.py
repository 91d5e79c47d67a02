"""Two JAX processes give the results of one: training, loader shards, scoring, sampling.

`prm_jax.multihost_check` runs as two processes on this machine (4 simulated CPU devices each,
joined by `jax.distributed.initialize` on 127.0.0.1 with gloo CPU collectives) and, at the same
time, as one process with 8 devices; both use the same (data=2, fsdp=2, tensor=2) mesh.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from prm_jax import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 180
# How a Sampler that moves data between host and a cross-process mesh like a single-process
# one fails: np.asarray of a batch-sharded array whose shards live on other processes, or
# jax.device_put of a process-local device array onto the global mesh.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], devices: int, log_path: str) -> subprocess.Popen:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu", JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo")
    for name in (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES,
                 distributed.ENV_PROCESS_ID):
        env.pop(name, None)
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "prm_jax.multihost_check", *args], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def _tail(path: str, lines: int = 25) -> str:
    with open(path) as f:
        kept = [l for l in f if "Involuntary full rematerialization" not in l]
    return "".join(kept[-lines:])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(one-process result, [result of process 0, result of process 1], seconds)."""
    tmp = tmp_path_factory.mktemp("multiprocess")
    port = _free_port()
    jobs = {}
    for i in range(2):
        jobs[f"process {i}"] = (_start(
            [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}",
             f"--out={tmp}/two_{{process}}.json", f"--workdir={tmp}/two"], 4, f"{tmp}/two_{i}.log"),
            f"{tmp}/two_{i}.log", f"{tmp}/two_{i}.json")
    jobs["one process"] = (_start([f"--out={tmp}/one.json", f"--workdir={tmp}/one"], 8,
                                  f"{tmp}/one.log"), f"{tmp}/one.log", f"{tmp}/one.json")
    start = time.monotonic()
    try:
        for proc, _, _ in jobs.values():
            proc.wait(timeout=max(1.0, start + TIMEOUT_S - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc, _, _ in jobs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    seconds = time.monotonic() - start
    results = {}
    for name, (proc, log, out) in jobs.items():
        # Exit status 1 with results written means a failed check, judged by the tests below.
        if not os.path.exists(out):
            pytest.fail(f"{name} exited with {proc.returncode} after {seconds:.0f}s without "
                        f"results:\n{_tail(log)}")
        with open(out) as f:
            results[name] = json.load(f)
    return results["one process"], [results["process 0"], results["process 1"]], seconds


def _errors_apart_from_sampling(result: dict) -> list[str]:
    return [e for e in result["errors"] if not e.startswith("sampling failed")]


def test_processes_join_one_mesh(runs):
    one, two, seconds = runs
    assert seconds < TIMEOUT_S
    assert [(r["process_index"], r["process_count"]) for r in two] == [(0, 2), (1, 2)]
    assert all(r["device_count"] == 8 and r["local_device_count"] == 4 for r in two)
    assert one["process_count"] == 1 and one["device_count"] == 8
    assert all(r["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2} for r in [one, *two])
    for r in [one, *two]:
        assert _errors_apart_from_sampling(r) == []


def test_train_steps_equal_one_process(runs):
    one, two, _ = runs
    assert [r["train"]["rows"] for r in two] == [[0, 4], [4, 8]]
    assert one["train"]["rows"] == [0, 8]
    for r in two:
        np.testing.assert_allclose(r["train"]["losses"], one["train"]["losses"], rtol=1e-5)
        np.testing.assert_allclose(r["train"]["param_checksums"], one["train"]["param_checksums"],
                                   rtol=1e-5, atol=1e-5)
    assert one["train"]["losses"][-1] < one["train"]["losses"][0]


def test_training_loop_with_process_sharded_batches_equals_one_process(runs):
    one, two, _ = runs
    for r in two:
        assert r["loop"]["steps"] == 2 and r["loop"]["checkpoints"] == ["2"]
        np.testing.assert_allclose(r["loop"]["loss"], one["loop"]["loss"], rtol=1e-5)
        np.testing.assert_allclose(r["loop"]["param_checksums"], one["loop"]["param_checksums"],
                                   rtol=1e-5, atol=1e-5)


def test_prm_values_equal_one_process(runs):
    one, two, _ = runs
    for r in two:
        assert [len(v) for v in r["prm_values"]] == [2, 1, 2]
        for mine, ref in zip(r["prm_values"], one["prm_values"]):
            np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-6)


def test_loader_shards_are_disjoint_and_complete(runs):
    one, two, _ = runs
    first, second = (set(r["loader"]) for r in two)
    assert len(two[0]["loader"]) == len(two[1]["loader"]) == 6
    assert not first & second
    assert sorted(first | second) == sorted(one["loader"]) == list(range(12))


def test_greedy_samples_equal_one_process(runs):
    one, two, _ = runs
    assert "sampling" not in one["failures"], one["failures"]
    assert not any(r["failures"].get("sampling") for r in two), [r["failures"] for r in two]
    assert two[0]["samples"] == two[1]["samples"] == one["samples"]
    greedy, nucleus = one["samples"][:4], one["samples"][4:]
    assert all(len(s) == 8 for s in greedy)
    assert len(nucleus) == 8 and all(len(s) == 20 for s in nucleus)


def test_initialize_reads_the_environment(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed.jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.jax.distributed, "initialize",
                        lambda **kwargs: calls.append(kwargs))
    monkeypatch.setenv(distributed.ENV_COORDINATOR, "10.0.0.1:1234")
    monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "4")
    monkeypatch.setenv(distributed.ENV_PROCESS_ID, "3")
    distributed.initialize()
    distributed.initialize(process_id=1)
    assert calls == [dict(coordinator_address="10.0.0.1:1234", num_processes=4, process_id=3),
                     dict(coordinator_address="10.0.0.1:1234", num_processes=4, process_id=1)]
    for name in (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES,
                 distributed.ENV_PROCESS_ID):
        monkeypatch.delenv(name)
    distributed.initialize()  # everything left to JAX's cluster auto-detection
    assert calls[-1] == dict(coordinator_address=None, num_processes=None, process_id=None)
    monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "four")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES='four' is not an integer"):
        distributed.initialize()


def test_config_distributed_initializes_before_anything_else(monkeypatch, tmp_path):
    """`--config.distributed=True` joins the processes (JAX_* environment or auto-detection)
    before the run touches a device."""
    import importlib.util

    from prm_jax import run

    spec = importlib.util.spec_from_file_location("default", os.path.join(ROOT, "configs", "default.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.distributed = True

    class Joined(Exception):
        pass

    def initialize():
        raise Joined

    monkeypatch.setattr(run.distributed, "initialize", initialize)
    with pytest.raises(Joined):
        run.prepare(config, str(tmp_path))
