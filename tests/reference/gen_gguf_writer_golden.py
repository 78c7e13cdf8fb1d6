#!/usr/bin/env python3
"""A GGUF file written by the reference writer (the gguf Python package's GGUFWriter), for the test
that loom's gguf::Writer writes the same bytes for the same content (tests/unit/test_gguf_writer.cpp
builds the same keys and tensors, in the same order).

Writes tests/reference/golden/gguf/writer-reference.gguf. Run with tests/reference/.venv/bin/python."""
import os
import numpy as np
import gguf

here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "golden", "gguf", "writer-reference.gguf")
w = gguf.GGUFWriter(path, "llama")  # writes general.architecture = "llama" first
w.add_uint8("t.u8", 200)
w.add_int8("t.i8", -100)
w.add_uint16("t.u16", 60000)
w.add_int16("t.i16", -30000)
w.add_uint32("t.u32", 4000000000)
w.add_int32("t.i32", -2000000000)
w.add_uint64("t.u64", 18000000000000000000)
w.add_int64("t.i64", -9000000000000000000)
w.add_float32("t.f32", 0.1)
w.add_float64("t.f64", -2.5e-300)
w.add_bool("t.bool", True)
w.add_string("t.str", "héllo ✓")
w.add_array("t.arr_i32", [1, -2, 3])
w.add_array("t.arr_f32", [0.5, -1.25])
w.add_array("t.arr_str", ["a", "", "▁b"])
w.add_array("t.arr_bool", [True, False])
w.add_array("t.arr_nested", [[1, 2], [3]])
rng = np.random.default_rng(7)
f32 = rng.standard_normal((3, 32)).astype(np.float32)
w.add_tensor("a.f32", f32)
f16 = rng.standard_normal((2, 64)).astype(np.float16)
w.add_tensor("b.f16", f16)
q8 = rng.integers(0, 256, size=(2, 34 * 2), dtype=np.uint8)  # 2 rows of 64 Q8_0 values: raw blocks
w.add_tensor("c.q8_0", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
q4k = rng.integers(0, 256, size=(1, 144), dtype=np.uint8)
w.add_tensor("d.q4_k", q4k, raw_dtype=gguf.GGMLQuantizationType.Q4_K)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(path, os.path.getsize(path))
