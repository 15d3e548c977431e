"""lmzip for Python: ctypes over liblmzip.so, the standard library only.

    import lmzip
    packed = lmzip.compress(b"some text", level=6)       # the default model
    assert lmzip.decompress(packed) == b"some text"
    with lmzip.open("notes.txt.lmz", "wb") as f:          # streaming
        f.write(b"...")
    with lmzip.open("notes.txt.lmz", "rb") as f:
        text = f.read()

Models are named as lmzip(1) names them: "none" (the byte model), a path to
a GGUF file, or a name looked up in the models folders ($LMZIP_MODELS,
models/ of this source tree, the installed folder). The library is found
through $LMZIP_LIBRARY, then beside this source tree (build/liblmzip.so),
then the system's (ctypes.util.find_library).
"""
import ctypes
import ctypes.util
import io
import os
import queue
import threading

__all__ = ["compress", "decompress", "explain", "open", "LmzipError", "LmzipFile", "version"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_TREE = os.path.dirname(os.path.dirname(_HERE))  # python/lmzip -> the source tree


class LmzipError(Exception):
    """An lmz_error code from the library, with its name."""

    def __init__(self, code, what=""):
        self.code = code
        name = _lib.lmz_error_name(code).decode() if _lib else str(code)
        super().__init__(f"{what}: {name}" if what else name)


# ---- the library ------------------------------------------------------------

def _load():
    tried = []
    for cand in (os.environ.get("LMZIP_LIBRARY"), os.path.join(_TREE, "build", "liblmzip.so"),
                 ctypes.util.find_library("lmzip")):
        if not cand:
            continue
        tried.append(cand)
        try:
            return ctypes.CDLL(cand)
        except OSError:
            continue
    raise ImportError("lmzip: liblmzip.so not found (tried %s); set LMZIP_LIBRARY" % (", ".join(tried) or "nothing"))


_lib = None
_lib = _load()

_READ = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_WRITE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64)
_FIND_MODEL = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)
_FIND_REF = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)


class _Piece(ctypes.Structure):  # lmz_piece
    _fields_ = [("offset", ctypes.c_uint64), ("length", ctypes.c_uint32), ("kind", ctypes.c_uint),
                ("bits", ctypes.c_double), ("frame", ctypes.c_uint64), ("token", ctypes.c_int32),
                ("carrier", ctypes.c_uint), ("q", ctypes.c_float * 4), ("table_bits", ctypes.c_float),
                ("top_p", ctypes.c_float * 3), ("top", (ctypes.c_uint8 * 16) * 3), ("top_len", ctypes.c_uint8 * 3)]


_EXPLAIN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(_Piece))


class _Params(ctypes.Structure):  # lmz_params, in lmzip.h's order
    _fields_ = [("frame_size", ctypes.c_uint32), ("threads", ctypes.c_uint), ("table_bits", ctypes.c_uint),
                ("model", ctypes.c_char_p), ("size_hint", ctypes.c_uint64), ("parts", ctypes.c_uint),
                ("mixer", ctypes.c_uint), ("ngram_bits", ctypes.c_uint), ("cdf_bits", ctypes.c_uint),
                ("text_min", ctypes.c_uint), ("window", ctypes.c_uint32), ("bias_lr", ctypes.c_float),
                ("mix_lr", ctypes.c_float), ("skip_mbits", ctypes.c_uint32), ("group", ctypes.c_uint),
                ("binary", ctypes.c_uint), ("stats", ctypes.c_void_p), ("lm_profile", ctypes.c_uint),
                ("model_ref", ctypes.c_void_p), ("force_threads", ctypes.c_uint),
                ("model_always", ctypes.c_uint), ("format_version", ctypes.c_uint), ("explain", _EXPLAIN),
                ("explain_opaque", ctypes.c_void_p), ("cache_rows", ctypes.c_uint32), ("head_lr", ctypes.c_float)]


class _DParams(ctypes.Structure):  # lmz_dparams
    _fields_ = [("threads", ctypes.c_uint), ("model", ctypes.c_char_p), ("find_model", _FIND_MODEL),
                ("find_opaque", ctypes.c_void_p), ("model_ref", ctypes.c_void_p), ("find_ref", _FIND_REF),
                ("memlimit", ctypes.c_uint64), ("mem_needed", ctypes.POINTER(ctypes.c_uint64)),
                ("force_threads", ctypes.c_uint), ("frames_at_once", ctypes.POINTER(ctypes.c_uint))]


class _IO(ctypes.Structure):  # lmz_io
    _fields_ = [("opaque", ctypes.c_void_p), ("read", _READ), ("write", _WRITE), ("progress", _PROGRESS)]


class _StreamInfo(ctypes.Structure):  # lmz_stream_info
    _fields_ = [("stream_index", ctypes.c_uint), ("format_version", ctypes.c_uint), ("profile", ctypes.c_char * 64),
                ("model", ctypes.c_char * 64), ("model_hash", ctypes.c_uint8 * 32), ("frame_size", ctypes.c_uint32),
                ("table_bits", ctypes.c_uint), ("size_hint", ctypes.c_uint64), ("group", ctypes.c_uint)]


class _Setting(ctypes.Structure):  # lmz_setting
    _fields_ = [("name", ctypes.c_char_p), ("id", ctypes.c_uint), ("model_only", ctypes.c_int),
                ("min", ctypes.c_double), ("max", ctypes.c_double), ("default", ctypes.c_double),
                ("help", ctypes.c_char_p)]


def _proto(name, res, *args):
    f = getattr(_lib, name)
    f.restype, f.argtypes = res, list(args)
    return f


_proto("lmz_error_name", ctypes.c_char_p, ctypes.c_int)
_params_default = _proto("lmz_params_default", None, ctypes.POINTER(_Params))
_params_set = _proto("lmz_params_set", ctypes.c_int, ctypes.POINTER(_Params), ctypes.c_char_p, ctypes.c_double)
_level = _proto("lmz_level", ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p),
                ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_double))
_model_find = _proto("lmz_model_find", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t)
_settings = _proto("lmz_settings", ctypes.POINTER(_Setting), ctypes.POINTER(ctypes.c_size_t))
_compress_stream = _proto("lmz_compress_stream", ctypes.c_int, ctypes.POINTER(_Params), ctypes.POINTER(_IO))
_decompress_stream_ex = _proto("lmz_decompress_stream_ex", ctypes.c_int, ctypes.POINTER(_DParams),
                               ctypes.POINTER(_IO))


_version_string = _proto("lmz_version_string", ctypes.c_char_p)
_peek_header = _proto("lmz_peek_header", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_StreamInfo))


def version():
    """The library's version, e.g. '0.4.0'."""
    return _version_string().decode()


def _model_only():
    n = ctypes.c_size_t()
    t = _settings(ctypes.byref(n))
    return {t[i].name.decode(): bool(t[i].model_only) for i in range(n.value)}


_MODEL_ONLY = _model_only()


def _find(name):
    """The path of the model NAME in the folders, or None."""
    here = os.path.join(_TREE, "models", name + ".gguf")
    buf = ctypes.create_string_buffer(4096)
    if _model_find(os.fsencode(name), buf, len(buf)) == 0:
        return buf.value
    if os.path.isfile(here):
        return os.fsencode(here)
    return None


def _resolve(model):
    """-m as lmzip takes it: None (the default model, else none), 'none', a
    file, or a name in the folders ('max' falls back to 'default')."""
    if model is None:
        return _find("default") or b"none"
    model = os.fspath(model)
    if model == "none":
        return b"none"
    if os.path.isfile(model):
        return os.fsencode(model)
    if "/" in model or model.endswith(".gguf"):
        raise FileNotFoundError(model)
    path = _find(model)
    if path is None and model == "max":
        path = _find("default")
    if path is None:
        raise LmzipError(13, f"model {model!r} not found in the models folders")
    return path


def _params(model, level, threads, size_hint, settings):
    p = _Params()
    _params_default(ctypes.byref(p))
    preset_setting, preset_value = None, 0.0
    if level is not None:
        m, s, v = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_double()
        if _level(int(level), ctypes.byref(m), ctypes.byref(s), ctypes.byref(v)) != 0:
            raise ValueError(f"level {level}: 1 .. 9")
        if model is None and m.value != b"default":
            model = m.value.decode()
        if s.value:
            preset_setting, preset_value = s.value.decode(), v.value
    path = _resolve(model)
    p.model = path
    p.threads = threads
    p.size_hint = size_hint if size_hint is not None else 2**64 - 1
    given = {k.replace("_", "-"): v for k, v in settings.items()}
    if preset_setting and preset_setting not in given and not (_MODEL_ONLY.get(preset_setting) and path == b"none"):
        given = {preset_setting: preset_value, **given}
    for name, value in given.items():
        if name == "profile":
            p.lm_profile = {"det-f32-v3": 3, "det-f32-v4": 4, "det-i8-v1": 5}[value]
        elif name == "model-always":
            p.model_always = 1 if value else 0
        elif name == "format-version":
            if value not in (1, 2):
                raise ValueError(f"format_version={value!r}: 1 or 2")
            p.format_version = value
        elif _params_set(ctypes.byref(p), name.encode(), float(value)) != 0:
            raise ValueError(f"setting {name}={value!r}: unknown or out of bounds")
    return p, path


class _Callbacks:
    """Keeps the ctypes callbacks alive and the first Python error raised in one."""

    def __init__(self, read=None, write=None):
        self.error = None
        self.io = _IO(None, _READ(self._wrap(read, -1)), _WRITE(self._wrap(write, -1)), _PROGRESS())

    def _wrap(self, fn, bad):
        def call(*a):
            if self.error is not None:
                return bad
            try:
                return fn(*a)
            except BaseException as e:  # raised again after the library returns
                self.error = e
                return bad
        return call

    def check(self, rc, what):
        if self.error is not None:
            raise self.error
        if rc != 0:
            raise LmzipError(rc, what)


def _reader_of(data):
    """A read callback over the bytes object data (kept alive by it)."""
    base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
    pos = 0

    def read(_opaque, buf, n):
        nonlocal pos
        k = min(n, len(data) - pos)
        if k > 0:
            ctypes.memmove(buf, base + pos, k)
            pos += k
        return k
    return read


def _writer_to(parts):
    def write(_opaque, buf, n):
        parts.append(ctypes.string_at(buf, n))
        return 0
    return write


def compress(data, model=None, level=None, threads=0, **settings):
    """data compressed to one .lmz stream (bytes). model: None (the default
    model, else the byte model), 'none', a GGUF path or a model name; level
    1..9 as lmzip -1..-9; settings as lmzip's long options with '_' for '-'
    (frame_size=65536, skip=3, profile='det-i8-v1', ...)."""
    data = bytes(data)
    p, _ = _params(model, level, threads, len(data), settings)
    parts = []
    cb = _Callbacks(_reader_of(data), _writer_to(parts))
    cb.check(_compress_stream(ctypes.byref(p), ctypes.byref(cb.io)), "compress")
    return b"".join(parts)


_KINDS = ("token", "binary", "stored", "overhead")
_CARRIERS = ("model", "ngram", "match", "local", "bytes", None)


def explain(data, model=None, level=None, threads=0, **settings):
    """Where the bits go when data is compressed (as compress() would, same
    arguments): a list of pieces in input order, each a dict with offset,
    length, kind ('token', 'binary', 'stored', 'overhead'), bits (what it
    cost; all pieces add up to 8 x the compressed size), frame, text (the
    input's bytes), and for tokens: token (id), carrier (the predictor that
    gave it the most probability: 'model', 'ngram', 'match', 'local', or
    'bytes' where the byte model's mixing saved a bit or more), q (what the
    model, n-gram, match and own-match predictors gave it; None: not
    taking part), table_bits, and top (the three tokens the table expected
    most, as (bytes, probability))."""
    data = bytes(data)
    p, _ = _params(model, level, threads, len(data), settings)
    pieces = []

    def one(_opaque, pp):
        x = pp.contents
        piece = {"offset": x.offset, "length": x.length, "kind": _KINDS[x.kind] if x.kind < 4 else str(x.kind),
                 "bits": x.bits, "frame": x.frame, "text": data[x.offset:x.offset + x.length]}
        if x.kind == 0:
            piece.update(token=x.token, carrier=_CARRIERS[min(x.carrier, 5)],
                         q={k: (None if x.q[i] < 0 else x.q[i]) for i, k in enumerate(("model", "ngram", "match", "local"))},
                         table_bits=x.table_bits,
                         top=[(bytes(x.top[k][:x.top_len[k]]), x.top_p[k]) for k in range(3) if x.top_len[k]])
        pieces.append(piece)

    p.explain = _EXPLAIN(one)
    parts = []
    cb = _Callbacks(_reader_of(data), _writer_to(parts))
    cb.check(_compress_stream(ctypes.byref(p), ctypes.byref(cb.io)), "explain")
    return pieces


def _dparams(model, threads):
    d = _DParams()
    d.threads = threads
    keep = []
    if model is not None and model != "none":
        d.model = _resolve(model)
    else:
        def find(_opaque, name):
            path = _find(name.decode(errors="replace"))
            if path is None:
                return None
            buf = ctypes.create_string_buffer(path)
            keep.append(buf)
            return ctypes.addressof(buf)
        d.find_model = _FIND_MODEL(find)
        keep.append(d.find_model)
    return d, keep


def decompress(data, model=None, threads=0):
    """The content of one or more concatenated .lmz streams (bytes). The
    model a stream names is found in the models folders unless given."""
    d, keep = _dparams(model, threads)
    parts = []
    cb = _Callbacks(_reader_of(bytes(data)), _writer_to(parts))
    cb.check(_decompress_stream_ex(ctypes.byref(d), ctypes.byref(cb.io)), "decompress")
    del keep
    return b"".join(parts)


def info(data):
    """What the first stream's header of data records, without decoding:
    a dict of format_version, profile, model, model_id (hex: the identity's
    bytes the format keeps), frame_size, table_bits, size (None when the
    writer did not know it) and group."""
    s = _StreamInfo()
    data = bytes(data)
    e = _peek_header(data, len(data), ctypes.byref(s))
    if e != 0:
        raise LmzipError(e, _lib.lmz_error_name(e).decode())
    keep = 8 if s.format_version >= 2 else 32
    return {"format_version": s.format_version, "profile": s.profile.decode(), "model": s.model.decode(),
            "model_id": bytes(s.model_hash[:keep]).hex() if s.model.decode() != "none" else "",
            "frame_size": s.frame_size, "table_bits": s.table_bits,
            "size": None if s.size_hint == 2**64 - 1 else s.size_hint, "group": s.group}


# ---- streaming files ------------------------------------------------------------

_END = object()


class LmzipFile(io.BufferedIOBase):
    """A file-like object over the library's stream API: 'wb' compresses what
    is written (a worker thread runs lmz_compress_stream, reading from a
    bounded queue); 'rb' decompresses as it is read (a worker thread runs
    lmz_decompress_stream_ex, writing into one)."""

    def __init__(self, file, mode="rb", model=None, level=None, threads=0, **settings):
        super().__init__()
        if mode not in ("rb", "wb", "r", "w"):
            raise ValueError("mode: 'rb' or 'wb'")
        self._writing = mode.startswith("w")
        self._own = isinstance(file, (str, bytes, os.PathLike))
        self._f = io.open(file, "wb" if self._writing else "rb") if self._own else file
        self._q = queue.Queue(maxsize=16)
        self._stop = False
        self._rc = None
        self._err = None
        self._buf = b""
        self._at = 0  # compressing: bytes of _buf handed to the library
        self._eof = False
        if self._writing:
            self._p, _ = _params(model, level, threads, None, settings)
            cb = _Callbacks(self._pull, self._put_file)
        else:
            self._d, self._keep = _dparams(model, threads)
            cb = _Callbacks(self._get_file, self._push)
        self._cb = cb
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    # the worker side
    def _run(self):
        try:
            if self._writing:
                self._rc = _compress_stream(ctypes.byref(self._p), ctypes.byref(self._cb.io))
            else:
                self._rc = _decompress_stream_ex(ctypes.byref(self._d), ctypes.byref(self._cb.io))
        finally:
            if not self._writing:
                self._q.put(_END)

    def _pull(self, _opaque, buf, n):  # compressing: the bytes written so far
        while self._at == len(self._buf):
            item = self._q.get()
            if item is _END:
                self._q.put(_END)
                return 0
            self._buf, self._at = item, 0
        k = min(n, len(self._buf) - self._at)
        ctypes.memmove(buf, ctypes.cast(ctypes.c_char_p(self._buf), ctypes.c_void_p).value + self._at, k)
        self._at += k
        return k

    def _put_file(self, _opaque, buf, n):
        self._f.write(ctypes.string_at(buf, n))
        return 0

    def _get_file(self, _opaque, buf, n):
        chunk = self._f.read(n)
        ctypes.memmove(buf, chunk, len(chunk))
        return len(chunk)

    def _push(self, _opaque, buf, n):  # decompressing: hand the bytes to read()
        data = ctypes.string_at(buf, n)
        while not self._stop:
            try:
                self._q.put(data, timeout=0.1)
                return 0
            except queue.Full:
                continue
        return -1

    # the caller side
    def readable(self):
        return not self._writing

    def writable(self):
        return self._writing

    def write(self, b):
        if not self._writing:
            raise io.UnsupportedOperation("write")
        if self.closed:
            raise ValueError("write to a closed file")
        b = bytes(b)
        if b:
            self._put(b)
        return len(b)

    def _put(self, item):  # to the compressing worker, unless it has stopped
        while True:
            if not self._t.is_alive():
                self._finish()  # raises its error
                raise ValueError("the compressor has stopped")
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _finish(self):
        self._t.join()
        self._cb.check(self._rc if self._rc is not None else 1, "compress" if self._writing else "decompress")

    def _fill(self):
        if self._eof:
            return False
        item = self._q.get()
        if item is _END:
            self._eof = True
            self._finish()
            return False
        self._buf += item
        return True

    def read(self, size=-1):
        if self._writing:
            raise io.UnsupportedOperation("read")
        if size is None or size < 0:
            while self._fill():
                pass
            out, self._buf = self._buf, b""
            return out
        while len(self._buf) < size and self._fill():
            pass
        out, self._buf = self._buf[:size], self._buf[size:]
        return out

    def read1(self, size=-1):
        if not self._buf:
            self._fill()
        return self.read(min(size, len(self._buf)) if size is not None and size >= 0 else len(self._buf))

    def readinto(self, b):
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self):
        if self.closed:
            return
        try:
            if self._writing:
                if self._t.is_alive():
                    self._put(_END)
                self._finish()
            else:
                self._stop = True
                while self._t.is_alive():  # let a worker blocked on a full queue go
                    try:
                        self._q.get(timeout=0.1)
                    except queue.Empty:
                        pass
                self._t.join()
        finally:
            if self._own:
                self._f.close()
            super().close()


def open(file, mode="rb", model=None, level=None, threads=0, **settings):  # noqa: A001 (as gzip.open)
    """An LmzipFile: mode 'rb' decompresses, 'wb' compresses (model, level
    and settings as compress()). file: a path or a binary file object."""
    return LmzipFile(file, mode, model=model, level=level, threads=threads, **settings)
