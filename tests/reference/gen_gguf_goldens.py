#!/usr/bin/env python3
"""Goldens for loom's GGUF reader, from the `gguf` Python package (tests/reference/.venv):
  golden/gguf/<model>.meta.json   metadata (types, scalar values, array lengths with first/last
                                  elements) and tensor directory of the default models
  golden/gguf/tiny.gguf           a small file written by gguf.GGUFWriter with every value type,
                                  nested arrays and two tensors (the reader's truncation tests)
usage: tests/reference/.venv/bin/python tests/reference/gen_gguf_goldens.py"""
import json, os
import numpy as np
import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden", "gguf")
MODELS = os.environ.get("LOOM_MODELS") or os.path.expanduser("~/.cache/loom/models")
os.makedirs(OUT, exist_ok=True)

def scalar(field, idx):
    v = field.parts[idx]
    t = field.types[-1]
    if t == gguf.GGUFValueType.STRING:
        return bytes(v).decode("utf-8", errors="replace")
    x = v.tolist()[0]
    return bool(x) if t == gguf.GGUFValueType.BOOL else x

def describe(path):
    r = gguf.GGUFReader(path)
    meta = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        entry = {"key": key, "type": f.types[0].name.lower()}
        if f.types[0] == gguf.GGUFValueType.ARRAY and len(f.types) > 2:  # arrays of arrays
            entry["elem"] = f.types[1].name.lower()
            entry["leaves"] = len(f.data)  # the package lists the innermost elements only
        elif f.types[0] == gguf.GGUFValueType.ARRAY:
            entry["elem"] = f.types[-1].name.lower()
            entry["length"] = len(f.data)
            if f.data and len(f.types) == 2:
                entry["first"] = scalar(f, f.data[0])
                entry["last"] = scalar(f, f.data[-1])
        else:
            entry["value"] = scalar(f, f.data[0])
        meta.append(entry)
    tensors = [{"name": t.name, "ne": [int(x) for x in t.shape], "type": int(t.tensor_type),
                "offset": int(t.data_offset)} for t in r.tensors]
    return {"version": int(r.fields["GGUF.version"].parts[-1][0]), "metadata": meta, "tensors": tensors}

for name in ("smollm2", "gemma3"):
    path = os.path.join(MODELS, name + ".gguf")
    if os.path.exists(path):
        with open(os.path.join(OUT, name + ".meta.json"), "w", encoding="utf-8") as f:
            json.dump(describe(path), f, ensure_ascii=False, indent=0)

w = gguf.GGUFWriter(os.path.join(OUT, "tiny.gguf"), "llama")
w.add_uint8("t.u8", 200); w.add_int8("t.i8", -100); w.add_uint16("t.u16", 60000); w.add_int16("t.i16", -30000)
w.add_uint32("t.u32", 4000000000); w.add_int32("t.i32", -2000000000); w.add_float32("t.f32", 0.25)
w.add_uint64("t.u64", 2**63 + 5); w.add_int64("t.i64", -(2**62)); w.add_float64("t.f64", -1.5e-300)
w.add_bool("t.bool", True); w.add_string("t.str", "caf\u00e9 \u6771")
w.add_array("t.arr_i32", [1, -2, 3]); w.add_array("t.arr_str", ["a", "", "\u00e9"])
w.add_array("t.arr_nested", [[1, 2], [3]])
w.add_tensor("a", np.arange(6, dtype=np.float32).reshape(2, 3))
w.add_tensor("b", np.ones((4,), dtype=np.float16))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
with open(os.path.join(OUT, "tiny.meta.json"), "w", encoding="utf-8") as f:
    json.dump(describe(os.path.join(OUT, "tiny.gguf")), f, ensure_ascii=False, indent=0)
print("written", sorted(os.listdir(OUT)))
