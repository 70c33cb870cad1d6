"""Before anything imports Ray: a Ray started by a test for itself (ray.init() without an address, in this
process or in a command it runs) stays on the loopback instead of the machine's outward address."""

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
