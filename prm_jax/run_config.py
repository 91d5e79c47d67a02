"""The launcher's ConfigDict as typed, validated, frozen dataclasses — built once, before any work.

`RunConfig.from_config_dict(config, workdir)` is where the `ml_collections.ConfigDict` stops:
every value of every section is checked (type, range, known names) and every path is made
absolute, so a bad value fails before anything is written and a relative `--workdir` or
`--config.init_from` works from any current directory. Each stage reads only its own section
plus the shared top-level fields.

Errors are `ConfigValueError` with one line naming the key, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar, Mapping

import ml_collections

from prm_jax import config_utils

# Default sequence positions of logits per chunk in the SFT and RL log-probs; equal to
# `prm_jax.models.logprobs.LOGITS_CHUNK` (not imported: this module stays free of JAX).
LOGITS_CHUNK = 128

# Losses and label selections are validated by name here; the training loop owns the functions.
PRM_LOSSES = ("prm_mse", "prm_mse_pair", "prm_bce")
PRM_SELECTIONS = ("full", "revised_only")
EVAL_DATASETS = ("humaneval", "mbpp", "io", "jsonl", "synthetic")
# Keys whose change does not change any result: a resumed run may differ in these. The `rl`
# section is checked per named RL run instead (workdir/<rl.name>/config.json), so several arms
# share one workdir.
NON_RESULT_KEYS = ("workdir", "stages", "distributed", "mesh.", "sft.checkpoint_every",
                   "sft.logits_chunk", "model.remat",
                   "prm.checkpoint_every", "rl.",
                   "rl_baseline.checkpoint_every", "rl_baseline.logits_chunk")


class ConfigValueError(config_utils.ConfigKeyError):
    """A config value is out of range or inconsistent with another."""


def _need(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigValueError(f"config.{key}={value!r}: expected {expected}")


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _positive(section, prefix: str, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        _need(value > 0, _key(prefix, name), value, "a positive number")


def _non_negative(section, prefix: str, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        _need(value >= 0, _key(prefix, name), value, "a number >= 0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig:
    """The synthetic long-horizon suite (`prm_jax.data.synthetic`)."""

    seed: int = 0
    # SFT training problems and held-out-composition test problems.
    num_train: int = 3000
    num_test: int = 48
    # Horizon H = number of solution lines, drawn uniformly in [min_horizon, max_horizon].
    min_horizon: int = 1
    max_horizon: int = 4
    # Probability that a reference step line is preceded by a comment line (neutral in labels).
    comment_fraction: float = 0.0

    def __post_init__(self):
        _positive(self, "data", "num_train", "num_test", "min_horizon")
        _need(0 <= self.comment_fraction <= 1, "data.comment_fraction", self.comment_fraction,
              "a number in [0, 1]")
        _need(self.max_horizon >= self.min_horizon, "data.max_horizon", self.max_horizon,
              f"an integer >= data.min_horizon={self.min_horizon}")
        _need(self.max_horizon <= 16, "data.max_horizon", self.max_horizon, "at most 16")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSection:
    """Fields shared by the supervised loops (SFT and PRM training)."""

    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    checkpoint_every: int

    def _check(self, prefix: str) -> None:
        _positive(self, prefix, "steps", "batch_size", "learning_rate", "checkpoint_every")
        _non_negative(self, prefix, "warmup_steps")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SFTConfig(TrainSection):
    # Tokens per example (prompt + reference solution); longer examples are skipped.
    seq_len: int = 256
    # Steps whose policy is also exported (workdir/policy_step<N>) for sampling.
    snapshot_steps: tuple[int, ...] = ()
    # Sequence positions of logits materialised at a time in the loss (`prm_jax.models.logprobs`;
    # memory only, not results); 0 = the full [B, T, V] logits.
    logits_chunk: int = LOGITS_CHUNK

    def __post_init__(self):
        self._check("sft")
        _non_negative(self, "sft", "logits_chunk")
        _need(self.seq_len >= 16, "sft.seq_len", self.seq_len, "an integer >= 16")
        for step in self.snapshot_steps:
            _need(isinstance(step, int) and 0 < step < self.steps, "sft.snapshot_steps",
                  self.snapshot_steps, f"integers in [1, sft.steps={self.steps})")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SampleConfig:
    num_problems: int = 96
    # Responses per problem from the final SFT policy, from each SFT snapshot and from each
    # snapshot of the outcome-only RL run (`rl_baseline.snapshots`, the paper's source).
    n: int = 4
    snapshot_n: int = 0
    rl_baseline_n: int = 0
    temperature: float = 0.8
    max_new_tokens: int = 160

    def __post_init__(self):
        _positive(self, "sample", "num_problems", "max_new_tokens")
        _non_negative(self, "sample", "n", "snapshot_n", "rl_baseline_n", "temperature")
        _need(self.n + self.snapshot_n + self.rl_baseline_n > 0, "sample.n/snapshot_n/rl_baseline_n",
              (self.n, self.snapshot_n, self.rl_baseline_n), "at least one response per problem")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LabelStageConfig:
    # Completions per probed prefix (K) and how many are drawn per wave (early exit between waves).
    k: int = 4
    wave: int = 2
    temperature: float = 0.8
    # Responses labelled in lock-step per batch (one sampler call per wave).
    batch_size: int = 64
    # Failing responses (drawn at random across tasks) also labelled by per-line Monte Carlo.
    mc_responses: int = 24
    # Correct responses mutated for PRLCoder-style labels, and mutants per line.
    mutation_responses: int = 32
    mutation_per_line: int = 1
    # References of this many extra training tasks mutated line by line (AST operators and one
    # policy rewrite per line, labelled by execution): cheap, exactly localised labels.
    reference_tasks: int = 0
    # Policy rewrites sampled per reference line (distinct ones kept) and their temperature.
    teacher_n: int = 1
    teacher_temperature: float = 0.8
    # Label accuracy of every method against the synthetic suite's ground truth (and the
    # labels_ground_truth.jsonl file the "oracle" upper-bound arm trains on).
    ground_truth: bool = True

    def __post_init__(self):
        _positive(self, "label", "k", "wave", "batch_size", "mutation_per_line")
        _non_negative(self, "label", "temperature", "mc_responses", "mutation_responses",
                      "reference_tasks", "teacher_n", "teacher_temperature")
        _need(self.wave <= self.k, "label.wave", self.wave, f"an integer <= label.k={self.k}")


# Label files the PRM can train on ("oracle" = ground truth: an upper-bound arm only).
PRM_LABEL_SOURCES = ("binary_search", "monte_carlo", "mutation", "reference_mutation", "oracle")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PRMConfig(TrainSection):
    loss: str = "prm_mse"
    # Selection of binary-search rows ("full" | "revised_only"); other sources are used whole.
    selection: str = "full"
    # Label files trained on (see PRM_LABEL_SOURCES).
    label_sources: tuple[str, ...] = ("binary_search",)
    # Every token of a line regresses to its label (prm.dense_targets), not only its reward token.
    line_token_targets: bool = False
    # Weight of the counterfactual pair term when loss="prm_mse_pair" (train.losses).
    pair_weight: float = 1.0
    # > 0: the PRM adds a likelihood term a·max(m_t, −c)/c with c = likelihood_clip (nats), m_t
    # the least likely response token so far under its own LM head (`ScalarHeadModel`).
    likelihood_clip: float = 0.0
    # Fraction of labelled tasks held out from PRM training (0 = none; the PRM is evaluated on
    # held-out compositions by prm_eval either way).
    heldout_fraction: float = 0.0
    # prm_eval: test-split tasks of the counterfactual probe, and policy responses per task.
    probe_problems: int = 96
    eval_n: int = 2

    def __post_init__(self):
        self._check("prm")
        _need(self.loss in PRM_LOSSES, "prm.loss", self.loss, f"one of {PRM_LOSSES}")
        _need(not (self.loss == "prm_mse_pair" and self.line_token_targets), "prm.loss", self.loss,
              "prm_mse or prm_bce with prm.line_token_targets (pairs compare line-end scores)")
        _need(self.selection in PRM_SELECTIONS, "prm.selection", self.selection,
              f"one of {PRM_SELECTIONS}")
        _need(0 <= self.heldout_fraction < 1, "prm.heldout_fraction", self.heldout_fraction,
              "a fraction in [0, 1)")
        _need(bool(self.label_sources) and all(x in PRM_LABEL_SOURCES for x in self.label_sources),
              "prm.label_sources", self.label_sources, f"a non-empty subset of {PRM_LABEL_SOURCES}")
        _positive(self, "prm", "probe_problems", "eval_n")
        _non_negative(self, "prm", "pair_weight", "likelihood_clip")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalConfig:
    dataset: str = "synthetic"
    # A problem file, or for synthetic a spec such as "split=test,num_problems=32".
    problems: str = ""
    max_problems: int = 0  # 0 = all
    n: int = 4
    ks: tuple[int, ...] = (1,)
    temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop_strings: tuple[str, ...] = ()
    timeout_s: float = 5.0

    def __post_init__(self):
        _need(self.dataset in EVAL_DATASETS, "eval.dataset", self.dataset, f"one of {EVAL_DATASETS}")
        _positive(self, "eval", "n", "max_new_tokens", "timeout_s")
        _non_negative(self, "eval", "max_problems", "temperature")
        _need(0 < self.top_p <= 1, "eval.top_p", self.top_p, "a number in (0, 1]")
        _need(bool(self.ks) and all(isinstance(k, int) and 0 < k <= self.n for k in self.ks),
              "eval.ks", self.ks, f"positive integers <= eval.n={self.n}")
        _need(all(isinstance(s, str) and s for s in self.stop_strings), "eval.stop_strings",
              self.stop_strings, "non-empty strings")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RLConfig:
    """The RL stage (`prm_jax.stages.rl`): PPO/GRPO/RLOO from the SFT policy, optionally with the
    PRM as dense line reward and as the critic's initialisation (PSGPO)."""

    # Name of the run: its folder (workdir/<name>) and exported policy (workdir/policy_<name>).
    name: str = "rl"
    iterations: int = 20
    # Prompts per iteration and samples per prompt (a group, for GRPO/RLOO baselines).
    prompts: int = 16
    samples: int = 4
    # Training problems drawn from the synthetic suite's train split.
    num_problems: int = 512
    temperature: float = 1.0
    max_new_tokens: int = 96
    # "gae" (PPO with a critic), "grpo" or "rloo" (critic-free; process rewards PRIME-style).
    estimator: str = "gae"
    # Dense PRM line rewards (λ/T)·PRM(prefix) (rewards.py) and their options.
    dense: bool = False
    lambda_fail: float = 0.25
    lambda_pass: float = 0.025
    dense_form: str = "psgpo"
    normalize_by: str = "code_lines"
    truncated: str = "score"
    # Responses with no text: "mask" (left out, counted) or "score" (a failure; see rl.rewards).
    empty: str = "mask"
    # Critic start: "prm" (exact copy), "prm_affine" (a·PRM + c), "policy" (fresh head).
    critic_init: str = "policy"
    critic_affine: tuple[float, float] = (1.0, 0.0)
    # Iterations that update only the critic (rollouts still drawn).
    critic_warmup: int = 0
    # KL to the reference: β, in the reward (k1, PPO) or in the loss (k3, GRPO/RLOO).
    kl_coef: float = 0.01
    kl_mode: str = "reward"
    gamma: float = 1.0
    lam: float = 1.0
    whiten: bool = True
    clip: float = 0.2
    value_clip: float = 0.5
    entropy_coef: float = 0.0
    policy_lr: float = 2e-4
    critic_lr: float = 1e-3
    epochs: int = 1
    minibatches: int = 2
    micro_batches: int = 1
    # Sequence positions of logits materialised at a time for the policy's and the reference's
    # log-probs (`prm_jax.models.logprobs`; memory only); 0 = all response positions at once.
    logits_chunk: int = LOGITS_CHUNK
    # Held-out greedy pass@1 every eval_every iterations (0 = only at the end).
    eval_every: int = 5
    checkpoint_every: int = 5
    # Policies exported at this many evenly spaced iterations (workdir/policy_<name>_it<N>).
    snapshots: int = 0
    # RL seed (prompt order, sampling, update shuffles, a fresh critic head); 0 = the run's
    # `seed` alone. Lets several seeds of an arm share one workdir's SFT policy and PRM.
    seed: int = 0

    SECTION: ClassVar[str] = "rl"

    def __post_init__(self):
        from prm_jax.rl.algos import ESTIMATORS
        from prm_jax.rl.critic_init import CRITIC_INITS
        from prm_jax.rl.rewards import DENSE_FORMS

        s = self.SECTION
        _need(bool(self.name) and self.name.replace("_", "").isalnum(), f"{s}.name", self.name,
              "a name of letters, digits and _")
        _positive(self, s, "iterations", "prompts", "samples", "num_problems", "max_new_tokens",
                  "policy_lr", "critic_lr", "epochs", "minibatches", "micro_batches",
                  "checkpoint_every", "temperature")
        _non_negative(self, s, "lambda_fail", "lambda_pass", "critic_warmup", "kl_coef",
                      "entropy_coef", "eval_every", "clip", "value_clip", "seed", "logits_chunk")
        _need(self.estimator in ESTIMATORS, f"{s}.estimator", self.estimator, f"one of {sorted(ESTIMATORS)}")
        _need(self.dense_form in DENSE_FORMS, f"{s}.dense_form", self.dense_form, f"one of {DENSE_FORMS}")
        _need(self.normalize_by in ("code_lines", "all_lines"), f"{s}.normalize_by", self.normalize_by,
              "code_lines or all_lines")
        _need(self.truncated in ("score", "mask"), f"{s}.truncated", self.truncated, "score or mask")
        _need(self.empty in ("score", "mask"), f"{s}.empty", self.empty, "score or mask")
        _need(self.critic_init in CRITIC_INITS, f"{s}.critic_init", self.critic_init,
              f"one of {CRITIC_INITS}")
        _need(self.kl_mode in ("reward", "loss"), f"{s}.kl_mode", self.kl_mode, "reward or loss")
        _need(0 < self.gamma <= 1 and 0 <= self.lam <= 1, f"{s}.gamma/lam", (self.gamma, self.lam),
              "gamma in (0, 1] and lam in [0, 1]")
        _need(self.prompts <= self.num_problems, f"{s}.prompts", self.prompts,
              f"at most {s}.num_problems={self.num_problems}")
        _need(len(self.critic_affine) == 2, f"{s}.critic_affine", self.critic_affine, "a pair (a, c)")
        _need(self.critic_warmup < self.iterations, f"{s}.critic_warmup", self.critic_warmup,
              f"fewer than {s}.iterations={self.iterations}")
        _need(0 <= self.snapshots <= self.iterations, f"{s}.snapshots", self.snapshots,
              f"between 0 and {s}.iterations={self.iterations}")

    @property
    def snapshot_iterations(self) -> tuple[int, ...]:
        """`snapshots` evenly spaced iterations, the last one included (the paper samples PRM
        training responses from 4 evenly spaced checkpoints of the outcome-only run)."""
        return tuple(round(k * self.iterations / self.snapshots)
                     for k in range(1, self.snapshots + 1))

    @property
    def uses_critic(self) -> bool:
        return self.estimator == "gae"

    @property
    def uses_prm(self) -> bool:
        return self.dense or (self.uses_critic and self.critic_init.startswith("prm"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class RLBaselineConfig(RLConfig):
    """Stage `rl_baseline`: the paper's outcome-only PPO run (unit-test reward, critic from the
    policy) whose evenly spaced checkpoints answer the labelling problems (`sample`)."""

    name: str = "rl_baseline"
    snapshots: int = 4

    SECTION: ClassVar[str] = "rl_baseline"

    def __post_init__(self):
        super().__post_init__()
        _need(not self.uses_prm, "rl_baseline.dense/critic_init", (self.dense, self.critic_init),
              "no PRM (the PRM is trained on this run's responses)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelCheckConfig:
    batch_size: int = 8
    seq_len: int = 128
    train_steps: int = 20
    learning_rate: float = 3e-3

    def __post_init__(self):
        _positive(self, "", "batch_size", "seq_len", "learning_rate")
        _non_negative(self, "", "train_steps")


# Section name in the ConfigDict -> dataclass; None when the config has no such section.
SECTIONS = {"data": DataConfig, "sft": SFTConfig, "sample": SampleConfig,
            "label": LabelStageConfig, "prm": PRMConfig, "eval": EvalConfig, "rl": RLConfig,
            "rl_baseline": RLBaselineConfig}
# Stages that are named RL runs; each reads the config section of the same name.
RL_STAGES = ("rl_baseline", "rl")
# Stage -> the sections it reads.
STAGE_SECTIONS = {"sft": ("data", "sft", "sample"), "sample": ("data", "sft", "sample"),
                  "label": ("data", "sample", "label"), "prm_train": ("sft", "prm"),
                  "prm_eval": ("prm",), "evaluate": ("eval",), "model_check": (),
                  "rl": ("data", "sample", "rl"), "rl_baseline": ("data", "sample", "rl_baseline")}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything a run needs, validated; paths are absolute."""

    workdir: str
    stages: tuple[str, ...]
    seed: int = 0
    # A tokenizer directory, "builtin", or "" = the init_from checkpoint's tokenizer (else builtin).
    tokenizer: str = ""
    # A HF checkpoint directory to start from ("" = random init from `model`).
    init_from: str = ""
    distributed: bool = False
    # config.model as given (vocab_size 0 = the tokenizer's size); typed by models.factory.
    model: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    mesh: Mapping[str, int] = dataclasses.field(default_factory=dict)
    data: DataConfig | None = None
    sft: SFTConfig | None = None
    sample: SampleConfig | None = None
    label: LabelStageConfig | None = None
    prm: PRMConfig | None = None
    eval: EvalConfig | None = None
    rl: RLConfig | None = None
    rl_baseline: RLBaselineConfig | None = None
    model_check: ModelCheckConfig = dataclasses.field(default_factory=ModelCheckConfig)

    @property
    def tokenizer_dir(self) -> str:
        """The tokenizer actually used: explicit, else init_from's, else the built-in one."""
        return self.tokenizer or self.init_from or "builtin"

    @classmethod
    def from_config_dict(cls, config: ml_collections.ConfigDict, workdir: str) -> "RunConfig":
        values = config.to_dict()
        top = {"workdir": _absolute_workdir(workdir)}
        for name in ("stages", "seed", "tokenizer", "init_from", "distributed", "model", "mesh"):
            if name in values:
                top[name] = values.pop(name)
        top["stages"] = tuple(top.get("stages", ()))
        _need(bool(top["stages"]), "stages", top["stages"], "at least one stage")
        for name, section in SECTIONS.items():
            if name in values:
                top[name] = config_utils.to_dataclass(section, _tuples(values.pop(name)),
                                                      where=f"config.{name}")
        check = {k: values.pop(k) for k in ("batch_size", "seq_len", "train_steps", "learning_rate")
                 if k in values}
        top["model_check"] = config_utils.to_dataclass(ModelCheckConfig, check, where="config")
        if values:
            raise config_utils.ConfigKeyError(f"config: unknown keys {sorted(values)}")
        for name in ("tokenizer", "init_from"):
            path = top.get(name, "")
            if path and path != "builtin":
                top[name] = os.path.abspath(os.path.expanduser(path))
                if not os.path.isdir(top[name]):
                    raise FileNotFoundError(f"config.{name}={path!r}: directory {top[name]} does "
                                            "not exist")
        run = config_utils.to_dataclass(cls, top, where="config")
        run._check_stages()
        return run

    def _check_stages(self) -> None:
        from prm_jax.stages import STAGES

        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise config_utils.ConfigKeyError(f"config.stages has unknown stages {unknown}; "
                                              f"available: {sorted(STAGES)}")
        for stage in self.stages:
            for section in STAGE_SECTIONS.get(stage, ()):
                if getattr(self, section) is None:
                    raise config_utils.ConfigKeyError(
                        f"stage {stage!r} needs the config section config.{section}, which this "
                        "config does not define")
        if self.rl is not None and self.rl_baseline is not None and self.rl.name == self.rl_baseline.name:
            raise config_utils.ConfigKeyError(
                f"config.rl.name and config.rl_baseline.name are both {self.rl.name!r}: two RL runs "
                "would share a folder")
        if ("sample" in self.stages and self.sample is not None and self.sample.rl_baseline_n
                and (self.rl_baseline is None or not self.rl_baseline.snapshots)):
            raise config_utils.ConfigKeyError(
                f"config.sample.rl_baseline_n={self.sample.rl_baseline_n} samples from the "
                "rl_baseline run's snapshots, but config.rl_baseline is missing or has snapshots=0")
        if self.eval is not None and self.eval.dataset != "synthetic" and self.eval.problems:
            path = os.path.abspath(os.path.expanduser(self.eval.problems))
            if not os.path.isfile(path):
                raise FileNotFoundError(f"config.eval.problems={self.eval.problems!r}: file {path} "
                                        "does not exist")
            object.__setattr__(self, "eval", dataclasses.replace(self.eval, problems=path))

    def to_json_dict(self) -> dict:
        return dataclasses.asdict(self)


def _absolute_workdir(workdir: str) -> str:
    _need(bool(workdir), "workdir", workdir, "a directory path")
    path = os.path.abspath(os.path.expanduser(workdir))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigValueError(f"--workdir={workdir!r}: {path} exists and is not a directory")
    return path


def _tuples(values: Mapping[str, Any]) -> dict:
    """Lists (from ConfigDict or JSON) become tuples, so the frozen sections are hashable."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def result_changing_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Keys set in both configs whose values differ and that change results (not NON_RESULT_KEYS).

    A section absent (None) from one of them is not a difference: a later run may add stages.
    """
    a, b = flatten(old), flatten(new)
    diff = []
    for key in sorted(set(a) & set(b)):
        if key.startswith(NON_RESULT_KEYS) or a[key] is None or b[key] is None:
            continue
        if a[key] != b[key]:
            diff.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return diff


def config_dict_from_json(values: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """The launcher ConfigDict of a run's `config.json` (the inverse of `from_config_dict` +
    `to_json_dict`): model_check's keys return to the top level, the workdir is dropped, lists
    become tuples and absent sections (null) are left out."""
    values = dict(values)
    values.pop("workdir", None)
    values.update(values.pop("model_check", None) or {})

    def convert(v):
        if isinstance(v, Mapping):
            return {k: convert(x) for k, x in v.items()}
        return tuple(convert(x) for x in v) if isinstance(v, list) else v

    return ml_collections.ConfigDict({k: convert(v) for k, v in values.items() if v is not None})


def config_dict_from_workdir(workdir: str) -> ml_collections.ConfigDict:
    """The ConfigDict of the run in `workdir` (its config.json), for launching more stages or
    RL arms on it with the same result-changing values."""
    import json

    path = os.path.join(os.path.abspath(os.path.expanduser(workdir)), "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: {workdir!r} holds no run (run the "
                                "pipeline there first)")
    with open(path) as f:
        return config_dict_from_json(json.load(f))
