"""Run the Python package's tests; the last line says "python: N passed, N failed"."""
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
suite = unittest.defaultTestLoader.discover(here, pattern="test_*.py")
result = unittest.TextTestRunner(verbosity=1).run(suite)
failed = len(result.failures) + len(result.errors)
print(f"python: {result.testsRun - failed - len(result.skipped)} passed, {failed} failed")
sys.exit(1 if failed else 0)
