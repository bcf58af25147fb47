"""Constants of the speed model (speed/step_time.py), each with where it comes from.

Data only: benchmarks/calibration*.py may tune these values against measurements; the formulas
live in speed/step_time.py. Rates are in FLOP/s or bytes/s, times in seconds.
"""

# ---- compute -----------------------------------------------------------------------------------

# Fraction of the datasheet dense matmul rate a large Hugging Face training step reaches
# (model FLOPs utilisation, MFU). Calibrated on the ms-swift Qwen-7B-Chat A100 rows at seq 512
# of shared/reference/measured-calibration.csv (the only rows whose samples are all full length:
# the dataset averages 3,234 tokens): full fine-tuning with checkpointing runs 5.96 samples/s =
# 3,050 tokens/s x 8 x 7.7e9 FLOP/token (6N + 2N recompute) = 188 TFLOP/s = 0.60 of 312; LoRA
# 7.43 samples/s x 512 x 6 x 7.7e9 = 176 TFLOP/s = 0.56 before launch overhead. Large optimised
# systems report 0.46-0.58 (Chowdhery et al. 2022, PaLM, table 3).
# REFIT (calibration helper, benchmarks/calibration.py, docs/accuracy.md): ms-swift of that time
# DELETED samples longer than max_length (truncation_strategy='delete'), so the seq-512 rows
# trained on samples of 413 tokens on average, not 512, and every row's mean length is below its
# max_length (solver/calibration/framework_profiles.py). Fitted jointly with LAYER_PASS_OVERHEAD_S on all 37
# single-GPU rows (grid, minimising the worst |log(predicted/measured)|): 0.80 / 0.9 ms gives
# 0.71-1.36. 0.80 is an EFFECTIVE value, above the true MFU (~0.5-0.6): the formula adds host
# overhead and GPU time, while the GPU really overlaps them (time ~ max of the two), so the fit
# raises the rate to pay for the added overhead. Kept for ranking; see docs/accuracy.md.
MATMUL_EFFICIENCY_MAX = 0.80

# Host-side cost of launching one decoder layer's kernels in one pass (forward, recompute or
# backward), seconds: eager PyTorch spends ~10 us of CPU per operator (Horace He, "Making Deep
# Learning Go Brrrr From First Principles", 2022, overhead section) and a decoder layer runs
# ~15-30 operators per pass that the GPU cannot hide when they are short. Fitted with the
# efficiency above (docs/accuracy.md, benchmarks/calibration.py). This is what makes efficiency grow with tokens per micro-step: the cost is per micro-step, not per token.
LAYER_PASS_OVERHEAD_S = 0.9e-3  # refit with MATMUL_EFFICIENCY_MAX above (was 0.15e-3)

# Causal attention kernels that skip masked blocks (SDPA flash / memory-efficient, FA2) do half
# of the s x s score and value products (FlashAttention-2 paper, Dao 2023, section 4: FLOPs for
# causal masking are half of the non-causal count). Eager attention computes the full square.
CAUSAL_FLOP_FRACTION_FUSED = 0.5
CAUSAL_FLOP_FRACTION_EAGER = 1.0

# ---- memory-bound work -------------------------------------------------------------------------

# Fraction of the datasheet DRAM bandwidth that elementwise kernels (dequantisation, optimizer
# updates) reach. STREAM-like copy kernels reach 0.8-0.9 of peak on NVIDIA data-centre GPUs
# (NVIDIA "CUDA C++ Best Practices Guide", effective bandwidth section, uses ~0.8 as a typical
# figure for well-coalesced kernels).
DRAM_EFFICIENCY = 0.8

# bitsandbytes dequantises each quantised weight to 16 bits before every matmul that uses it
# (bitsandbytes `MatMul4Bit`: `dequantize_4bit(B)` then `torch.nn.functional.linear`), once per
# pass (forward, backward, recompute), whatever the micro batch. A purely memory-bound kernel
# would move bits/8 + 2 bytes per weight and the matmul read 2 more; the measured cost is several
# times that. Calibrated on measured-calibration.csv, Qwen-7B-Chat on an A100 at seq 2048, micro
# batch 1, checkpointing: LoRA 4.31 samples/s, QLoRA 4-bit 2.05-2.41, 8-bit 1.97. The extra
# 0.18-0.26 s (4-bit) and 0.28 s (8-bit) per micro-step over 3 passes x 6.5e9 linear weights is
# what 16 and 23 bytes per weight cost at the A100's 0.8 x 2,039 GB/s. Expressed in bytes of DRAM
# traffic so that it scales with each GPU's bandwidth.
DEQUANT_EFFECTIVE_BYTES_PER_WEIGHT = {4: 16.0, 8: 23.0}

# Bytes of elementwise traffic per element of a LoRA-adapted module's input, per pass. peft's
# forward casts the input to the adapter dtype (write 4), autocast casts it back for the matmul
# (read 4, write 2), and dropout/scaling/add and their backward move it again; the measured cost
# is what this constant expresses. FITTED on measured-calibration.csv, Qwen-7B-Chat LoRA r8 on an
# A100 at max_length 2048 with checkpointing: `c_attn` only 4.31 samples/s vs all five linears
# 3.22 samples/s (rows 31 and 36). The extra 0.078 s per sample over the four added modules'
# inputs (4096 + 4096 + 4096 + 11008 per layer x 32 layers x 3 passes x ~1,300 kept tokens per
# sample, solver/calibration/framework_profiles.py) at 0.8 x 2,039 GB/s is about 40 bytes per element on its
# own; with MATMUL_EFFICIENCY_MAX and LAYER_PASS_OVERHEAD_S fitted before this term existed, 18
# keeps every calibration row within 0.70-1.4 of measured and orders all-linear LoRA below
# attention-only LoRA (rank/targets Spearman 0.60 -> 0.80; the rest of that sweep is r2 vs r8 vs
# r64 within 3 %, where the published r2 is slower than r8: noise).
LORA_ELEMENTWISE_BYTES_PER_INPUT_ELEMENT = 18.0

# Optimizer step on the GPU: AdamW reads param, grad, m, v and writes param, m, v, all fp32:
# 7 x 4 = 28 bytes per trainable parameter (torch fused AdamW, one pass). 8-bit AdamW moves the
# two states as 1 byte each: 4 + 4 + 1 + 1 + 4 + 1 + 1 = 16 bytes.
ADAMW_BYTES_PER_PARAM = 28
ADAMW_8BIT_BYTES_PER_PARAM = 16
SGD_BYTES_PER_PARAM = 12  # read param, grad; write param
ADAFACTOR_BYTES_PER_PARAM = 16  # read param, grad; write param; factored states are negligible

# DeepSpeed CPUAdam on the host: ZeRO-Offload (Ren et al., USENIX ATC 2021), table 3, measures
# CPU-Adam at about 0.22 s for a 1-billion-parameter update on a DGX-2 host; ~4.5e9 params/s per
# node, shared by the node's GPUs (each updates its own partition).
CPU_ADAM_PARAMS_PER_S_PER_NODE = 4.5e9

# FSDP's CPU offload steps torch's own AdamW on the host. ZeRO-Offload (same paper, section 4.1)
# reports its CPU-Adam 5.1x to 6.4x faster than PyTorch's CPU Adam; the slower end is taken.
TORCH_CPU_ADAMW_PARAMS_PER_S_PER_NODE = CPU_ADAM_PARAMS_PER_S_PER_NODE / 6.4

# ---- communication -----------------------------------------------------------------------------

# Bus bandwidth NCCL collectives reach as a fraction of the link's per-direction rate
# (nccl-tests doc/PERFORMANCE.md defines busbw; all-reduce busbw on NVLink and PCIe systems is
# typically 0.7-0.85 of the link). One figure for all links.
NCCL_LINK_EFFICIENCY = 0.75

# Network between nodes: per GPU kind in catalogs/gpus.yaml (`inter_node_gbit_per_s_per_node`,
# the vendor's reference system: DGX H100 8 x 400 Gb/s), or --inter-node-gbps; read through
# GpuSet.network_gbit_per_s. The node's NICs together carry each collective that leaves the node
# (NCCL reduces inside the node over NVLink and every NIC carries a shard: all_reduce busbw of
# ~0.95 of the node aggregate on 4 x P6-B200, stas00/ml-engineering @744d01e1 network/README.md,
# "Inter-node speed depends on intra-node speed"); NCCL_LINK_EFFICIENCY above keeps it conservative.
BITS_PER_BYTE = 8

# Host <-> GPU copies for offload reach about 0.8 of PCIe's payload rate with pinned memory
# (NVIDIA bandwidthTest on Gen3 x16 reports ~12-13 GB/s of 15.75).
PCIE_COPY_EFFICIENCY = 0.8

# Fraction of gradient communication hidden behind backward compute. PyTorch DDP overlaps its
# bucketed all-reduce with backward (Li et al., "PyTorch Distributed", VLDB 2020, section 3.2.3),
# and DeepSpeed overlaps reduce-scatter (`overlap_comm`); how much is hidden depends on the
# ratio of compute to communication, so the model assumes none is hidden: a conservative choice
# that favours plans with less traffic.
COMM_OVERLAP_FRACTION = 0.0

# ---- the memory levers (issue 16; speed/levers.py) --------------------------------------------

# DRAM traffic Liger's fused kernels remove, bytes per element, counted from the eager ops each
# replaces (reads + writes of every tensor an op materialises; liger-kernel 0.8.5 kernels read
# and write each operand once). Derived, not measured; benchmarks/liger.py compares the result
# with ms-swift's published Liger speed-up.
# - loss, per vocabulary entry per token: Hugging Face's lm_head output (2), `.float()` (r2 w4),
#   log_softmax (two passes r8, w4), nll backward (w4), log_softmax backward (r8 w4), the cast
#   back (r4 w2) = 42; Liger writes the chunk (2), its cross-entropy kernel reads it twice and
#   writes the gradient in place (r4 w2) = 8.
LIGER_LOSS_BYTES_SAVED_PER_VOCAB = 42 - 8
# - RMSNorm, per hidden element per norm: forward to(fp32) r2 w4, pow r4 w4, mean r4,
#   x*rsqrt r4 w4, to(bf16) r4 w2, weight* r2 w2 = 36 vs Liger r2 w2 = 4; backward ~52 eager
#   (six elementwise ops and a row reduction) vs Liger r4 w2 = 6.
LIGER_NORM_FORWARD_BYTES_SAVED = 36 - 4
LIGER_NORM_BACKWARD_BYTES_SAVED = 52 - 6
# - SwiGLU / GeGLU, per intermediate element: forward silu r2 w2 + mul r4 w2 = 10 vs 6; backward
#   two muls (r4 w2 each) + silu backward (r4 w2) = 18 vs r6 w4 = 10.
LIGER_GATED_FORWARD_BYTES_SAVED = 10 - 6
LIGER_GATED_BACKWARD_BYTES_SAVED = 18 - 10

# DoRA (peft `dora.py:66-101`) recomputes every adapted weight's norm in every forward: an
# in x in identity through lora_A and lora_B (2 r in (in + out) FLOPs) and, memory-bound, the
# out x in `weight + scaling * lora_weight` and its row norm: read the 16-bit weight (2), write
# the sum (2 or 4), read it for the norm (2 or 4), plus the lora product (write + read 4).
DORA_WEIGHT_NORM_BYTES_PER_WEIGHT = 16

# GaLore refreshes each projected matrix's projector by an fp32 SVD every `galore_update_interval`
# steps (LLaMA-Factory default 200; galore_projector.py `torch.linalg.svd(matrix.float())`).
# A one-sided Jacobi / Golub-Kahan SVD of an m x n matrix costs about 4 m n k + 8 k^3 FLOPs
# (k = min(m, n); Golub and Van Loan, "Matrix Computations", 4th ed., table 8.6.1 "R-SVD" without
# U); counted at the fp32 rate with the matmul efficiency: a lower bound on its time.
GALORE_UPDATE_INTERVAL = 200  # FinetuningArguments.galore_update_interval / apollo_update_interval
# The saving above is counted against a step time whose fitted matmul efficiency already absorbed
# Hugging Face's elementwise work, so for small models with large vocabularies it can approach the
# whole modelled step. It is capped at the largest whole-step speed-up Liger's developers report:
# "Train LLaMA 3-8B ~20% faster ... using 4 A100s with FSDP" (liger-kernel 0.8.5 METADATA,
# README table, line 167; "throughput by 20%", line 125): at most 1 - 1/1.2 of the GPU's step time.
LIGER_MAX_SAVED_FRACTION = 1 - 1 / 1.2
