"""`python -m bench`: see bench/harness.py; `python -m bench store`: see bench/store.py;
`python -m bench auth`: see bench/auth.py; `python -m bench sizing`: see bench/sizing.py;
`python -m bench soak`: see bench/soak.py; `python -m bench lanes`: see bench/lanes.py;
`python -m bench sandbox`: see bench/sandbox.py; `python -m bench sandbox-sync`: see
bench/sandbox_sync.py; `python -m bench mcp`: see bench/mcp.py; `python -m bench a2a`: see
bench/a2a.py; `python -m bench threadstream`: see bench/threadstream.py."""

import sys

if sys.argv[1:2] == ["auth"]:
    from bench.auth import main as auth_main

    sys.exit(auth_main(sys.argv[2:]))

if sys.argv[1:2] == ["soak"]:
    from bench.soak import main as soak_main

    sys.exit(soak_main(sys.argv[2:]))

if sys.argv[1:2] == ["lanes"]:
    from bench.lanes import main as lanes_main

    sys.exit(lanes_main(sys.argv[2:]))

if sys.argv[1:2] == ["mcp"]:
    from bench.mcp import main as mcp_main

    sys.exit(mcp_main(sys.argv[2:]))

if sys.argv[1:2] == ["sandbox"]:
    from bench.sandbox import main as sandbox_main

    sys.exit(sandbox_main(sys.argv[2:]))

if sys.argv[1:2] == ["sandbox-sync"]:
    from bench.sandbox_sync import main as sandbox_sync_main

    sys.exit(sandbox_sync_main(sys.argv[2:]))

if sys.argv[1:2] == ["store"]:
    from bench.store import main as store_main

    sys.exit(store_main(sys.argv[2:]))

if sys.argv[1:2] == ["a2a"]:
    from bench.a2a import main as a2a_main

    sys.exit(a2a_main(sys.argv[2:]))

if sys.argv[1:2] == ["threadstream"]:
    from bench.threadstream import main as threadstream_main

    sys.exit(threadstream_main(sys.argv[2:]))

if sys.argv[1:2] == ["sizing"]:
    from bench.sizing import main as sizing_main

    sys.exit(sizing_main(sys.argv[2:]))

from bench.harness import main

sys.exit(main())
