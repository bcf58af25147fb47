"""The files LLaMA-Factory 0.9.5 and DeepSpeed 0.19.8 read: their vocabulary (one two-way
table of knob values and keys), the writers of `train.yaml` + `launch.sh` and of the DeepSpeed
JSON, and the reader of an existing training YAML (`fitplan check`)."""
