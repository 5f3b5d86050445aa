"""Engine settings by machine: the CPU's flags decide the teacher's dtype, and a dtype it cannot run is refused."""
import pytest

from pgkd.cluster.cpu import CpuInfo, cpu_info, dtype_refusal, preload_libraries, teacher_dtype

AVX2 = CpuInfo("AMD EPYC 7B12", frozenset({"sse4_2", "avx", "avx2", "fma"}), 2)
AVX512_BF16 = CpuInfo("Intel Xeon", frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}), 2)
AVX512 = CpuInfo("Intel Xeon Skylake", frozenset({"avx2", "avx512f"}), 2)
UNKNOWN = CpuInfo("arm64", frozenset(), 2)


def test_cpuinfo_flags_and_model_are_read(tmp_path):
    text = "processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n" * 2
    (tmp_path / "cpuinfo").write_text(text)
    info = cpu_info(str(tmp_path / "cpuinfo"))
    assert info.model == "AMD EPYC 7B12" and {"avx2", "avx512_bf16"} <= info.flags
    assert "(avx2 avx512f avx512_bf16)" in info.describe()
    assert cpu_info(str(tmp_path / "missing")).flags == frozenset()


@pytest.mark.skipif("x86_64" not in __import__("platform").machine(), reason="x86 rules")
def test_auto_is_bf16_only_where_the_cpu_has_it_and_16_bit_needs_avx512():
    assert teacher_dtype("auto", False, AVX512_BF16) == "bfloat16"
    assert teacher_dtype("auto", False, AVX512) == "float32"
    assert teacher_dtype("auto", False, AVX2) == "float32"
    assert teacher_dtype("float32", False, AVX2) == "float32"
    assert teacher_dtype("bfloat16", False, AVX512) == "bfloat16"  # runs (emulated), the user asked for it
    with pytest.raises(ValueError, match="teacher.dtype bfloat16 needs AVX-512.*avx2.*teacher.dtype: auto"):
        teacher_dtype("bfloat16", False, AVX2)
    assert dtype_refusal("float16", AVX2) and dtype_refusal("float16", AVX512) is None
    assert dtype_refusal("bfloat16", UNKNOWN) is None  # an unknown CPU: the engine decides
    assert teacher_dtype("auto", True, AVX2) == "auto"  # a GPU: vLLM's own choice
    assert "not one of" in dtype_refusal("int4", AVX2)


def test_preload_finds_tcmalloc_and_iomp_once_each(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a" / "libiomp5.so").write_text("")
    (tmp_path / "b" / "libtcmalloc_minimal.so.4").write_text("")
    (tmp_path / "b" / "libtcmalloc.so.4").write_text("")
    (tmp_path / "b" / "libiomp5.so").write_text("")
    found = preload_libraries([str(tmp_path / "a"), str(tmp_path / "b")])
    assert found == [str(tmp_path / "b" / "libtcmalloc_minimal.so.4"), str(tmp_path / "a" / "libiomp5.so")]
    assert preload_libraries([str(tmp_path / "none")]) == []


def test_a_dtype_this_cpu_cannot_run_is_refused_before_anything_starts(tmp_path, tiny_dataset, monkeypatch):
    import pgkd.driver
    import pgkd.prepare
    from pgkd.config import load_config
    from pgkd.basics.errors import InputError

    path = tmp_path / "run.yaml"
    path.write_text(f"dataset:\n  path: {tiny_dataset}\n  seeds_per_class: 1\nteacher:\n  dtype: bfloat16\n")
    monkeypatch.setattr(pgkd.prepare, "cpu_info", lambda: AVX2)
    if "x86_64" in __import__("platform").machine():
        with pytest.raises(InputError, match="teacher.dtype") as caught:
            pgkd.driver.prepare_inputs(load_config(path))
        assert caught.value.field == "teacher.dtype"
    monkeypatch.setattr(pgkd.prepare, "cpu_info", lambda: AVX512_BF16)
    pgkd.driver.prepare_inputs(load_config(path))



def test_the_engine_runs_in_the_replicas_process_on_a_cpu_and_in_its_own_on_a_gpu(monkeypatch):
    """Starting vLLM's engine core and worker as processes costs about 20 s on a 2-core CPU (each imports vLLM
    again); on a GPU vLLM's own processes stay (its default)."""
    import pgkd.cluster.placement as placement
    from pgkd.actors.teacher_actor import TeacherActor
    from pgkd.teacher.config import teacher_settings

    monkeypatch.setattr(placement, "has_gpu", lambda: False)
    assert placement.engine_process("auto") == "in_process" and placement.engine_process("separate") == "separate"
    on_node = TeacherActor.__ray_metadata__.modified_class._on_this_node
    assert on_node(teacher_settings()).engine_process == "in_process"
    assert on_node(teacher_settings(engine_process="separate")).engine_process == "separate"
    monkeypatch.setattr(placement, "has_gpu", lambda: True)
    assert placement.engine_process("auto") == "separate"
