"""Helpers of benches/layering.sh: the ideal plan, the bytes a push sent
(from the registry's access log), the sweep over every single-path
update, and the table."""

import hashlib
import json
import os
import statistics
import subprocess
import sys
from urllib.parse import unquote


NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"


def load(path):
    with open(path) as f:
        return json.load(f)


def blob(layout, digest):
    return os.path.join(layout, "blobs", *digest.split(":", 1))


def manifest_of(layout):
    """The digest and size of the manifest the layout's index.json names."""
    desc = load(os.path.join(layout, "index.json"))["manifests"][0]
    return desc["digest"], desc["size"]


def closure(work):
    """Per variant: store paths and NAR bytes of the closure, and the paths
    that differ from the base closure."""
    graphs = {v: {e["path"]: e["narSize"] for e in load(f"{work}/graph-{v}.json")} for v in ("base", "app", "lib", "dep")}
    base = graphs["base"]
    print(f"closure base paths {len(base)} bytes {sum(base.values())}")
    for v in ("app", "lib", "dep"):
        new = {p: n for p, n in graphs[v].items() if p not in base}
        print(f"closure {v} paths {len(new)} bytes {sum(new.values())}")


def ideal_plan(graph, prefix):
    """Plans of a layer per store path, largest first (as the stable plan
    orders its big layers), in parts of at most 127 layers (what a plan
    may hold): PREFIX-0.json, PREFIX-1.json, ..."""
    entries = sorted(load(graph), key=lambda e: (-e["narSize"], e["path"]))
    for i in range(0, len(entries), 127):
        part = entries[i : i + 127]
        layers = [{"narSize": e["narSize"], "paths": [e["path"]], "why": "a layer per store path"} for e in part]
        with open(f"{prefix}-{i // 127}.json", "w") as f:
            json.dump({"layers": layers, "maxLayers": len(layers), "strategy": "stable"}, f)


def one_spec(graph):
    """A layer spec of the whole closure in one layer."""
    print(json.dumps({"files": [{"source": e["path"]} for e in load(graph)]}))


def layers(layout):
    digest, _ = manifest_of(layout)
    print(len(load(blob(layout, digest))["layers"]))


def pushed(diff_path, log_path, layout):
    """What diff says a push sends, and what the access log shows sent:
    each uploaded blob's size in the layout, and each manifest PUT's size
    (the manifest the layout names). Prints key-value pairs."""
    diff = load(diff_path)
    added = [l for l in diff["layers"] if l["status"] == "added"]
    manifest_digest, manifest_size = manifest_of(layout)
    sent, uploads, mounts, manifests = 0, 0, 0, 0
    with open(log_path, errors="replace") as f:
        for line in f:
            if '"' not in line:
                continue
            request = line.split('"', 2)[1]
            parts = request.split(" ")
            if len(parts) < 2:
                continue
            method, path = parts[0], parts[1]
            if method == "POST" and "/blobs/uploads/" in path and "mount=" in path:
                mounts += 1
            if method != "PUT":
                continue
            if "/blobs/uploads/" in path:
                query = unquote(path.split("?", 1)[1]) if "?" in path else ""
                digest = next(kv[len("digest="):] for kv in query.split("&") if kv.startswith("digest="))
                sent += os.stat(blob(layout, digest)).st_size
                uploads += 1
            elif "/manifests/" in path:
                sent += manifest_size
                manifests += 1
    print(
        f"changed {len(added)} addedbytes {sum(l['size'] for l in added)} diffbytes {diff['push']['bytes']} "
        f"diffblobs {len(diff['push']['blobs'])} logbytes {sent} uploads {uploads} mounts {mounts} manifests {manifests}"
    )


def sweep(nixoci, graph, ideal_layers, work, budget="100"):
    """For every store path x of the closure: the update where x gets a
    new hash and so does every path that refers to it, directly or not (as
    in Nix, where they are rebuilt with it), names and sizes kept. Each
    strategy plans the closure before and after (`nixoci plan`, the real
    planner); the bytes pushed are the compressed sizes of the layers of
    the new plan that the old one lacks, a layer's size being the sum of
    its paths' (each path's compressed size comes from the ideal image,
    whose layers are a path each). Prints, per strategy, the ratio of
    those bytes to the ideal's (the changed paths' own), over all x."""
    entries = load(graph)
    size = {}
    for part in os.listdir(ideal_layers):
        for layer in load(os.path.join(ideal_layers, part, "layers.json"))["layers"]:
            (path,) = layer["storePaths"]
            size[path] = layer["size"]
    users = {e["path"]: set() for e in entries}
    for e in entries:
        for r in e["references"]:
            if r != e["path"]:
                users[r].add(e["path"])

    def dependants(x):
        seen, todo = {x}, [x]
        while todo:
            for u in users[todo.pop()]:
                if u not in seen:
                    seen.add(u)
                    todo.append(u)
        return seen

    def renamed(p):
        # A new hash part in Nix's base-32 alphabet, as a store path has.
        h = "".join(NIX_BASE32[b % 32] for b in hashlib.sha256(p.encode()).digest())
        return "/nix/store/" + h + p[len("/nix/store/") + 32 :]

    def plan(graph_entries, strategy, name):
        path = os.path.join(work, f"sweep-{name}.json")
        with open(path, "w") as f:
            json.dump(graph_entries, f)
        out = subprocess.run(
            [nixoci, "plan", path, "--max-layers", budget, "--strategy", strategy],
            check=True, capture_output=True, text=True,
        ).stdout
        return [frozenset(l["paths"]) for l in json.loads(out)["layers"]]

    strategies = ("popularity", "stable")
    before = {s: set(plan(entries, s, "base")) for s in strategies}
    ratios = {s: [] for s in strategies}
    for e in sorted(entries, key=lambda e: e["path"]):
        changed = dependants(e["path"])
        m = {p: (renamed(p) if p in changed else p) for p in users}
        after = [
            {"path": m[x["path"]], "narSize": x["narSize"], "references": [m[r] for r in x["references"]]}
            for x in entries
        ]
        for p in changed:
            size[m[p]] = size[p]
        ideal = sum(size[p] for p in changed)
        for s in strategies:
            sent = sum(sum(size[p] for p in l) for l in plan(after, s, "after") if l not in before[s])
            ratios[s].append(sent / ideal)
    for s in strategies:
        v = sorted(ratios[s])
        print(
            f"sweep {s} updates {len(v)} mean {statistics.mean(v):.3f} median {statistics.median(v):.3f} "
            f"p90 {v[int(0.9 * len(v))]:.3f} max {v[-1]:.3f}"
        )


def fmt_bytes(n):
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    if n >= 1e3:
        return f"{n / 1e3:.1f} kB"
    return f"{n} B"


def table(results, nproc, runs, budget="100"):
    r = {}
    with open(results) as f:
        for line in f:
            w = line.split()
            if w[0] == "closure":
                r[("closure", w[1])] = (int(w[3]), int(w[5]))
            elif w[0] == "cli":
                r[("cli", w[1])] = float(w[2])
            elif w[0] == "sweep":
                r[("sweep", w[1])] = dict(zip(w[2::2], w[3::2]))
            elif w[1] == "build":
                r[(w[0], "build")] = float(w[2])
                r[(w[0], "layers")] = int(w[4])
            else:
                kv = dict(zip(w[4::2], w[5::2]))
                r[(w[0], w[1])] = {"time": float(w[3]), **{k: int(v) for k, v in kv.items()}}
    strategies = ["one", "popularity", "stable", "ideal"]
    names = {
        "one": "one layer",
        "popularity": f"popularity, {budget}",
        "stable": f"stable, {budget}",
        "ideal": "a layer per path*",
    }
    scen = {"app": "(a) app", "lib": "(b) mid-level lib", "dep": "(c) added dependency"}
    paths, size = r[("closure", "base")]
    print(f"\nclosure: {paths} store paths, {fmt_bytes(size)} (NAR); {nproc} cores")
    for v in ("app", "lib", "dep"):
        n, b = r[("closure", v)]
        print(f"  {scen[v]}: {n} store paths new, {fmt_bytes(b)}")
    print()
    head = f"| {'strategy':18} | layers | build |"
    sub = f"|{'-' * 20}|-------:|------:|"
    for v in ("app", "lib", "dep"):
        head += f" {scen[v]}: blobs, pushed, time |"
        sub += "---:|"
    print(head)
    print(sub)
    checked = True
    for s in strategies:
        row = f"| {names[s]:18} | {r[(s, 'layers')]:6} | {r[(s, 'build')]:4.1f}s |"
        for v in ("app", "lib", "dep"):
            x = r[(s, v)]
            ok = x["diffbytes"] == x["logbytes"] and x["mounts"] == 0 and x["uploads"] == x["diffblobs"]
            checked &= ok
            mark = "" if ok else f" (log: {fmt_bytes(x['logbytes'])}!)"
            row += f" {x['changed']}, {fmt_bytes(x['diffbytes'])}{mark}, {x['time']:.1f}s |"
        print(row)
    print(
        "\nblobs: layer blobs of B that A lacks; pushed: what a push of B over A sends; "
        "time: the rebuild of B's image (its closure built beforehand) plus `nixoci push`"
    )
    print(
        "* built outside Nix by the same `nixoci layers` step (ociLayers refuses more than 127 layers), "
        "from a plan with a layer per store path, then `nixoci build`; a real image, pushed for real"
    )
    print(
        "bytes pushed: `nixoci diff A B --json` (push.bytes); "
        + ("equal to the access log of every push (uploaded blobs and the manifest, no mounts)" if checked else "MISMATCH with the access log where marked")
    )

    sw = r.get(("sweep", "stable"))
    if sw:
        print(f"\nevery single-path update ({sw['updates']}: a path and its dependants get new hashes), bytes pushed over the ideal's:")
    for s in ("popularity", "stable") if sw else ():
        x = r[("sweep", s)]
        print(f"  {s:11} mean {float(x['mean']):.2f}x, median {float(x['median']):.2f}x, 90th percentile {float(x['p90']):.2f}x, worst {float(x['max']):.2f}x")

    print(f"\nwriting every layer against one layer of the whole closure, outside Nix, {nproc} threads, median of {runs} runs:")
    one = r[("cli", "one")]
    print(f"  one layer (`nixoci layer`):   {one:6.2f}s")
    for s in ("popularity", "stable", "ideal"):
        t = r[("cli", s)]
        print(f"  {s + ' (`nixoci layers`)':30}{t:6.2f}s  {t / one:.2f}x")

    def yes(b):
        return "met" if b else "MISSED"

    print("\ngoals (issue 12):")
    a_ok = {s: r[(s, "app")]["changed"] == 1 and r[(s, "app")]["diffblobs"] == 2 for s in strategies}
    print(
        "  (a) pushes one layer plus the config and manifest: "
        + ", ".join(f"{s} {yes(a_ok[s])} ({fmt_bytes(r[(s, 'app')]['diffbytes'])})" for s in strategies)
    )
    print(
        "      its rebuild time proportional to the app's size (a goal of the per-group design; "
        "this one writes every layer again): "
        + ", ".join(f"{s} {r[(s, 'app')]['time']:.1f}s against {r[(s, 'build')]:.1f}s for the first build" for s in strategies)
    )
    for v in ("lib", "dep"):
        ideal = r[("ideal", v)]["diffbytes"]
        pop = r[("popularity", v)]["diffbytes"]
        st = r[("stable", v)]["diffbytes"]
        print(
            f"  {scen[v]}: stable pushes {fmt_bytes(st)} = {st / ideal:.2f}x the ideal's {fmt_bytes(ideal)} "
            f"(goal <= 1.2: {yes(st <= 1.2 * ideal)}), {st / pop:.2f}x popularity's {fmt_bytes(pop)} "
            f"(goal < 1: {yes(st < pop)})"
        )
    st = r[("cli", "stable")] / one
    nx = r[("stable", "build")] / r[("one", "build")]
    print(
        f"  building all layers / compressing the closure alone: {st:.2f}x for stable (goal <= 1.1: {yes(st <= 1.1)}); "
        f"through Nix, the stable image's build over the one-layer image's: {nx:.2f}x"
    )


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "closure": closure,
        "ideal-plan": ideal_plan,
        "one-spec": one_spec,
        "layers": layers,
        "pushed": pushed,
        "sweep": sweep,
        "table": table,
    }[cmd](*args)


if __name__ == "__main__":
    main()
