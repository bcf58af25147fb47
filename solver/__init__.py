"""fitplan's library (installed as `fitplan.solver`): one package per concern, imports pointing
one way (docs/architecture.md draws the flow of `recommend`):

    planner  ->  speed, memory  ->  problem  ->  specs  ->  units, errors
    llamafactory  ->  problem               (the files LLaMA-Factory and DeepSpeed read)
    oracle, calibration  ->  memory         (tooling the product never imports)

- `specs`: what the hardware and the model are (GPU and model specs, the HF config reader,
  the cited catalogs).
- `problem`: what is asked and what comes back (knobs, the rules of what can run, the instance
  and its pins, solver settings, the answer types and their JSON).
- `memory`: bytes per GPU, term by term, moment by moment; `estimate` of one configuration.
- `speed`: seconds per optimizer step.
- `planner`: the search space, the candidate tables, the CP-SAT model, `recommend`, the
  follow-up questions, the explanation of infeasibility, sweeps.
- `llamafactory`: the LLaMA-Factory / DeepSpeed vocabulary, writers and reader.
- `oracle`: the fake-tensor trace of a real training step (needs the [trace] extra).
- `calibration`: the caching-allocator model and replay, framework profiles, the published
  measurements' predictions.
"""
