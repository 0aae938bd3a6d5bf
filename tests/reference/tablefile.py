"""Writing a reference ``tables.json`` (shared by the ``make_tables.py`` scripts; plain Python only)."""
import json


def rle(values):
    """``[[count, value], ...]`` for consecutive equal values."""
    out = []
    for v in values:
        if out and out[-1][1] == v:
            out[-1][0] += 1
        else:
            out.append([1, v])
    return out


def plain(x):
    """JSON-ready copy: tuples become lists."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def dump(tables):
    """One case per block, one run of a column per line (the file stays small and diffable)."""
    lines = ["{", ' "meta": ' + json.dumps(tables["meta"]) + ",", ' "cases": {']
    names = list(tables["cases"])
    for i, name in enumerate(names):
        c = tables["cases"][name]
        lines.append(f"  {json.dumps(name)}: {{")
        keys = list(c)
        for j, k in enumerate(keys):
            end = "," if j < len(keys) - 1 else ""
            v = c[k]
            if k in ("epoch", "lr", "momentum", "beta2", "checks"):
                runs = ",\n".join("    " + json.dumps(r) for r in v)
                lines.append(f"   {json.dumps(k)}: [\n{runs}\n   ]{end}")
            else:
                lines.append(f"   {json.dumps(k)}: {json.dumps(v)}{end}")
        lines.append("  }" + ("," if i < len(names) - 1 else ""))
    lines += [" }", "}"]
    text = "\n".join(lines) + "\n"
    assert json.dumps(json.loads(text)) == json.dumps(tables)   # (as text: NaN != NaN)
    return text
