"""Every bound on what a user may ask, in one place, each with the reason for its size (issue 18:
"nothing a hostile input can break"). An input outside a bound is refused in one line before any
work, so no input can make fitplan read without end, build a list of a billion GPU counts, hand
CP-SAT an integer it cannot hold, or echo 100,000 characters back.

The bounds sit far above anything real (a published model, a cluster, a LLaMA-Factory file), so
they refuse only nonsense; each says which real figure it clears and by how much. Used by the CLI
option types (cli/options.py), the config.json reader (specs/hf_config.py), the YAML/JSON readers
(llamafactory/read_yaml.py), the GPU-set parser (specs/catalog.py), the instance and settings
types (problem/instance.py, problem/settings.py) and the Python API (fitplan/__init__.py)."""

from __future__ import annotations

# ---- text ----------------------------------------------------------------------------------------
# Linux PATH_MAX (4096, <linux/limits.h>): no path or name longer than that can name a file.
MAX_NAME_CHARS = 4096
# One path component (NAME_MAX, 255): a longer one is "File name too long" (OSError) from the OS.
MAX_PATH_COMPONENT_CHARS = 255
# `--gpus`: the longest catalog GPU name plus counts and a budget suffix is under 40 characters.
MAX_GPU_SET_CHARS = 200
# Input echoed in an error message, and a message as a whole: solver/errors.py (MAX_ECHO_CHARS,
# MAX_MESSAGE_CHARS), where every error is made one line.
# Digits of a count on the command line or in a file: 2^63 has 19 (Python refuses > 4300 anyway).
MAX_COUNT_DIGITS = 19

# ---- files ---------------------------------------------------------------------------------------
# A config.json is 1-50 KB (Llama-4's, with its vision and quantization blocks, is ~10 KB); a
# LLaMA-Factory YAML, DeepSpeed JSON or accelerate config is 1-5 KB. 1 MiB clears them 20x, and no
# reader reads more (so /dev/zero and /dev/urandom end at once).
MAX_INPUT_FILE_BYTES = 1 << 20
# Nesting of JSON / YAML: real configs nest 3 deep (text_config.rope_scaling.factor); 32 clears it
# and stays far below Python's recursion limit (1000), which a deeper parse would hit.
MAX_NESTING_DEPTH = 32
# YAML aliases (`*name`): LLaMA-Factory's files use none; a billion-laughs file uses thousands.
MAX_YAML_ALIASES = 64

# ---- the model (config.json numbers; ModelSpec field bounds) --------------------------------------
# Llama-3.1-405B has 126 layers, the deepest published decoder; 8x that.
MAX_LAYERS = 1024
# Nemotron-4-340B / PaLM-540B have hidden size 18,432; 2^17 is 7x that.
MAX_HIDDEN_SIZE = 1 << 17
# PaLM-540B's MLP is 73,728 wide (Llama-3.1-405B 53,248); 2^20 is 14x that.
MAX_INTERMEDIATE_SIZE = 1 << 20
# Gemma-3's vocabulary is 262,208, the largest published; 2^22 is 16x that.
MAX_VOCAB_SIZE = 1 << 22
# Llama-3.1-405B and DeepSeek-V3 have 128 query heads; 2^12 is 32x that.
MAX_HEADS = 1 << 12
# Head widths are 64-256 (MLA's q/k 192); 2^12 is 16x the widest.
MAX_HEAD_DIM = 1 << 12
# Kimi-K2 has 384 routed experts, the most published; 2^12 is 10x that.
MAX_EXPERTS = 1 << 12
# Llama-4 Scout's 10,485,760-token context is the longest published; 2^27 is 12x that.
MAX_POSITIONS = 1 << 27

# ---- the workload ----------------------------------------------------------------------------------
# Tokens per sample: 2^24 = 16,777,216 is above Llama-4 Scout's 10M-token context, the longest any
# published model trains on; the byte figures of a plan at that length stay below 2^63 (CP-SAT's
# integers, ortools cp_model INT_MAX), which 10^12 tokens do not.
MAX_SEQ_LEN = 1 << 24
# Samples per optimizer step: LAMB's BERT pre-training used 65,536 (You et al. 2019, the largest
# published batch in samples); 2^20 is 16x that, and its divisors are found in 1,024 steps.
MAX_GLOBAL_BATCH = 1 << 20
# Per-GPU micro batch: a GPU holds at most a few thousand short samples; 2^16 clears that.
MAX_MICRO_BATCH = 1 << 16
# Gradient accumulation: at most the global batch.
MAX_GRAD_ACCUM = MAX_GLOBAL_BATCH
# LoRA rank / projection rank: at most the hidden size (problem/rules.py refuses more).
MAX_RANK = MAX_HIDDEN_SIZE
# Tokens to train on (--tokens): 100x the 15.6T tokens of Llama-3.1's pre-training.
MAX_TRAIN_TOKENS = 10**16
# Samples in a data set (--dataset-samples) and epochs: far above any fine-tuning run.
MAX_DATASET_SAMPLES = 10**12
MAX_EPOCHS = 10_000.0

# ---- the hardware ----------------------------------------------------------------------------------
# GPUs in one plan: Llama-3.1-405B trained on 16,384 H100s (Meta, "The Llama 3 Herd of Models");
# 2^17 = 131,072 is 8x that, the size of today's largest single clusters.
MAX_TOTAL_GPUS = 1 << 17
# One card's memory in a VRAM budget (--gpus 1x24GiB): the largest card has 288 GB (B300, MI355X);
# 4 TiB is 14x that.
MAX_GPU_MEMORY_BYTES = 4 << 40
# Host RAM per node (--host-ram-gib): the largest single-image servers hold 48 TB (HPE Superdome
# Flex 280); 64 TiB clears it.
MAX_HOST_RAM_GIB = 64.0 * 1024
# Network out of a node (--inter-node-gbps): a DGX B200 has 8 x 400 Gb/s = 3,200; 10^6 clears it.
MAX_INTER_NODE_GBPS = 1e6

# ---- the search --------------------------------------------------------------------------------------
# CP-SAT time limit per solve (--time-limit): an hour (the default is 10 s, the server's cap 10 s).
MAX_TIME_LIMIT_S = 3600.0
# Plans returned (--top): each runner-up is one more solve; the server caps it at 20.
MAX_TOP_K = 100
# Worker processes of a sweep (--jobs): more than the cores of the largest single machine is waste.
MAX_JOBS = 512
# Entries of one sweep list (--models, --gpus, --seq-lens) and rows of a sweep: a row takes up to
# the time limit (10 s), so 4,096 rows is already hours of work; a bigger sweep is several calls.
MAX_SWEEP_LIST_ITEMS = 256
MAX_SWEEP_ROWS = 4096

# ---- the memory levers -----------------------------------------------------------------------------
# LoRA+ ratio: its paper uses 2-32 (Hayou et al. 2024); 10^4 clears it.
MAX_LORAPLUS_RATIO = 1e4
# MoE capacity factor: 1.0-2.0 in practice (Switch Transformer uses 1.0-1.25); above the expert
# count it means every expert takes every token, so 4,096 (MAX_EXPERTS) is the ceiling.
MAX_CAPACITY_FACTOR = float(MAX_EXPERTS)
# MoE auxiliary-loss coefficient: 0.001-0.01 in practice (Switch Transformer: 0.01).
MAX_AUX_LOSS_COEF = 1e3

