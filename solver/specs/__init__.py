"""What the hardware and the model are: `GpuSpec` / `GpuSet`, `ModelSpec`, the Hugging Face
`config.json` reader, and the cited catalogs (catalogs/) with the lookup of what users type."""
