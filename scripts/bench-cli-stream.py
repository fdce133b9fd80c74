#!/usr/bin/env python3
"""Times `encstore encrypt` and `decrypt` of 1 GiB with a streaming keyset
(AES256_GCM_HKDF_1MB), file to file in a tmpfs, for one or more encstore
binaries, alternating them round by round, with `cp` of the same file as
the I/O floor measured in the same run; and to stdout discarded, with
`cat` as the floor (the input's reading and the crypto alone). Prints medians.

    python3 scripts/bench-cli-stream.py [ROUNDS] LABEL=PATH [LABEL=PATH ...]

Example (the binary before and after a change):
    python3 scripts/bench-cli-stream.py 5 old=/tmp/encstore-old new=target/release/encstore
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

args = sys.argv[1:]
rounds = int(args.pop(0)) if args and args[0].isdigit() else 5
bins = dict(a.split("=", 1) for a in args)
if not bins:
    sys.exit(__doc__)
base = "/dev/shm" if os.path.isdir("/dev/shm") else None
d = tempfile.mkdtemp(prefix="encstore-cli-bench-", dir=base)
try:
    first = next(iter(bins.values()))
    ks, pt, ct, out = (os.path.join(d, n) for n in ("ks.json", "pt.bin", "ct.bin", "out.bin"))
    quiet = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([first, "create-keyset", "--key-template", "AES256_GCM_HKDF_1MB", "--out", ks], **quiet)
    with open(pt, "wb") as f:
        for _ in range(1024):
            f.write(os.urandom(1 << 20))
    subprocess.run([first, "encrypt", "--keyset", ks, "--in", pt, "--out", ct], **quiet)
    times = {}

    def run(name, cmd):
        t = time.perf_counter()
        subprocess.run(cmd, **quiet)
        times.setdefault(name, []).append(time.perf_counter() - t)

    labels = list(bins)
    for r in range(rounds):
        for label in labels if r % 2 == 0 else labels[::-1]:
            b = bins[label]
            run(f"encrypt {label}", [b, "encrypt", "--keyset", ks, "--in", pt, "--out", out])
            run(f"decrypt {label}", [b, "decrypt", "--keyset", ks, "--in", ct, "--out", out])
            if subprocess.run(["cmp", "-s", out, pt]).returncode != 0:
                sys.exit(f"{label}: decrypt did not return the plaintext")
            # To stdout, discarded: the input's reading and the crypto alone.
            run(f"encrypt {label} >null", [b, "encrypt", "--keyset", ks, "--in", pt])
            run(f"decrypt {label} >null", [b, "decrypt", "--keyset", ks, "--in", ct])
        run("cp (I/O floor)", ["cp", pt, out])
        run("cat >null (floor)", ["cat", pt])
    floors = {False: statistics.median(times["cp (I/O floor)"]),
              True: statistics.median(times["cat >null (floor)"])}
    print(f"1 GiB, {rounds} rounds, medians; load {os.getloadavg()[0]:.2f}")
    for name, v in times.items():
        m = statistics.median(v)
        null = name.endswith("null") or name.startswith("cat")
        extra = "" if "floor" in name else f"  over {'cat' if null else 'cp'}: {(m - floors[null]) * 1000:6.0f} ms"
        print(f"  {name:20} {m * 1000:7.0f} ms {1024 / m:6.0f} MiB/s{extra}  runs {[round(x * 1000) for x in v]}")
finally:
    shutil.rmtree(d)
