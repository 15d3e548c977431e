"""Tests of the Python package (python/lmzip) over liblmzip.so.

Run: LMZIP_LIBRARY=build/liblmzip.so python3 python/tests/run.py
"""
import builtins
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import lmzip  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "tests", "models", "tiny-dsrn.gguf")
ALICE = open(os.path.join(ROOT, "samples", "alice29.txt"), "rb").read()
CLI = os.environ.get("LMZIP_CLI")  # the lmzip program of the same build, for interop


class Folders(unittest.TestCase):
    """A models folder with the tiny model as 'tiny-dsrn' and as 'default'."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        shutil.copy(TINY, os.path.join(self.dir, "tiny-dsrn.gguf"))
        shutil.copy(TINY, os.path.join(self.dir, "default.gguf"))
        self.old = os.environ.get("LMZIP_MODELS")
        os.environ["LMZIP_MODELS"] = self.dir

    def tearDown(self):
        if self.old is None:
            os.environ.pop("LMZIP_MODELS", None)
        else:
            os.environ["LMZIP_MODELS"] = self.old
        shutil.rmtree(self.dir)


def model_of(packed):
    """The model name a stream's header records."""
    return lmzip.info(packed)["model"]


class Buffers(unittest.TestCase):
    def test_byte_model_round_trip(self):
        for data in (b"", b"a", ALICE[:20000], bytes(random.Random(1).randrange(256) for _ in range(5000))):
            packed = lmzip.compress(data, model="none")
            self.assertEqual(model_of(packed), "none")
            self.assertEqual(lmzip.decompress(packed), data)

    def test_model_file_round_trip(self):
        data = ALICE[:4000]
        packed = lmzip.compress(data, model=TINY, threads=2)
        self.assertEqual(model_of(packed), "tiny-dsrn")
        self.assertEqual(lmzip.decompress(packed, model=TINY), data)

    def test_settings_and_profile(self):
        data = ALICE[:6000]
        a = lmzip.compress(data, model=TINY, frame_size=2048, group=2)
        b = lmzip.compress(data, model=TINY, frame_size=2048, group=2, profile="det-i8-v1", model_always=True)
        self.assertEqual(lmzip.info(b)["profile"], "det-i8-v1")
        self.assertEqual(lmzip.info(a)["frame_size"], 2048)
        self.assertEqual(lmzip.info(a)["group"], 2)
        for p in (a, b):
            self.assertEqual(lmzip.decompress(p, model=TINY), data)
        with self.assertRaises(ValueError):
            lmzip.compress(data, model="none", table_bits=40)
        with self.assertRaises(ValueError):
            lmzip.compress(data, model="none", no_such_setting=1)

    def test_format_versions(self):
        data = ALICE[:1000]
        short, old = lmzip.compress(data, model="none"), lmzip.compress(data, model="none", format_version=1)
        self.assertEqual(lmzip.info(short)["format_version"], 2)
        self.assertEqual(lmzip.info(old)["format_version"], 1)
        self.assertEqual(lmzip.info(short)["size"], 1000)
        self.assertLess(len(short), len(old) - 80)
        self.assertEqual(lmzip.decompress(short), data)
        self.assertEqual(lmzip.decompress(old), data)
        self.assertEqual(lmzip.decompress(short + old), data + data)
        with self.assertRaises(ValueError):
            lmzip.compress(data, model="none", format_version=3)

    def test_concatenated_streams(self):
        a, b = ALICE[:3000], ALICE[3000:5000]
        self.assertEqual(lmzip.decompress(lmzip.compress(a, model="none") + lmzip.compress(b, model="none")), a + b)

    def test_errors(self):
        with self.assertRaises(lmzip.LmzipError) as e:
            lmzip.decompress(b"not an lmz stream at all")
        self.assertEqual(e.exception.code, 5)
        packed = lmzip.compress(ALICE[:3000], model="none")
        with self.assertRaises(lmzip.LmzipError):
            lmzip.decompress(packed[:-10])
        with self.assertRaises(FileNotFoundError):
            lmzip.compress(b"x", model="/no/such/model.gguf")

    def test_explain(self):
        data = ALICE[:3000]
        for model in ("none", TINY):
            pieces = lmzip.explain(data, model=model, model_always=True)
            packed = lmzip.compress(data, model=model, model_always=True)
            self.assertAlmostEqual(sum(p["bits"] for p in pieces), 8 * len(packed), places=3)
            self.assertEqual(b"".join(p["text"] for p in pieces), data)
        tokens = [p for p in pieces if p["kind"] == "token"]
        self.assertGreater(len(tokens), 500)
        self.assertTrue(all(p["carrier"] in ("model", "ngram", "match", "local", "bytes") for p in tokens))
        self.assertTrue(all(len(p["top"]) == 3 and p["bits"] > 0 for p in tokens))

    def test_version(self):
        self.assertRegex(lmzip.version(), r"^\d+\.\d+\.\d+$")


class Names(Folders):
    def test_names_and_levels(self):
        data = ALICE[:3000]
        packed = lmzip.compress(data, model="tiny-dsrn")
        self.assertEqual(model_of(packed), "tiny-dsrn")
        self.assertEqual(lmzip.decompress(packed), data)  # found by name in the folders
        self.assertEqual(model_of(lmzip.compress(data)), "default")
        self.assertEqual(model_of(lmzip.compress(data, level=1)), "none")
        self.assertEqual(model_of(lmzip.compress(data, level=9)), "default")  # no max model: default
        self.assertEqual(model_of(lmzip.compress(data, level=1, model="tiny-dsrn")), "tiny-dsrn")
        p4 = lmzip.compress(data, level=4)
        self.assertEqual(lmzip.decompress(p4), data)
        with self.assertRaises(ValueError):
            lmzip.compress(data, level=10)
        with self.assertRaises(lmzip.LmzipError):
            lmzip.compress(data, model="no-such-name")


class Files(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "a.lmz")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_write_then_read(self):
        with lmzip.open(self.path, "wb", model="none") as f:
            for i in range(0, len(ALICE), 777):
                self.assertEqual(f.write(ALICE[i:i + 777]), len(ALICE[i:i + 777]))
        with lmzip.open(self.path, "rb") as f:
            got = b""
            while True:
                chunk = f.read(5000)
                if not chunk:
                    break
                got += chunk
        self.assertEqual(got, ALICE)
        with open(self.path, "rb") as raw:
            self.assertEqual(lmzip.decompress(raw.read()), ALICE)

    def test_model_stream_and_file_objects(self):
        buf = io.BytesIO()
        with lmzip.open(buf, "wb", model=TINY, frame_size=2048) as f:
            f.write(ALICE[:5000])
        self.assertFalse(buf.closed)  # a caller's file stays open
        with lmzip.open(io.BytesIO(buf.getvalue()), "rb", model=TINY) as f:
            self.assertEqual(f.read(), ALICE[:5000])

    def test_close_before_the_end(self):
        with lmzip.open(self.path, "wb", model="none", frame_size=1024) as f:
            f.write(ALICE)
        f = lmzip.open(self.path, "rb")
        self.assertEqual(f.read(100), ALICE[:100])
        f.close()  # the worker is let go, nothing hangs
        self.assertTrue(f.closed)

    def test_readinto_and_lines(self):
        with lmzip.open(self.path, "wb", model="none") as f:
            f.write(ALICE[:3000])
        with lmzip.open(self.path, "rb") as f:
            b = bytearray(10)
            self.assertEqual(f.readinto(b), 10)
            self.assertEqual(bytes(b), ALICE[:10])
            wrapper = io.TextIOWrapper(io.BufferedReader(f), encoding="latin-1")
            self.assertEqual(wrapper.read(), ALICE[10:3000].decode("latin-1").replace("\r\n", "\n"))

    def test_damaged_file_raises(self):
        with lmzip.open(self.path, "wb", model="none") as f:
            f.write(ALICE[:20000])
        with builtins.open(self.path, "rb") as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0x40
        with self.assertRaises(lmzip.LmzipError):
            with lmzip.open(io.BytesIO(bytes(data)), "rb") as f:
                f.read()


@unittest.skipUnless(CLI, "LMZIP_CLI not set")
class WithTheProgram(unittest.TestCase):
    def test_both_ways(self):
        packed = lmzip.compress(ALICE[:8000], model=TINY)
        out = subprocess.run([CLI, "-q", "-d", "-c", "-m", TINY], input=packed, stdout=subprocess.PIPE, check=True)
        self.assertEqual(out.stdout, ALICE[:8000])
        with tempfile.NamedTemporaryFile() as t:  # a file: the program knows its size, as compress() does
            t.write(ALICE[:8000])
            t.flush()
            out = subprocess.run([CLI, "-q", "-c", "-m", TINY, t.name], stdout=subprocess.PIPE, check=True)
        self.assertEqual(lmzip.decompress(out.stdout, model=TINY), ALICE[:8000])
        # the same bytes as the program makes
        self.assertEqual(out.stdout, lmzip.compress(ALICE[:8000], model=TINY))
