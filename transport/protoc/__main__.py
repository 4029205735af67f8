"""``python -m transport.protoc -I. --python_out=. --pyi_out=. --rpcviz_out=. x.proto``."""

from __future__ import annotations

import sys

from transport.protoc.frontend import main

if __name__ == "__main__":
    sys.exit(main())
