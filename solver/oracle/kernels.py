"""The attention kernels a GPU run uses that have no CPU kernel, replaced for the trace by ops
with the same saved tensors, and one meta-kernel check lifted. Each replacement says what it
keeps exact and what it drops (/work/notes/moe/findings.md sections 2.1 and 5, where both were
checked against real CPU tensors).

Imports torch and transformers: only `oracle.build` imports this module.
"""

from __future__ import annotations

import torch

FLASH = "fitplan_flash"
MLA_EFFICIENT = "fitplan_mla_mem_efficient"


def register_flash() -> str:
    """What FlashAttention-2/3 keep: q, k, v, the output and an fp32 logsumexp, causal, no mask
    (SDPA's CPU flash kernel saves exactly that, trace-notes Q2).
    - A sliding window, an attention sink (gpt-oss `s_aux`) or a soft-cap change the arithmetic,
      not the saved tensors: FlashAttention takes `window_size` / `s_aux` / `softcap` and builds
      no mask, so all three are dropped here.
    - MLA: FlashAttention needs one head width for q and v, so transformers pads v to the q/k
      width and crops the output (integrations/flash_attention.py:61-66, 96-97); done the same.
    - Llama-4 chunked layers: FlashAttention refuses kv_length > attention_chunk_size
      (masking_utils.py:1422-1427: the kernel's name contains "flash", so the trace refuses too;
      fitplan refuses that combination, problem/rules.py).
    Masks are built as for FlashAttention (`flash_attention_mask`: none without padding)."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    def attention(module, query, key, value, attention_mask, **kwargs):
        for name in ("s_aux", "sliding_window", "softcap"):
            kwargs.pop(name, None)
        kwargs["is_causal"] = True
        qk_dim, v_dim = query.shape[-1], value.shape[-1]
        if v_dim != qk_dim:
            value = torch.nn.functional.pad(value, [0, qk_dim - v_dim])
        out, weights = sdpa_attention_forward(module, query, key, value, None, **kwargs)
        if v_dim != qk_dim:
            out = out[..., :v_dim]
        return out, weights

    AttentionInterface.register(FLASH, attention)
    # the masks FlashAttention gets: none for unpadded batches (masking_utils.flash_attention_mask)
    AttentionMaskInterface.register(FLASH, flash_attention_mask)
    return FLASH


def register_mla_efficient() -> str:
    """MLA under SDPA on a GPU: the q/k head width (qk_nope + qk_rope) differs from v's, so torch's
    flash backend is not eligible and SDPA picks the memory-efficient kernel, which saves the
    output and an fp32 logsumexp [b, h, ceil(s/32)*32]. On the CPU SDPA would fall back to the
    math kernel (s x s probabilities), which no GPU run does, so the CUDA op is called directly:
    its meta kernel runs on fake tensors (fake tensors only, like every trace fitplan runs)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
        if torch.is_autocast_enabled("cpu"):  # SDPA is an autocast lower-precision op; the aten op is not
            dtype = torch.get_autocast_dtype("cpu")
            query, key, value = (t.to(dtype) for t in (query, key, value))
        out, _lse, _seed, _offset = torch.ops.aten._scaled_dot_product_efficient_attention(
            query, key, value, None, True, 0.0, True, scale=scaling)
        return out.transpose(1, 2).contiguous(), None

    AttentionInterface.register(MLA_EFFICIENT, attention)
    AttentionMaskInterface.register(MLA_EFFICIENT, sdpa_mask)
    return MLA_EFFICIENT


def allow_fp32_grouped_mm_on_meta() -> None:
    """Full fine-tuning under AMP keeps the experts in fp32 (LLaMA-Factory upcasts trainable
    parameters), and transformers' grouped_mm casts the input to the weight dtype (integrations/
    moe.py:378-381, "grouped_mm is not autocast-enabled"). torch 2.13's meta kernel for
    aten._grouped_mm mirrors the CUDA checks and accepts bf16 only (_meta_registrations.py:
    8611-8648), while the CPU kernel runs fp32. Only the dtype check is lifted; the output shape and
    dtype rule stays. Whether CUDA runs fp32 grouped_mm is not settled (findings 2.1)."""
    import torch._meta_registrations as meta

    if getattr(meta, "_fitplan_fp32_grouped_mm", False):
        return
    original = meta._meta_grouped_mm_common

    def common(mat_a, mat_b, scale_a, scale_b, offs=None, bias=None, scale_result=None, out_dtype=None,
               use_fast_accum=False):
        if scale_a is None and mat_a.dtype == mat_b.dtype == torch.float32:
            return meta._create_grouped_mm_output_tensor(mat_a, mat_b, offs, out_dtype)
        return original(mat_a, mat_b, scale_a, scale_b, offs, bias, scale_result, out_dtype, use_fast_accum)

    meta._meta_grouped_mm_common = common
    meta._fitplan_fp32_grouped_mm = True
