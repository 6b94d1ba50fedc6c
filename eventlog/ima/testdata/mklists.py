#!/usr/bin/env python3
"""Writes the hand-made IMA measurement lists the tests read, and what they
must parse and replay to, computed here with hashlib: an implementation of
the kernel's format independent of the Go one (security/integrity/ima:
ima_fs.c ima_measurements_show, ima_crypto.c ima_calc_field_array_hash and
ima_calc_boot_aggregate, ima_template_lib.c).

    python3 testdata/mklists.py   # from eventlog/ima: rewrites testdata/handmade/
"""
import hashlib
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handmade")
H = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384}
SIZE = {a: h().digest_size for a, h in H.items()}


def u32(v, endian):
    return struct.pack(endian + "I", v)


def filedigest(alg, name):
    """A file's digest: the hash of some content named after it."""
    return H[alg](("content of " + name).encode()).digest()


# PCRs 0-9 of the machine that booted: arbitrary but fixed values.
PCRS = {alg: [H[alg](b"pcr%d" % i).digest() for i in range(10)] for alg in ("sha1", "sha256", "sha384")}


def boot_aggregate(alg):
    n = 8 if alg == "sha1" else 10  # PCRs 8-9 only in non-SHA-1 aggregates
    return H[alg](b"".join(PCRS[alg][:n])).digest()


def d_ng(alg, digest):
    return alg.encode() + b":\0" + digest


def n_ng(name):
    return name.encode() + b"\0"


# Each entry: (template name, [(field id, bytes)], violation). The "ima"
# template's fields are its digest and name.
def entries():
    e = []
    e.append(("ima-ng", [("d-ng", d_ng("sha256", boot_aggregate("sha256"))), ("n-ng", n_ng("boot_aggregate"))], False))
    for name in ("/usr/lib/systemd/systemd", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/etc/ld.so.cache"):
        e.append(("ima-ng", [("d-ng", d_ng("sha256", filedigest("sha256", name))), ("n-ng", n_ng(name))], False))
    # A violation: zero template hash; the d-ng digest is zeros too.
    e.append(("ima-ng", [("d-ng", d_ng("sha256", bytes(32))), ("n-ng", n_ng("/var/log/journal/system.journal"))], True))
    # A name with a space, a quote, a backslash, a newline and UTF-8.
    odd = '/home/u/my "file"\\ name\n\u00e9t\u00e9'
    e.append(("ima-ng", [("d-ng", d_ng("sha1", filedigest("sha1", odd))), ("n-ng", n_ng(odd))], False))
    sig = bytes([0x03, 0x02, 0x04]) + bytes(range(1, 40))
    e.append(("ima-sig", [("d-ng", d_ng("sha256", filedigest("sha256", "/usr/bin/signed"))), ("n-ng", n_ng("/usr/bin/signed")), ("sig", sig)], False))
    e.append(("ima-sig", [("d-ng", d_ng("sha256", filedigest("sha256", "/usr/bin/unsigned"))), ("n-ng", n_ng("/usr/bin/unsigned")), ("sig", b"")], False))
    cmdline = b"root=/dev/vda1 console=ttyS0 ima_policy=tcb"
    e.append(("ima-buf", [("d-ng", d_ng("sha256", hashlib.sha256(cmdline).digest())), ("n-ng", n_ng("kexec-cmdline")), ("buf", cmdline)], False))
    e.append(("ima-modsig", [("d-ng", d_ng("sha256", filedigest("sha256", "/lib/modules/x.ko"))), ("n-ng", n_ng("/lib/modules/x.ko")),
                             ("sig", b""), ("d-modsig", d_ng("sha256", filedigest("sha256", "x.ko unsigned"))), ("modsig", b"\x30\x82\x01\x00modsig")], False))
    e.append(("ima", [("d", filedigest("sha1", "/sbin/init")), ("n", b"/sbin/init")], False))
    # A custom template (ima_template_fmt=) shows its format as its name.
    e.append(("d-ng|n-ng|buf", [("d-ng", d_ng("sha256", filedigest("sha256", "custom"))), ("n-ng", n_ng("custom")), ("buf", b"\x01\x02")], False))
    # A template this parser does not know (a patched kernel's).
    e.append(("ima-ns", [("d-ng", d_ng("sha256", filedigest("sha256", "/in/a/container"))), ("n-ng", n_ng("/in/a/container")), ("ns", bytes(range(16)))], False))
    return e


def template_data(tname, fields, endian):
    """The template data as the binary list holds it."""
    if tname == "ima":
        return fields[0][1] + u32(len(fields[1][1]), endian) + fields[1][1]
    return b"".join(u32(len(v), endian) + v for _, v in fields)


def hashed(tname, fields, endian):
    """What the kernel hashes (ima_calc_field_array_hash_tfm)."""
    if tname == "ima":
        return fields[0][1] + fields[1][1].ljust(256, b"\0")
    return template_data(tname, fields, endian)


def ascii_field(fid, v):
    """A field as ascii_runtime_measurements prints it."""
    if fid in ("d-ng", "d-modsig"):
        if not v:
            return ""
        i = v.index(0)
        return v[:i].decode() + v[i + 1:].hex()
    if fid in ("n", "n-ng"):
        return v.rstrip(b"\0").decode()
    return v.hex()


def write_list(fname, endian, list_alg):
    out = bytearray()
    exp_entries = []
    regs = {a: bytes(SIZE[a]) for a in H}
    ascii_lines = []
    off = 0
    for num, (tname, fields, violation) in enumerate(entries(), 1):
        data = template_data(tname, fields, endian)
        th = bytes(SIZE[list_alg]) if violation else H[list_alg](hashed(tname, fields, endian)).digest()
        rec = u32(10, endian) + th + u32(len(tname), endian) + tname.encode()
        if tname != "ima":
            rec += u32(len(data), endian)
        rec += data
        out += rec
        for a in H:
            if violation:
                ext = b"\xff" * SIZE[a]
            elif a == list_alg:
                ext = th
            else:
                ext = H[a](hashed(tname, fields, endian)).digest()
            regs[a] = H[a](regs[a] + ext).digest()
        known = tname != "ima-ns"
        exp_entries.append({
            "num": num, "offset": off, "pcr": 10, "template_hash": th.hex(), "template_name": tname,
            "violation": violation, "template_data": data.hex(),
            "fields": {fid: ascii_field(fid, v) for fid, v in fields} if known else None,
        })
        if list_alg == "sha1":
            ascii_lines.append("10 %s %s %s" % (th.hex(), tname, " ".join(ascii_field(fid, v) for fid, v in fields)))
        off += len(rec)
    with open(os.path.join(OUT, fname), "wb") as f:
        f.write(out)
    return {"file": fname, "byte_order": "little-endian" if endian == "<" else "big-endian", "hash_alg": list_alg,
            "size": len(out), "entries": exp_entries, "pcr10": {a: v.hex() for a, v in regs.items()}}, ascii_lines


def main():
    os.makedirs(OUT, exist_ok=True)
    lists = []
    le, lines = write_list("mixed-le.bin", "<", "sha1")
    lists.append(le)
    be, be_lines = write_list("mixed-be.bin", ">", "sha1")
    lists.append(be)
    lists.append(write_list("mixed-sha256-le.bin", "<", "sha256")[0])
    # The ASCII view of the known-template entries whose names have no
    # newline: what the test tool rebuilds the binary form from.
    # The template hash covers the fields' sizes, in the list's byte order:
    # a big-endian machine's ASCII list shows other hashes.
    for name, ls, exp in (("mixed-le.ascii", lines, le), ("mixed-be.ascii", be_lines, be)):
        keep = [l for l, e in zip(ls, exp["entries"]) if e["fields"] is not None and "\n" not in l]
        with open(os.path.join(OUT, name), "w") as f:
            f.write("\n".join(keep) + "\n")
    exp = {"pcrs": {a: [v.hex() for v in vs] for a, vs in PCRS.items()},
           "boot_aggregate": {a: boot_aggregate(a).hex() for a in PCRS}, "lists": lists}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1, ensure_ascii=True)
        f.write("\n")


main()
