"""Debian package descriptions from apt's lists: a real English text corpus on any Debian machine.

Used by gen_bm25_goldens.py (the BM25 golden corpus) and tests/bench/gen-retrieve-data.py (the
BM25 benchmark corpus). Standard library only.

    lists = fetch_lists(tmp)                  # apt-get update into tmp (root, the Debian mirror)
    packages, translations = read(lists, tmp) # {name: (Description, md5)}, {(name, md5): Description-en}
    text = joined_description(translations.get((name, md5), short))
"""
import glob
import os
import subprocess


def deb822(text):
    """The records of a deb822 file (Packages, Translation-en): {field: value}, continuation lines kept."""
    rec, key = {}, None
    for line in text.split("\n"):
        if not line.strip():
            if rec:
                yield rec
            rec, key = {}, None
        elif line[0] in " \t":
            if key is not None:
                rec[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            rec[key] = value.strip()
    if rec:
        yield rec


def joined_description(value):
    """A Description field as text: the synopsis, then the long lines (" ." is an empty line)."""
    lines = value.split("\n")
    out = [lines[0].strip()]
    for line in lines[1:]:
        line = line[1:] if line[:1] in (" ", "\t") else line
        out.append("" if line.strip() == "." else line.rstrip())
    return "\n".join(out)


def apt_options(lists, tmp):
    """apt reads (and apt-get update writes) `lists` and keeps its cache in `tmp`, so the system's
    own lists and cache are left alone."""
    cache = os.path.join(tmp, "cache")
    os.makedirs(os.path.join(cache, "archives", "partial"), exist_ok=True)
    return ["-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={cache}", "-o", "Acquire::Languages=en",
            "-o", "APT::Sandbox::User=root"]


def fetch_lists(tmp, quiet=False):
    """apt-get update into tmp/lists (with the English translations, which hold the long texts)."""
    lists = os.path.join(tmp, "lists")
    os.makedirs(os.path.join(lists, "partial"))
    subprocess.run(["apt-get", "update", "-qq"] + apt_options(lists, tmp), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL if quiet else None)
    return lists


def translation_files(lists):
    return sorted(glob.glob(os.path.join(lists or "/var/lib/apt/lists", "*_i18n_Translation-en*")))


def read(lists, tmp):
    """({package: (Description, Description-md5)}, {(package, md5): Description-en}) from `lists`
    (None: the system's own)."""
    opts = apt_options(lists, tmp) if lists else []
    avail = subprocess.run(["apt-cache"] + opts + ["dumpavail"], check=True, capture_output=True).stdout.decode("utf-8")
    packages = {}
    for rec in deb822(avail):
        name = rec.get("Package")
        if name and "Description" in rec and name not in packages:
            packages[name] = (rec["Description"], rec.get("Description-md5", ""))
    translations = {}
    for path in translation_files(lists):
        text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", path], check=True,
                              capture_output=True).stdout.decode("utf-8")
        for rec in deb822(text):
            if "Package" in rec and "Description-en" in rec:
                translations[(rec["Package"], rec.get("Description-md5", ""))] = rec["Description-en"]
    return packages, translations
