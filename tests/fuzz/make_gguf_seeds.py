#!/usr/bin/env python3
"""make_gguf_seeds.py — writes small GGUF seed files for the fuzz_gguf target
into tests/fuzz/gguf-corpus (run from the repository root)."""
import struct


def s(x):
    b = x.encode("utf-8") if isinstance(x, str) else x
    return struct.pack("<Q", len(b)) + b


def kv_str(k, v):
    return s(k) + struct.pack("<I", 8) + s(v)


def kv_u32(k, v):
    return s(k) + struct.pack("<II", 4, v)


def kv_arr_str(k, vs):
    return s(k) + struct.pack("<IIQ", 9, 8, len(vs)) + b"".join(s(v) for v in vs)


def kv_arr_i32(k, vs):
    return s(k) + struct.pack("<IIQ", 9, 5, len(vs)) + b"".join(struct.pack("<i", v) for v in vs)


def byte_chars():
    out, n = [], 0
    for b in range(256):
        if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255:
            out.append(chr(b))
        else:
            out.append(chr(256 + n))
            n += 1
    return out


def gguf(kvs, tensors):
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    body = b"".join(kvs)
    infos, data, off = b"", b"", 0
    for name, typ, ne, blob in tensors:
        infos += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        infos += struct.pack("<IQ", typ, off)
        pad = (-len(blob)) % 32
        data += blob + b"\0" * pad
        off += len(blob) + pad
    out = head + body + infos
    out += b"\0" * ((-len(out)) % 32)
    return out + data


chars = byte_chars()
toks = ["<|endoftext|>", "<|im_start|>", "<|escape|>"] + chars + ["\u0120t", "he", "\u0120the"]
types = [3, 3, 3] + [1] * 256 + [1, 1, 1]
merges = ["\u0120 t", "h e", "\u0120t he"]
f32 = ("w.weight", 0, [32, 2], struct.pack("<64f", *[i / 8 for i in range(64)]))
q8 = ("q.weight", 8, [32], struct.pack("<e", 0.5) + bytes(range(32)))
tok = [kv_str("general.architecture", "llama"), kv_str("tokenizer.ggml.model", "gpt2"),
       kv_str("tokenizer.ggml.pre", "smollm"), kv_arr_str("tokenizer.ggml.tokens", toks),
       kv_arr_i32("tokenizer.ggml.token_type", types), kv_arr_str("tokenizer.ggml.merges", merges),
       kv_u32("tokenizer.ggml.bos_token_id", 0), kv_u32("tokenizer.ggml.eos_token_id", 0)]
open("tests/fuzz/gguf-corpus/tokenizer-and-tensors.gguf", "wb").write(gguf(tok, [f32, q8]))
plain = [kv_str("tokenizer.ggml.model", "gpt2"), kv_str("tokenizer.ggml.pre", "gpt2"),
         kv_arr_str("tokenizer.ggml.tokens", chars), kv_u32("general.alignment", 64)]
open("tests/fuzz/gguf-corpus/bytes-only-tokenizer.gguf", "wb").write(gguf(plain, [f32]))
open("tests/fuzz/gguf-corpus/empty.gguf", "wb").write(gguf([], []))
print("written")
