"""How another framework's training step differs from what fitplan plans (LLaMA-Factory 0.9.5 +
transformers 5), named cause by cause, so that published measurements taken with it can be
predicted by the same memory and speed model instead of by a fudge factor.

A profile changes three things, each for a stated reason:
- the `TrainConfig` fitplan evaluates (e.g. pure bf16 parameters and optimizer states);
- extra tensor terms on top of `memory_peak.step_moments` (e.g. a foreach optimizer temporary);
- the sample lengths the run really saw (a dataset's length distribution under the framework's
  over-length rule), which sets the mean tokens per micro-step for speed and the
  variable-length allocator reserve for memory (solver/overhead.py).

The one profile here reproduces the ms-swift benchmark of January 2024
(shared/reference/measured-calibration.csv; docs/accuracy.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from ..memory.params import trainable_params
from ..memory.peak import step_moments
from ..memory.states import optimizer_state_bytes_each
from ..memory.terms import ZERO, Moment, Term, fixed
from ..problem.config import TrainConfig
from ..problem.knobs import Method, Optimizer, Precision
from ..specs.model import ModelSpec

_STD_NORMAL = NormalDist()


@dataclass(frozen=True)
class LengthDistribution:
    """Token lengths of a dataset, taken as log-normal with the published mean and standard
    deviation, bounded by the published minimum. `over_length` is what the framework does with
    a sample longer than max_length: "delete" drops it, "truncate" cuts it to max_length."""

    mean_tokens: float
    sd_tokens: float
    min_tokens: float
    over_length: str  # "delete" | "truncate"

    @property
    def _sigma(self) -> float:
        return math.sqrt(math.log(1 + (self.sd_tokens / self.mean_tokens) ** 2))

    @property
    def _mu(self) -> float:
        return math.log(self.mean_tokens) - self._sigma ** 2 / 2

    def _z(self, tokens: float) -> float:
        return (math.log(tokens) - self._mu) / self._sigma

    def kept_mean_tokens(self, max_length: int) -> float:
        """Mean length of the samples a run with this max_length trains on."""
        lo, hi, s = self._z(self.min_tokens), self._z(max_length), self._sigma
        kept = _STD_NORMAL.cdf(hi) - _STD_NORMAL.cdf(lo)
        below = math.exp(self._mu + s * s / 2) * (_STD_NORMAL.cdf(hi - s) - _STD_NORMAL.cdf(lo - s))
        if self.over_length == "delete":
            return below / kept
        over = 1 - _STD_NORMAL.cdf(hi)
        return (below + over * max_length) / (kept + over)

    def kept_quantile_tokens(self, max_length: int, q: float) -> float:
        """The q-quantile of the kept lengths (delete rule: the distribution cut at max_length)."""
        lo, hi = _STD_NORMAL.cdf(self._z(self.min_tokens)), _STD_NORMAL.cdf(self._z(max_length))
        if self.over_length != "delete":
            hi = 1.0
        z = _STD_NORMAL.inv_cdf(min(lo + q * (hi - lo), 1 - 1e-12))
        return min(math.exp(self._mu + self._sigma * z), max_length)

    def draw_kept_tokens(self, rng, max_length: int) -> int | None:
        """One sample's length as the run sees it (`rng`: a random.Random), None if deleted."""
        tokens = max(rng.lognormvariate(self._mu, self._sigma), self.min_tokens)
        if tokens > max_length:
            if self.over_length == "delete":
                return None
            tokens = max_length
        return int(tokens)

    def padded_tokens_per_micro_step(self, max_length: int, micro_batch: int) -> float:
        """Tokens a micro-step of `micro_batch` samples padded to its longest sample holds: the
        expected maximum of b draws is near the b/(b+1) quantile."""
        if micro_batch == 1:
            return self.kept_mean_tokens(max_length)
        return micro_batch * self.kept_quantile_tokens(max_length, micro_batch / (micro_batch + 1))


@dataclass(frozen=True)
class FrameworkProfile:
    name: str
    source: str
    full_ft_pure_bf16: bool  # full FT keeps bf16 params and bf16 AdamW states (no fp32 master)
    foreach_adamw: bool  # torch.optim.AdamW's default foreach path: one state-sized temporary
    lengths: LengthDistribution | None

    def config(self, config: TrainConfig) -> TrainConfig:
        """The fitplan configuration whose dtypes match the framework's."""
        if self.full_ft_pure_bf16 and config.method == Method.full:
            return config.model_copy(update={"precision": Precision.pure_bf16})
        return config

    def moments(self, model: ModelSpec, config: TrainConfig) -> list[Moment]:
        """fitplan's peak candidates with the framework's extra tensors added."""
        moments = step_moments(model, config)
        if not (self.foreach_adamw and config.optim == Optimizer.adamw):
            return moments
        # torch 2.1 `_multi_tensor_adamw`: exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs), one
        # tensor like the second moment per parameter, alive during the update.
        temp = fixed(trainable_params(model, config) * optimizer_state_bytes_each(model, config) / 2)
        result = []
        for moment in moments:
            if moment.name == "optimizer":
                temporaries = moment.terms.get(Term.optimizer_temporaries, ZERO) + temp
                moment = Moment(moment.name, moment.phase, {**moment.terms, Term.optimizer_temporaries: temporaries})
            result.append(moment)
        return result

    def mean_length_fraction(self, config: TrainConfig) -> float:
        """Mean tokens per micro-step / (micro_batch x seq_len): 1 when lengths are unknown."""
        if self.lengths is None:
            return 1.0
        tokens = self.lengths.padded_tokens_per_micro_step(config.seq_len, config.micro_batch)
        return tokens / (config.micro_batch * config.seq_len)


# ms-swift 1.5 (January 2024) as its Benchmark.md ran it (modelscope/ms-swift @4312aeb):
# - SftArguments: dtype AUTO -> bf16 model weights, HF `bf16=True` (autocast); full FT therefore
#   trains bf16 parameters with torch AdamW states in bf16 (`optim='adamw_torch'`, whose torch
#   2.1 default on CUDA is the foreach implementation); `truncation_strategy='delete'` drops
#   samples longer than max_length (swift/llm/utils/template.py: `return None`), it does not
#   truncate them.
# - Benchmark.md: dataset cls-fudan-news-zh, Qwen tokenizer lengths 3234.4 +- 2547.5, min 91,
#   max 19548.
MS_SWIFT_2024_01 = FrameworkProfile(
    name="ms-swift-2024-01",
    source="modelscope/ms-swift@4312aeb: swift/llm/utils/argument.py, swift/llm/utils/template.py, "
           "docs/source/LLM/Benchmark.md, scripts/benchmark/test_memory_time/run_single.py",
    full_ft_pure_bf16=True,
    foreach_adamw=True,
    lengths=LengthDistribution(mean_tokens=3234.4, sd_tokens=2547.5, min_tokens=91, over_length="delete"),
)
