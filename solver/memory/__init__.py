"""Bytes per GPU, term by term and moment by moment: model states (`states`, counted by
`params`), what scales with tokens (`activations`), what a GPU holds beyond tensors
(`overheads`), the step's peak candidates (`peak`, built from the `terms` vocabulary), and
`estimate`, which evaluates one configuration. The recommender's constraints read the very same
figures (`memory_by_moment`)."""
