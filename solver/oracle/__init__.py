"""The ground truth on CPU: one real training step of the Hugging Face model code traced on
fake tensors (`step`, which builds the model as LLaMA-Factory prepares it in `build` and counts
storages in `tracker`), and small models with each family's layer structure (`small_models`).
Needs the [trace] extra (torch, transformers, peft); nothing in the product imports it."""
