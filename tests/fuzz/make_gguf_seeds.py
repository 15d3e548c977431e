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
l3 = [kv_str("tokenizer.ggml.model", "gpt2"), kv_str("tokenizer.ggml.pre", "llama-bpe"),
      kv_arr_str("tokenizer.ggml.tokens", toks), kv_arr_str("tokenizer.ggml.merges", merges)]
open("tests/fuzz/gguf-corpus/llama3-tokenizer.gguf", "wb").write(gguf(l3, []))
sp_toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + \
          ["\u2581", "\u2581t", "he", "\u2581the", "a", "t", "h", "e", "\u2581a"]
sp_types = [2, 3, 3] + [6] * 256 + [1] * 9
sp_scores = [0.0] * 259 + [-1e9, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0]
spm_tok = [kv_str("tokenizer.ggml.model", "llama"), kv_arr_str("tokenizer.ggml.tokens", sp_toks),
           kv_arr_i32("tokenizer.ggml.token_type", sp_types),
           s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, len(sp_scores)) +
           b"".join(struct.pack("<f", v) for v in sp_scores)]
open("tests/fuzz/gguf-corpus/spm-tokenizer.gguf", "wb").write(gguf(spm_tok, []))


def kv_f32(k, v):
    return s(k) + struct.pack("<If", 6, v)


def weights(typ, ne, seed):
    """a tensor of shape ne (ne[0] fastest) with small pseudo-random values"""
    n = 1
    for d in ne:
        n *= d
    vals = [((i * 7919 + seed * 104729) % 2001 - 1000) / 4000.0 for i in range(n)]
    if typ == 0:
        return struct.pack("<%df" % n, *vals)
    if typ == 1:
        return struct.pack("<%de" % n, *vals)
    out = b""  # Q8_0: blocks of 32 along ne[0]: an F16 scale, 32 int8
    for b in range(n // 32):
        blk = vals[32 * b:32 * b + 32]
        d = max(abs(v) for v in blk) / 127 or 1.0
        out += struct.pack("<e", d) + bytes((round(v / d) & 0xFF) for v in blk)
    return out


def llama(typ, dim, ffn, heads, kv, layers, tokenizer):
    """a complete llama model: vocab from the tokenizer, tied head"""
    vocab = 262 if tokenizer == "gpt2" else 40
    hd = dim // heads
    t = [("token_embd.weight", typ, [dim, vocab], weights(typ, [dim, vocab], 1)),
         ("output_norm.weight", 0, [dim], weights(0, [dim], 2))]
    for l in range(layers):
        for name, ne, tt in (("attn_norm", [dim], 0), ("ffn_norm", [dim], 0), ("attn_q", [dim, dim], typ),
                             ("attn_k", [dim, kv * hd], typ), ("attn_v", [dim, kv * hd], typ),
                             ("attn_output", [dim, dim], typ), ("ffn_gate", [dim, ffn], typ),
                             ("ffn_up", [dim, ffn], typ), ("ffn_down", [ffn, dim], typ)):
            t.append(("blk.%d.%s.weight" % (l, name), tt, ne, weights(tt, ne, 3 + l * 10 + len(t))))
    meta = [kv_u32("llama.embedding_length", dim), kv_u32("llama.block_count", layers),
            kv_u32("llama.feed_forward_length", ffn), kv_u32("llama.attention.head_count", heads),
            kv_u32("llama.attention.head_count_kv", kv), kv_u32("llama.context_length", 32),
            kv_f32("llama.rope.freq_base", 10000.0), kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)]
    if tokenizer == "gpt2":
        return gguf(tok + meta, t)
    spm = [kv_str("general.architecture", "llama"), kv_str("tokenizer.ggml.model", "llama"),
           kv_arr_str("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>"] + ["t%d" % i for i in range(37)])]
    return gguf(spm + meta, t)


open("tests/fuzz/gguf-corpus/llama-f32.gguf", "wb").write(llama(0, 8, 16, 2, 1, 1, "gpt2"))
open("tests/fuzz/gguf-corpus/llama-f16-2-layers.gguf", "wb").write(llama(1, 8, 8, 4, 2, 2, "gpt2"))
open("tests/fuzz/gguf-corpus/llama-q8_0.gguf", "wb").write(llama(8, 32, 32, 2, 2, 1, "gpt2"))
open("tests/fuzz/gguf-corpus/llama-spm-ids-only.gguf", "wb").write(llama(0, 8, 8, 2, 2, 1, "spm"))


def dsrn(typ, dim, ffn, slow, heads, window, layers, layer_norm, tied):
    """a complete DSRN model (docs/DSRN.md) with the gpt2 tokenizer above"""
    vocab, hd = 262, slow * dim
    mats = (("gru_z", [dim, dim]), ("gru_n", [dim, dim]), ("surprise", [dim, dim]), ("slow_g", [dim, hd]),
            ("slow_m", [dim, hd]), ("slow_read", [hd, dim]), ("attn_q", [dim, dim]), ("attn_k", [dim, dim]),
            ("attn_v", [dim, dim]), ("attn_output", [dim, dim]), ("ffn_gate", [dim, ffn]), ("ffn_up", [dim, ffn]),
            ("ffn_down", [ffn, dim]))
    t = [("token_embd.weight", typ, [dim, vocab], weights(typ, [dim, vocab], 1)),
         ("output_norm.weight", 0, [dim], weights(0, [dim], 2))]
    if layer_norm:
        t.append(("output_norm.bias", 0, [dim], weights(0, [dim], 3)))
    if not tied:
        t.append(("output.weight", typ, [dim, vocab], weights(typ, [dim, vocab], 4)))
    for l in range(layers):
        for norm in ("norm_in", "norm_mlp"):
            t.append(("blk.%d.%s.weight" % (l, norm), 0, [dim], weights(0, [dim], 5 + len(t))))
            if layer_norm:
                t.append(("blk.%d.%s.bias" % (l, norm), 0, [dim], weights(0, [dim], 5 + len(t))))
        t.append(("blk.%d.slow_lambda" % l, 0, [hd], weights(0, [hd], 5 + len(t))))
        for name, ne in mats:
            t.append(("blk.%d.%s.weight" % (l, name), typ, ne, weights(typ, ne, 5 + len(t))))
    meta = [kv_u32("dsrn.embedding_length", dim), kv_u32("dsrn.block_count", layers),
            kv_u32("dsrn.feed_forward_length", ffn), kv_u32("dsrn.slow_head_count", slow),
            kv_u32("dsrn.attention.head_count", heads), kv_u32("dsrn.attention.window", window),
            kv_str("dsrn.norm", "layer" if layer_norm else "rms"), kv_u32("dsrn.eod_token_id", 0)]
    return gguf([kv_str("general.architecture", "dsrn")] + tok[1:] + meta, t)


open("tests/fuzz/gguf-corpus/dsrn-f32.gguf", "wb").write(dsrn(0, 8, 16, 2, 2, 4, 1, 0, 1))
open("tests/fuzz/gguf-corpus/dsrn-f16-layernorm-untied.gguf", "wb").write(dsrn(1, 8, 8, 1, 4, 3, 2, 1, 0))
open("tests/fuzz/gguf-corpus/dsrn-q8_0.gguf", "wb").write(dsrn(8, 32, 32, 1, 2, 8, 1, 0, 1))
def kin(arch, typ, dim, ffn, heads, kv, hd, layers):
    """qwen2 (q/k/v biases), qwen3 (head size hd, q/k norms) or gemma3 (q/k norms,
    post norms, a sliding window of 2) on the gpt2 tokenizer above, tied head"""
    vocab = 262
    t = [("token_embd.weight", typ, [dim, vocab], weights(typ, [dim, vocab], 1)),
         ("output_norm.weight", 0, [dim], weights(0, [dim], 2))]
    for l in range(layers):
        parts = [("attn_norm", [dim], 0), ("ffn_norm", [dim], 0), ("attn_q", [dim, heads * hd], typ),
                 ("attn_k", [dim, kv * hd], typ), ("attn_v", [dim, kv * hd], typ),
                 ("attn_output", [heads * hd, dim], typ), ("ffn_gate", [dim, ffn], typ),
                 ("ffn_up", [dim, ffn], typ), ("ffn_down", [ffn, dim], typ)]
        if arch != "qwen2":
            parts += [("attn_q_norm", [hd], 0), ("attn_k_norm", [hd], 0)]
        if arch == "gemma3":
            parts += [("post_attention_norm", [dim], 0), ("post_ffw_norm", [dim], 0)]
        for name, ne, tt in parts:
            t.append(("blk.%d.%s.weight" % (l, name), tt, ne, weights(tt, ne, 3 + l * 10 + len(t))))
        if arch == "qwen2":
            for name, n in (("attn_q", heads * hd), ("attn_k", kv * hd), ("attn_v", kv * hd)):
                t.append(("blk.%d.%s.bias" % (l, name), 0, [n], weights(0, [n], 7 + len(t))))
    meta = [kv_u32(arch + ".embedding_length", dim), kv_u32(arch + ".block_count", layers),
            kv_u32(arch + ".feed_forward_length", ffn), kv_u32(arch + ".attention.head_count", heads),
            kv_u32(arch + ".attention.head_count_kv", kv), kv_u32(arch + ".context_length", 32),
            kv_f32(arch + ".rope.freq_base", 1000000.0), kv_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-6)]
    if arch != "qwen2":
        meta += [kv_u32(arch + ".attention.key_length", hd), kv_u32(arch + ".attention.value_length", hd)]
    if arch == "gemma3":
        meta += [kv_u32("gemma3.attention.sliding_window", 2), kv_f32("gemma3.rope.freq_base_swa", 10000.0),
                 kv_u32("gemma3.attention.sliding_window_pattern", 2)]
    return gguf([kv_str("general.architecture", arch)] + tok[1:] + meta, t)


def spm_user():
    """a SentencePiece vocabulary with user-defined pieces (runs of spaces and a tag), ids only body"""
    pieces = ["<pad>", "<eos>", "<bos>", "<unk>"] + ["<0x%02X>" % b for b in range(256)] + \
             ["\u2581", "a", "b", "\u2581a", "ab", "  ", "   ", "<tag>", "\n\n"]
    types = [3, 3, 3, 2] + [6] * 256 + [1, 1, 1, 1, 1, 4, 4, 4, 4]
    scores = [0.0] * 260 + [-1.0, -2.0, -3.0, -4.0, -5.0, 0.0, 0.0, 0.0, 0.0]
    arr_f32 = s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, len(scores)) + \
        b"".join(struct.pack("<f", v) for v in scores)
    add_space = s("tokenizer.ggml.add_space_prefix") + struct.pack("<IB", 7, 0)
    dim, vocab = 8, len(pieces)
    t = [("token_embd.weight", 0, [dim, vocab], weights(0, [dim, vocab], 1)),
         ("output_norm.weight", 0, [dim], weights(0, [dim], 2))]
    for name, ne in (("attn_norm", [dim]), ("ffn_norm", [dim]), ("attn_q", [dim, dim]), ("attn_k", [dim, dim]),
                     ("attn_v", [dim, dim]), ("attn_output", [dim, dim]), ("ffn_gate", [dim, 8]),
                     ("ffn_up", [dim, 8]), ("ffn_down", [8, dim])):
        t.append(("blk.0.%s.weight" % name, 0, ne, weights(0, ne, 3 + len(t))))
    meta = [kv_u32("llama.embedding_length", dim), kv_u32("llama.block_count", 1),
            kv_u32("llama.feed_forward_length", 8), kv_u32("llama.attention.head_count", 2),
            kv_u32("llama.context_length", 32)]
    return gguf([kv_str("general.architecture", "llama"), kv_str("tokenizer.ggml.model", "llama"),
                 kv_arr_str("tokenizer.ggml.tokens", pieces), kv_arr_i32("tokenizer.ggml.token_type", types),
                 arr_f32, add_space] + meta, t)


open("tests/fuzz/gguf-corpus/qwen3-f32.gguf", "wb").write(kin("qwen3", 0, 8, 16, 2, 1, 8, 1))
open("tests/fuzz/gguf-corpus/qwen2-q8_0.gguf", "wb").write(kin("qwen2", 8, 32, 32, 2, 1, 16, 1))
open("tests/fuzz/gguf-corpus/gemma3-f16-2-layers.gguf", "wb").write(kin("gemma3", 1, 8, 8, 2, 1, 8, 2))
open("tests/fuzz/gguf-corpus/spm-user-pieces.gguf", "wb").write(spm_user())
print("written")
