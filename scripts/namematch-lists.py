#!/usr/bin/env python3
"""Builds the name lists of tasks/namematch/lists/ from the public sources in
shared/data, the person-name tables of the PyPI package `faker` (MIT) and the
hand-curated tables in tasks/namematch/lists/curated.txt.

Usage: scripts/namematch-lists.py [--shared DIR] [--faker DIR] [--out DIR]
  --shared  folder holding the public data (default: ../shared/data beside the repo)
  --faker   folder that holds the `faker` package (default: import it normally)
  --out     output folder (default: tasks/namematch/lists)

Outputs (UTF-8, LF, tab-separated, '#' comment lines):
  names.tsv       kind(given|middle|surname) region gender(m|f|-) name source
  variants.tsv    kind(translit|nickname|variant) source name name [name...]
  devanagari.tsv  latin devanagari source
The output is a pure function of the inputs (sorted, de-duplicated)."""
import argparse
import collections
import csv
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# faker locale -> (region, cap per list). Only Latin-script person tables.
FAKER_LOCALES = {
    "en_IN": "in_hindu",
    "en_US": "western", "en_GB": "western", "de_DE": "western", "fr_FR": "western",
    "es_ES": "western", "it_IT": "western", "nl_NL": "western", "pt_PT": "western",
    "yo_NG": "african", "ig_NG": "african", "ha_NG": "african", "en_KE": "african",
    "zu_ZA": "african", "tw_GH": "african", "sw": "african",
    "zh_CN": "east_asian", "ja_JP": "east_asian",
    "id_ID": "se_asian", "en_TH": "se_asian",
}
CAP_GIVEN = 120
CAP_SURNAME = 150
NAME_RE = re.compile(r"^[^\W\d_]+(?:['\-][^\W\d_]+)*$")
ASCII_NAME_RE = re.compile(r"^[A-Za-z]+$")


def clean(name):
    name = name.strip()
    if not NAME_RE.match(name) or len(name.encode()) > 40 or len(name) < 2:
        return None
    if name.isupper() or name.islower():
        name = name[:1].upper() + name[1:].lower()
    return name


def seq(provider, attr):
    v = getattr(provider, attr, None)
    if v is None:
        return []
    if isinstance(v, dict):
        return list(v.keys())
    return list(v)


def first_unique(items, cap):
    out, seen = [], set()
    for it in items:
        c = clean(it)
        if c and c.lower() not in seen:
            seen.add(c.lower())
            out.append(c)
        if len(out) >= cap:
            break
    return out


def faker_rows(faker_dir):
    if faker_dir:
        sys.path.insert(0, faker_dir)
    import importlib
    rows = []
    for loc, region in FAKER_LOCALES.items():
        mod = importlib.import_module(f"faker.providers.person.{loc}")
        p = mod.Provider
        src = f"faker:{loc}"
        if loc == "zh_CN":
            for n in first_unique(seq(p, "first_romanized_names"), CAP_GIVEN):
                rows.append(("given", region, "-", n, src))
            for n in first_unique(seq(p, "last_romanized_names"), CAP_SURNAME):
                rows.append(("surname", region, "-", n, src))
            continue
        if loc == "ja_JP":
            for g, attr in (("m", "first_romanized_names_male"), ("f", "first_romanized_names_female")):
                for n in first_unique(seq(p, attr), CAP_GIVEN):
                    rows.append(("given", region, g, n, src))
            for n in first_unique(seq(p, "last_romanized_names"), CAP_SURNAME):
                rows.append(("surname", region, "-", n, src))
            continue
        male, female = seq(p, "first_names_male"), seq(p, "first_names_female")
        if male or female:
            for g, lst in (("m", male), ("f", female)):
                for n in first_unique(lst, CAP_GIVEN):
                    rows.append(("given", region, g, n, src))
        else:
            for n in first_unique(seq(p, "first_names"), CAP_GIVEN):
                rows.append(("given", region, "-", n, src))
        if loc == "vi_VN":
            for n in first_unique(seq(p, "middle_names"), 40):
                rows.append(("middle", region, "-", n, src))
        if region != "in_hindu":  # faker's Indian surnames carry no region; ours are curated
            for n in first_unique(seq(p, "last_names"), CAP_SURNAME):
                rows.append(("surname", region, "-", n, src))
    return rows


def curated(path):
    names, groups, deva = [], [], []
    kinds = {"given_m": ("given", "m"), "given_f": ("given", "f"), "surname": ("surname", "-"),
             "middle_m": ("middle", "m"), "middle_f": ("middle", "f")}
    for ln, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        head, _, body = line.partition(":")
        region, _, kind = (x.strip() for x in head.partition("|"))
        items = [x.strip() for x in body.split(",") if x.strip()]
        if kind in kinds:
            k, g = kinds[kind]
            for n in items:
                if not clean(n):
                    sys.exit(f"{path}:{ln}: bad name {n!r}")
                names.append((k, region, g, n, "curated"))
        elif kind == "translit":
            groups.append(("translit", "curated", items))
        elif kind == "deva":
            for it in items:
                lat, _, dv = it.partition("=")
                deva.append((lat.strip(), dv.strip(), "curated"))
        else:
            sys.exit(f"{path}:{ln}: unknown kind {kind!r}")
    return names, groups, deva


def parlikar(path):
    by_deva = collections.OrderedDict()
    pairs = []
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 2 or parts[0] == "english":
            continue
        lat, dv = clean(parts[0]), parts[1].strip()
        if not lat or not ASCII_NAME_RE.match(lat):
            continue
        pairs.append((lat, dv, "parlikar"))
        by_deva.setdefault(dv, [])
        if lat.lower() not in [x.lower() for x in by_deva[dv]]:
            by_deva[dv].append(lat)
    groups = [("translit", "parlikar", v) for v in by_deva.values() if len(v) > 1]
    return pairs, groups


def nicknames(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for r in csv.DictReader(f):
            a, b = clean(r["name1"]), clean(r["name2"])
            if a and b and a.lower() != b.lower() and ASCII_NAME_RE.match(a) and ASCII_NAME_RE.match(b):
                out.append(("nickname", "carltonnorthern", [a, b]))
    return out


def hmni(path):
    out = []
    for line in open(path, encoding="utf-8"):
        parts = line.strip().split(",")
        if len(parts) != 2:
            continue
        a, b = clean(parts[0]), clean(parts[1])
        if a and b and a.lower() != b.lower() and ASCII_NAME_RE.match(a) and ASCII_NAME_RE.match(b):
            out.append(("variant", "hmni", [a, b]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--faker", default=None)
    ap.add_argument("--out", default=os.path.join(ROOT, "tasks", "namematch", "lists"))
    a = ap.parse_args()
    if not os.path.isdir(a.shared) and os.path.isdir("/work/shared/data"):
        a.shared = "/work/shared/data"

    cur_names, cur_groups, cur_deva = curated(os.path.join(a.out, "curated.txt"))
    par_pairs, par_groups = parlikar(os.path.join(a.shared, "indian_names_parlikar", "names.tsv"))
    names = cur_names + faker_rows(a.faker)
    # Parlikar spellings that have a transliteration variant join the pan-Indian
    # given-name pool (gender unknown: the source does not record it).
    known = {(r[1], r[3].lower()) for r in names}
    for _, _, grp in par_groups:
        for n in grp:
            if ("in_hindu", n.lower()) not in known:
                known.add(("in_hindu", n.lower()))
                names.append(("given", "in_hindu", "-", n, "parlikar"))

    seen, uniq = set(), []
    for r in names:
        key = (r[0], r[1], r[2], r[3].lower())
        if key not in seen:
            seen.add(key)
            uniq.append(r)
    uniq.sort(key=lambda r: (r[0], r[1], r[2], r[3], r[4]))

    groups = cur_groups + par_groups + nicknames(
        os.path.join(a.shared, "nicknames_carltonnorthern", "names.csv")) + hmni(
        os.path.join(a.shared, "hmni", "name_pairs.txt"))
    gseen, gout = set(), []
    for kind, src, items in groups:
        key = (kind, tuple(sorted(x.lower() for x in items)))
        if key not in gseen:
            gseen.add(key)
            gout.append((kind, src, items))
    gout.sort(key=lambda g: (g[0], g[1], [x.lower() for x in g[2]]))

    dseen, dout = set(), []
    for lat, dv, src in cur_deva + par_pairs:
        key = (lat.lower(), dv)
        if key not in dseen:
            dseen.add(key)
            dout.append((lat, dv, src))
    dout.sort(key=lambda r: (r[0].lower(), r[1]))

    hdr = "# Generated by scripts/namematch-lists.py; see tasks/namematch/SOURCES.md for sources and licences.\n"
    with open(os.path.join(a.out, "names.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write(hdr + "# kind\tregion\tgender\tname\tsource\n")
        for r in uniq:
            f.write("\t".join(r) + "\n")
    with open(os.path.join(a.out, "variants.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write(hdr + "# kind\tsource\tname\tname[\tname...]  (Parlikar groups: modified from the original:"
                " Latin spellings grouped by their shared Devanagari form)\n")
        for kind, src, items in gout:
            f.write("\t".join([kind, src] + items) + "\n")
    with open(os.path.join(a.out, "devanagari.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write(hdr + "# latin\tdevanagari\tsource  (Parlikar rows: modified from the original:"
                " comments dropped, names capitalised, sorted)\n")
        for r in dout:
            f.write("\t".join(r) + "\n")
    print(f"names {len(uniq)}, variant groups {len(gout)}, devanagari {len(dout)}")


if __name__ == "__main__":
    main()
