"""The GPU catalog (catalogs/gpus.yaml): it loads, it encodes the hardware traps a planner must
not miss, it agrees with the cited fact table, and users' GPU strings resolve to it."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import yaml
from paths import SHARED_REFERENCE

from fitplan.solver.errors import UnknownGpuError
from fitplan.solver.specs.catalog import gpu_catalog, load_gpu, parse_gpu_set
from fitplan.solver.units import MIB

SHARED_GPUS_YAML = SHARED_REFERENCE / "gpus.yaml"

# catalog name -> id of the same GPU in shared/reference/gpus.yaml
SHARED_ID = {
    "P4": "tesla-p4",
    "P40": "tesla-p40",
    "P100-16G-PCIe": "tesla-p100-16gb-pcie",
    "P100-16G-SXM2": "tesla-p100-16gb-sxm2",
    "T4": "t4",
    "V100-16G": "v100-sxm2-16gb",
    "V100-32G": "v100-sxm2-32gb",
    "V100-PCIe-16G": "v100-pcie-16gb",
    "V100-PCIe-32G": "v100-pcie-32gb",
    "A10": "a10",
    "A10G": "a10g",
    "A30": "a30",
    "A40": "a40",
    "A100-40G": "a100-40gb-sxm",
    "A100-40G-PCIe": "a100-40gb-pcie",
    "A100-80G": "a100-80gb-sxm",
    "A100-80G-PCIe": "a100-80gb-pcie",
    "A800-80G": "a800-80gb",
    "L4": "l4",
    "L40S": "l40s",
    "H100": "h100-80gb-sxm",
    "H100-PCIe": "h100-80gb-pcie",
    "H800": "h800",
    "H200": "h200",
    "RTX3090": "rtx-3090",
    "RTX4090": "rtx-4090",
    "A6000": "rtx-a6000",
    "RTX6000-Ada": "rtx-6000-ada",
}

# Where the shared table has no value, the catalog copies a named sibling's (same die and memory);
# the YAML comment above the entry says why. Anything missing here must come from the table.
DERIVED_FROM = {
    ("P100-16G-SXM2", "memory_bytes"): "P100-16G-PCIe",
    ("V100-PCIe-16G", "memory_bytes"): "V100-16G",
    ("V100-PCIe-32G", "memory_bytes"): "V100-32G",
    ("A10G", "fp32_tflops"): "A10",
}

# catalog field -> shared field, for the numbers compared one to one
SAME_NUMBER_FIELDS = {
    "fp32_tflops": "fp32_tflops",
    "memory_bandwidth_gbps": "mem_bw_gbps",
}
SAME_FLAG_FIELDS = ["tensor_cores", "bf16_hardware", "flash_attention_2"]


def _catalog_yaml() -> dict:
    return yaml.safe_load(resources.files("fitplan.catalogs").joinpath("gpus.yaml").read_text())


@pytest.fixture(scope="module")
def shared() -> dict:
    if not SHARED_GPUS_YAML.is_file():
        pytest.skip(f"cited GPU fact table not found at {SHARED_GPUS_YAML}; nothing to compare against")
    return yaml.safe_load(SHARED_GPUS_YAML.read_text())


@pytest.fixture(scope="module")
def shared_by_id(shared) -> dict:
    return {row["id"]: row for row in shared["gpus"]}


def _numbers(value) -> list[float]:
    """Every free-standing number in a table cell: `1935 (PCIe) / 2039 (SXM, = A100 SXM)` ->
    [1935, 2039] (the 100 inside `A100` is part of a name, not a number)."""
    if isinstance(value, (int, float)):
        return [float(value)]
    return [float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", str(value))]


def _expected_total_mib(smi_cell: str) -> int:
    """The smallest memory total in an nvidia-smi cell (ECC on; or PyTorch's slightly lower total),
    ignoring marketing sizes such as `80GB` and raw byte counts."""
    totals = [int(n) for n in re.findall(r"\d+", str(smi_cell)) if 1000 <= int(n) < 10**7]
    assert totals, f"no MiB total in {smi_cell!r}"
    return min(totals)


# ---------------------------------------------------------------- loading


def test_at_least_40_gpus_load_and_validate_against_gpu_spec():
    catalog = gpu_catalog()
    assert len(catalog) >= 40
    assert set(SHARED_ID) <= set(catalog)


# Issue 14's list of 2026 cards (catalog names).
GPUS_2026 = ["B200", "GB200", "B300", "H20", "L20", "H100-NVL", "RTX5090", "RTX5080", "RTX4080", "RTX4080-Super",
             "RTX4070Ti-Super", "RTX4060Ti-16G", "RTX3060-12G", "A4000", "A5000", "L40", "MI300X", "MI325X"]


@pytest.mark.parametrize("name", GPUS_2026)
def test_every_2026_card_is_in_the_catalog_with_a_memory_note_and_sources(name):
    gpu = gpu_catalog()[name]
    assert gpu.memory_note and gpu.sources


def test_every_gpu_cites_sources_that_exist_in_the_catalog():
    data = _catalog_yaml()
    keys = set(data["sources"])
    for gpu in gpu_catalog().values():
        assert gpu.sources, f"{gpu.name} cites nothing"
        assert set(gpu.sources) <= keys, f"{gpu.name} cites unknown sources {set(gpu.sources) - keys}"


def test_aliases_are_unique_across_gpus_ignoring_case():
    owner: dict[str, str] = {}
    for gpu in gpu_catalog().values():
        for key in {gpu.name.lower(), *(a.lower() for a in gpu.aliases)}:
            assert key not in owner, f"'{key}' names both {owner[key]} and {gpu.name}"
            owner[key] = gpu.name


def test_every_name_and_alias_resolves_to_its_own_gpu():
    for gpu in gpu_catalog().values():
        for key in [gpu.name, *gpu.aliases]:
            assert load_gpu(key).name == gpu.name, key


@pytest.mark.parametrize(
    "typed, name",
    [
        ("h100-sxm", "H100"),
        ("H100-80G", "H100"),
        ("a100-80gb", "A100-80G"),
        ("A100-80G", "A100-80G"),
        ("rtx-a6000", "A6000"),
        ("tesla-p4", "P4"),
        ("TESLA-P4", "P4"),
        ("3090", "RTX3090"),
        ("rtx 3090", "RTX3090"),
        ("rtx_4090", "RTX4090"),
    ],
)
def test_lookup_is_case_insensitive_and_accepts_common_spellings(typed, name):
    assert load_gpu(typed).name == name


def test_a_bare_family_name_resolves_to_its_smallest_memory_variant():
    assert load_gpu("A100").name == "A100-40G"
    assert load_gpu("V100").name == "V100-16G"
    assert load_gpu("P100").name == "P100-16G-PCIe"


# ---------------------------------------------------------------- the traps


@pytest.mark.parametrize("name", ["P4", "P40"])
def test_p4_and_p40_run_fp16_at_one_64th_of_fp32_without_bf16_or_fa2(name):
    gpu = load_gpu(name)
    assert gpu.fp16_tflops == pytest.approx(gpu.fp32_tflops / 64)
    assert not gpu.tensor_cores
    assert not gpu.bf16_hardware and gpu.bf16_tflops is None
    assert not gpu.flash_attention_2


@pytest.mark.parametrize("name", ["P100-16G-PCIe", "P100-16G-SXM2"])
def test_p100_runs_fp16_at_twice_fp32_without_tensor_cores(name):
    gpu = load_gpu(name)
    assert not gpu.tensor_cores
    assert gpu.fp16_tflops == pytest.approx(2 * gpu.fp32_tflops, rel=0.01)


@pytest.mark.parametrize("name", ["V100-16G", "V100-32G", "V100-PCIe-16G", "V100-PCIe-32G", "T4"])
def test_v100_and_t4_have_no_bf16_hardware(name):
    gpu = load_gpu(name)
    assert not gpu.bf16_hardware
    assert gpu.bf16_tflops is None


def _nvidia():
    return [gpu for gpu in gpu_catalog().values() if gpu.vendor == "nvidia"]


def test_flash_attention_2_exactly_where_nvidia_compute_capability_is_at_least_8_0():
    for gpu in _nvidia():
        assert gpu.flash_attention_2 == (gpu.cc_at_least >= (8, 0)), gpu.name


def test_bf16_exactly_where_nvidia_compute_capability_is_at_least_8_0():
    for gpu in _nvidia():
        has_bf16 = gpu.cc_at_least >= (8, 0)
        assert gpu.bf16_hardware == has_bf16, gpu.name
        assert (gpu.bf16_tflops is not None) == has_bf16, gpu.name


@pytest.mark.parametrize("name", ["MI300X", "MI325X"])
def test_amd_instinct_cards_load_with_their_llvm_target_and_rocm_feature_flags(name):
    # amd.md: gfx942; bf16 on matrix cores (ROCm precision-support), FA2 via the CK backend,
    # bitsandbytes >= 0.50.0 on ROCm; Infinity Fabric 7 links x 128 GB/s bidirectional.
    gpu = load_gpu(name)
    assert gpu.vendor == "amd" and gpu.compute_capability == "gfx942"
    assert gpu.cc_at_least is None and gpu.compute_capability_major is None
    assert gpu.bf16_hardware and gpu.flash_attention_2 and gpu.bitsandbytes_4bit
    assert gpu.nvlink_gbps == 896 and gpu.peer_link_gbps == 128


def test_gpu_listing_json_serialises_every_vendor():
    for gpu in gpu_catalog().values():
        assert gpu.model_dump(mode="json")["name"] == gpu.name


def test_every_gpu_names_the_source_of_its_inter_node_default():
    keys = set(_catalog_yaml()["sources"])
    for gpu in gpu_catalog().values():
        assert gpu.inter_node_source in keys, gpu.name
        assert gpu.inter_node_gbit_per_s_per_node > 0


def test_inter_node_defaults_follow_the_reference_systems():
    # DGX H100/H200/B200: 8 x 400 Gb/s; DGX B300: 8 x 800; DGX A100: 8 x 200; DGX-1: 4 x 100.
    catalog = gpu_catalog()
    assert catalog["H100"].inter_node_gbit_per_s_per_node == 3200
    assert catalog["B300"].inter_node_gbit_per_s_per_node == 6400
    assert catalog["A100-80G"].inter_node_gbit_per_s_per_node == 1600
    assert catalog["V100-32G"].inter_node_gbit_per_s_per_node == 400
    assert catalog["RTX4090"].inter_node_gbit_per_s_per_node == 100


def test_memory_is_the_smaller_cuda_visible_total_where_one_was_seen():
    # smi_evidence.md: RTX 4070 Ti SUPER deviceQuery 16852516864 B < nvidia-smi 16376 MiB;
    # RTX A5000 torch total 24248 MiB < nvidia-smi 24564 MiB.
    assert load_gpu("RTX4070Ti-Super").memory_bytes == 16852516864
    assert load_gpu("A5000").memory_bytes == 24248 * MIB  # = 25425870848


def test_bf16_rate_equals_fp16_rate_where_there_is_bf16():
    for gpu in gpu_catalog().values():
        if gpu.bf16_tflops is not None:
            assert gpu.bf16_tflops == gpu.fp16_tflops, gpu.name


def test_tensor_core_gpus_do_matmuls_faster_in_fp16_than_in_fp32():
    for gpu in gpu_catalog().values():
        if gpu.tensor_cores:
            assert gpu.fp16_tflops > gpu.fp32_tflops, gpu.name


def test_every_gpu_has_4bit_bitsandbytes():
    # NF4/FP4 needs compute capability 6.0+ (bitsandbytes installation docs); the oldest here is 6.0.
    assert all(gpu.bitsandbytes_4bit for gpu in gpu_catalog().values())


# ---------------------------------------------------------------- agreement with the cited table


def test_catalog_sources_hold_the_cited_tables_sources(shared):
    ours = _catalog_yaml()["sources"]
    for key, text in shared["_meta"]["sources"].items():
        assert ours[key] == text, key


def test_every_gpu_in_the_cited_table_is_in_the_catalog(shared):
    assert {row["id"] for row in shared["gpus"]} == set(SHARED_ID.values())


def test_every_gpu_cites_at_least_the_tables_sources_for_it(shared_by_id):
    for name, gpu in gpu_catalog().items():
        if name in SHARED_ID:
            missing = set(shared_by_id[SHARED_ID[name]]["sources"]) - set(gpu.sources)
            assert not missing, f"{name} drops sources {missing}"


@pytest.mark.parametrize("name", sorted(SHARED_ID))
def test_memory_cc_fp32_and_bandwidth_agree_with_the_cited_table(name, shared_by_id):
    gpu, row = load_gpu(name), shared_by_id[SHARED_ID[name]]
    catalog = gpu_catalog()

    assert gpu.compute_capability == row["compute_capability"]

    if row["nvidia_smi_total_mib"] is None:
        sibling = catalog[DERIVED_FROM[(name, "memory_bytes")]]
        assert gpu.memory_bytes == sibling.memory_bytes
        assert gpu.memory_note.startswith("derived")
    else:
        assert gpu.memory_bytes == _expected_total_mib(row["nvidia_smi_total_mib"]) * MIB

    for ours, theirs in SAME_NUMBER_FIELDS.items():
        if row[theirs] is None:
            sibling = catalog[DERIVED_FROM[(name, ours)]]
            assert getattr(gpu, ours) == getattr(sibling, ours), ours
        else:
            # a cell with two figures (A800: PCIe / SXM bandwidth) -> the smaller one
            assert getattr(gpu, ours) == pytest.approx(min(_numbers(row[theirs]))), ours


@pytest.mark.parametrize("name", sorted(SHARED_ID))
def test_capability_flags_and_tensor_rates_agree_with_the_cited_table(name, shared_by_id):
    gpu, row = load_gpu(name), shared_by_id[SHARED_ID[name]]
    for field in SAME_FLAG_FIELDS:
        assert getattr(gpu, field) == row[field], field
    assert gpu.bitsandbytes_4bit == row["bitsandbytes_nf4_fp4"]
    if row["fp16_tensor_dense_tflops"] is not None:
        assert gpu.fp16_tflops == pytest.approx(row["fp16_tensor_dense_tflops"])
    if row["nvlink_gbps"] is None:
        assert gpu.nvlink_gbps is None
    else:
        assert gpu.nvlink_gbps == pytest.approx(_numbers(row["nvlink_gbps"])[0])
    if row["pcie"] is not None:
        gen = _numbers(row["pcie"])[0]
        assert gpu.pcie_gen == int(gen)


def test_every_value_the_table_leaves_open_is_a_documented_derivation(shared_by_id):
    derived_names = {name for name, _ in DERIVED_FROM}
    for name, sid in SHARED_ID.items():
        row = shared_by_id[sid]
        open_cells = [k for k in ("nvidia_smi_total_mib", "fp32_tflops", "mem_bw_gbps") if row[k] is None]
        if open_cells:
            assert name in derived_names, f"{name}: table has no {open_cells}, catalog names no derivation"


# ---------------------------------------------------------------- parse_gpu_set


def test_8xp4_is_one_node_of_eight_p4():
    gpus = parse_gpu_set("8xP4")
    assert (gpus.gpu.name, gpus.nodes, gpus.gpus_per_node, gpus.total_gpus) == ("P4", 1, 8, 8)


def test_2x8xh100_is_two_nodes_of_eight_h100():
    gpus = parse_gpu_set("2x8xH100")
    assert (gpus.gpu.name, gpus.nodes, gpus.gpus_per_node, gpus.total_gpus) == ("H100", 2, 8, 16)
    assert gpus.label() == "2x8xH100"


def test_1xa100_80g_is_one_a100_80g():
    gpus = parse_gpu_set("1xA100-80G")
    assert (gpus.gpu.name, gpus.nodes, gpus.gpus_per_node) == ("A100-80G", 1, 1)


def test_a_gpu_name_without_a_count_is_one_gpu_in_any_case():
    gpus = parse_gpu_set("a100-80g")
    assert (gpus.gpu.name, gpus.nodes, gpus.gpus_per_node) == ("A100-80G", 1, 1)


def test_4x3090_is_four_rtx3090_even_though_the_alias_is_all_digits():
    gpus = parse_gpu_set("4x3090")
    assert (gpus.gpu.name, gpus.nodes, gpus.gpus_per_node) == ("RTX3090", 1, 4)


def test_an_unknown_gpu_is_an_error_that_suggests_near_matches():
    with pytest.raises(UnknownGpuError) as err:
        parse_gpu_set("8xP5")
    assert "P5" in str(err.value)
    assert "P4" in str(err.value)


@pytest.mark.parametrize("text", ["0xP4", "2x0xP4", "0x8xP4"])
def test_a_gpu_set_with_zero_gpus_is_an_error(text):
    with pytest.raises(UnknownGpuError):
        parse_gpu_set(text)
