"""Where the tests find the checkout's files and the reference data beside it."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_DATA = REPO / "tests" / "data"
SHARED_REFERENCE = REPO.parent / "shared" / "reference"
