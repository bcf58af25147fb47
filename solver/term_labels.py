"""The words people read for each memory term: one table for every report (estimate, recommend's
explanation, check, trace)."""

TERM_LABELS = {
    "weights": "base weights",
    "trainable_params": "trainable params",
    "gradients": "gradients",
    "optimizer_states": "optimizer states",
    "activations": "activations",
    "logits_loss": "logits + loss",
    "autocast_weight_copies": "autocast weight copies",
    "transient": "transient",
    "comm_buffers": "comm buffers",
    "zero3_gathered_layer": "ZeRO-3 gathered layer",
    "allocator_reserve": "allocator reserve",
    "cuda_context": "CUDA context",
    "kernel_workspaces": "kernel workspaces",
    "nccl_buffers": "NCCL buffers",
}
